import { test } from 'node:test';
import assert from 'node:assert/strict';
import vm from 'node:vm';
import { BodyAssembler, BodyReclaimer, garbageCollector } from '../../src/listener/reclaim.js';
import { openStream } from '../helpers/net.js';
import { rawRequest, sleep, startListener } from '../helpers/listener-helpers.js';

const MiB = 1024 * 1024;

test('garbageCollector() finds V8 gc without --expose-gc and leaves no gc global behind', () => {
  const collect = garbageCollector();
  assert.equal(typeof collect, 'function');
  assert.equal(garbageCollector(), collect, 'found once, then reused');
  // Contexts created afterwards do not see the function.
  assert.equal(vm.runInNewContext('typeof gc'), 'undefined');
  assert.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined');
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

test('reclaimBodies: false still accepts large events', async (t) => {
  const running = await startListener({ reclaimBodies: false, keepalive: 0 });
  t.after(() => running.close());
  const stream = await openStream(`${running.url}/poll/t`);
  t.after(() => stream.close());
  const body = 'z'.repeat(MiB);
  for (let i = 0; i < 5; i++) {
    const response = await fetch(`${running.url}/ping/t`, { method: 'POST', body });
    assert.equal(response.status, 200);
  }
  const events = await stream.waitFor(5);
  assert.ok(events.every((e) => e.data === body));
});
