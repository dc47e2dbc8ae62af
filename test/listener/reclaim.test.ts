import { test } from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import vm from 'node:vm';
import { spawnSync } from 'node:child_process';
import { BodyAssembler, BodyReclaimer, garbageCollector } from '../../src/listener/reclaim.js';
import { openStream } from '../helpers/net.js';
import { rawRequest, sleep, startListener } from '../helpers/listener-helpers.js';

const MiB = 1024 * 1024;

test('garbageCollector() finds V8 gc without --expose-gc and leaves no gc global behind', () => {
  const given = (globalThis as { gc?: unknown }).gc;
  const collect = garbageCollector();
  assert.equal(typeof collect, 'function');
  assert.equal(garbageCollector(), collect, 'found once, then reused');
  if (given !== undefined) {
    // Started with --expose-gc: that function is used, and stays where it was.
    assert.equal(collect, given);
    assert.equal(typeof (globalThis as { gc?: unknown }).gc, 'function');
  } else {
    // Contexts created afterwards do not see the function.
    assert.equal(vm.runInNewContext('typeof gc'), 'undefined');
    assert.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined');
  }
  (collect as () => void)();
});

test('BodyAssembler decodes UTF-8 split anywhere across pieces, reusing one buffer', () => {
  const assembler = new BodyAssembler();
  const text = 'é€😀 ascii ' + 'ж'.repeat(40000);
  const bytes = Buffer.from(text);
  for (const cut of [1, 2, 3, 5, 1000, bytes.length - 1]) {
    const pieces = [bytes.subarray(0, cut), bytes.subarray(cut, cut + 7), bytes.subarray(cut + 7)];
    assert.equal(assembler.decode(pieces, bytes.length), text, `cut at ${cut}`);
  }
  // A shorter body after a longer one gets exactly its own bytes.
  assert.equal(assembler.decode([Buffer.from('ab'), Buffer.from('c')], 3), 'abc');
  // Past the reuse limit, the pieces are joined as usual.
  const big = Buffer.alloc(MiB + 10, 'x');
  assert.equal(
    assembler.decode([big.subarray(0, 10), big.subarray(10)], big.length).length,
    big.length,
  );
});

test('BodyReclaimer collects after 4 MiB of large bodies and never for small ones', () => {
  let collections = 0;
  const reclaimer = new BodyReclaimer(() => collections++);
  for (let i = 0; i < 100_000; i++) reclaimer.handled(1000);
  assert.equal(collections, 0, '100 MB of small events trigger nothing');
  for (let i = 0; i < 63; i++) reclaimer.handled(64 * 1024);
  assert.equal(collections, 0);
  reclaimer.handled(64 * 1024);
  assert.equal(collections, 1, 'the 64th 64 KiB body reaches 4 MiB');
  // The next interval is at least 4 MiB again (more when the heap left live is larger).
  let bodies = 0;
  while (collections === 1 && bodies < 100_000) {
    reclaimer.handled(64 * 1024);
    bodies++;
  }
  assert.equal(collections, 2);
  assert.ok(bodies >= 64, `${bodies} bodies between two collections`);
});

test('BodyReclaimer waits for half the live heap between collections when that is over 4 MiB', () => {
  let collections = 0;
  const reclaimer = new BodyReclaimer(() => collections++);
  // Some 40 MB of live objects, so that half the heap is well above 4 MiB.
  const ballast = Array.from({ length: 500_000 }, (_, i) => ({ i, text: `item ${i}` }));
  while (collections === 0) reclaimer.handled(64 * 1024);
  const halfHeap = v8.getHeapStatistics().used_heap_size / 2;
  assert.ok(halfHeap > 8 * MiB, `half the heap is ${halfHeap} bytes`);
  let bytes = 0;
  while (collections === 1) {
    reclaimer.handled(64 * 1024);
    bytes += 64 * 1024;
  }
  assert.ok(
    bytes >= halfHeap * 0.9,
    `${bytes} bytes between collections, half the heap ${halfHeap}`,
  );
  assert.equal(ballast.length, 500_000);
});

test('large bodies count on every path (404, 400, 413), and never with reclaimBodies: false', async () => {
  const listenerModule = new URL('../../src/listener/listener.js', import.meta.url).href;
  const eventsModule = new URL('../../src/events.js', import.meta.url).href;
  // A process of its own, started with --expose-gc, whose gc() counts its calls: the listener
  // uses an existing gc() when there is one.
  const script = `
    import http from 'node:http';
    const { createListener } = await import(${JSON.stringify(listenerModule)});
    const { JSONEvent } = await import(${JSON.stringify(eventsModule)});
    const original = globalThis.gc;
    let collections = 0;
    globalThis.gc = (...args) => { collections++; return original(...args); };
    const listener = createListener({
      eventClass: JSONEvent, keepalive: 0, maxBody: 256 * 1024, reclaimBodies: process.argv[1] === 'on',
    });
    const url = await listener.listen(0, '127.0.0.1');
    const send = (parts) => new Promise((resolve, reject) => {
      // Written in two parts, without Content-Length: the body arrives chunked, in pieces.
      const request = http.request(new URL('/ping/t', url), { method: 'POST' }, (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode));
      });
      request.on('error', reject);
      request.write(parts[0]);
      request.end(parts[1]);
    });
    const cases = {
      404: [JSON.stringify('x'.repeat(100 * 1024)), ''],
      400: ['{' + 'x'.repeat(100 * 1024), 'x'.repeat(100 * 1024)],
      413: ['y'.repeat(200 * 1024), 'y'.repeat(100 * 1024)],
    };
    const counts = {};
    for (const [status, parts] of Object.entries(cases)) {
      const before = collections;
      for (let i = 0; i < 60; i++) {
        const got = await send(parts);
        if (String(got) !== status) throw new Error('expected ' + status + ', got ' + got);
      }
      counts[status] = collections - before;
    }
    process.stdout.write(JSON.stringify(counts));
    await listener.close();
  `;
  const run = (mode: string): Record<string, number> => {
    const result = spawnSync(
      process.execPath,
      ['--expose-gc', '--input-type=module', '-e', script, mode],
      { encoding: 'utf8', timeout: 60000 },
    );
    assert.equal(result.status, 0, result.stderr);
    return JSON.parse(result.stdout) as Record<string, number>;
  };
  const on = run('on');
  for (const status of ['404', '400', '413']) {
    assert.ok((on[status] as number) >= 1, `${status}: ${JSON.stringify(on)}`);
  }
  assert.deepEqual(run('off'), { 404: 0, 400: 0, 413: 0 });
});

test('two large bodies arriving interleaved, split inside UTF-8 characters, each arrive intact', async (t) => {
  const running = await startListener({ mode: 'multi', keepalive: 0 });
  t.after(() => running.close());
  const stream = await openStream(`${running.url}/poll/room`);
  t.after(() => stream.close());
  const bodyA = Buffer.from('A€'.repeat(30000));
  const bodyB = Buffer.from('B😀'.repeat(20000));
  const head = (body: Buffer): string =>
    `POST /ping/room HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n`;
  // Cut each body inside a multi-byte character and send the halves alternately.
  const cutA = 2;
  const cutB = 3;
  assert.ok(
    (bodyA[cutA]! & 0xc0) === 0x80 && (bodyB[cutB]! & 0xc0) === 0x80,
    'the cuts fall inside characters',
  );
  const a = await rawRequest(running.port, head(bodyA));
  const b = await rawRequest(running.port, head(bodyB));
  a.socket.write(bodyA.subarray(0, cutA));
  b.socket.write(bodyB.subarray(0, cutB));
  await sleep(30);
  a.socket.write(bodyA.subarray(cutA, 50001));
  b.socket.write(bodyB.subarray(cutB, 40001));
  await sleep(30);
  b.socket.write(bodyB.subarray(40001));
  await b.waitFor(/^HTTP\/1\.1 200/);
  a.socket.write(bodyA.subarray(50001));
  await a.waitFor(/^HTTP\/1\.1 200/);
  a.socket.destroy();
  b.socket.destroy();
  const events = await stream.waitFor(2);
  assert.equal(events[0]?.data, bodyB.toString());
  assert.equal(events[1]?.data, bodyA.toString());
});
