import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { StringIdEvent } from '../../src/events.js';
import { createListener } from '../../src/index.js';
import { MemoryBroker } from '../../src/listener/memory-broker.js';
import { openStream } from '../helpers/net.js';
import { startListenerProcess } from '../helpers/process.js';
import {
  post,
  rawRequest,
  replyId,
  residentBytes,
  sleep,
  startListener,
  waitUntil,
  type RawConnection,
} from '../helpers/listener-helpers.js';

const MiB = 1024 * 1024;
const KiB = 1024;

/** Subscribes to `token` and leaves at once: the token then keeps its history through its grace. */
async function touch(url: string, token: string): Promise<void> {
  const stream = await openStream(`${url}/poll/${token}`);
  assert.equal(stream.response.statusCode, 200);
  stream.close();
  await stream.ended;
}

async function getStats(url: string): Promise<{ historyBytes: number; tokens: number }> {
  return (await (await fetch(`${url}/stats`)).json()) as { historyBytes: number; tokens: number };
}

test(
  'many tokens × large events stay within maxMemory; the oldest go first and replay from them gets the gap signal',
  { timeout: 30000 },
  async (t) => {
    const running = await startListener({
      eventClass: StringIdEvent,
      keepalive: 0,
      maxMemory: 8 * MiB,
      gapEvent: 'gap',
    });
    t.after(() => running.close());
    const tokens = Array.from({ length: 24 }, (_, i) => `t${i}`);
    for (const token of tokens) await touch(running.url, token);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    t.after(() => agent.destroy());
    // 24 tokens × 4 events × 256 KiB = 24 MiB kept for replay (each 202), three times the budget.
    const ids = new Map<string, string[]>();
    let maxHistory = 0;
    for (let round = 0; round < 4; round++) {
      for (const token of tokens) {
        const body = `${token}:${round}:`.padEnd(256 * KiB, 'x');
        const result = await post(`${running.url}/ping/${token}`, body, { agent });
        assert.equal(result.status, 202, result.body);
        ids.set(token, [...(ids.get(token) ?? []), replyId(result)]);
        maxHistory = Math.max(maxHistory, running.listener.stats().historyBytes);
      }
    }
    const stats = running.listener.stats();
    assert.ok(maxHistory <= 8 * MiB, `history peaked at ${maxHistory} bytes`);
    assert.ok(stats.historyBytes > 6 * MiB, `history holds ${stats.historyBytes} bytes`);
    assert.ok(stats.historyEvicted >= 60, `${stats.historyEvicted} events evicted`);
    // The first token lost its oldest events first: a replay from its first id gets the gap signal.
    const first = ids.get('t0') as string[];
    const gap = await openStream(`${running.url}/poll/t0`, { 'last-event-id': first[0] });
    t.after(() => gap.close());
    await gap.waitFor(1);
    assert.equal(gap.events[0]?.event, 'gap');
    assert.match(gap.raw, /no longer kept/);
    // The last token posted to still has its newest events: a replay from a kept id has no gap.
    const last = ids.get('t23') as string[];
    const whole = await openStream(`${running.url}/poll/t23`, { 'last-event-id': last[2] });
    t.after(() => whole.close());
    const replayed = await whole.waitFor(1);
    assert.deepEqual(
      replayed.map((event) => event.id),
      [last[3]],
    );
    assert.doesNotMatch(whole.raw, /no longer kept/);
  },
);

test('the budget evicts across tokens oldest first, never the event just kept', () => {
  const broker = new MemoryBroker({ maxMemory: 4000, graceMs: 1000 });
  t_subscribeAndLeave(broker, ['a', 'b']);
  const publish = (token: string, data: string): void => {
    const event = new StringIdEvent(token, 'ping', data);
    assert.equal(broker.publish(event).status, 202);
  };
  publish('a', 'a1'.padEnd(1000, '.'));
  publish('b', 'b1'.padEnd(1000, '.'));
  publish('a', 'a2'.padEnd(1000, '.'));
  assert.equal(broker.stats().historyEvicted, 0);
  publish('b', 'b2'.padEnd(1000, '.'));
  // Four events of about 1.3 KB counted: the oldest (a1) went.
  assert.equal(broker.stats().historyEvicted, 1);
  assert.equal(broker.stats().historyEvents, 3);
  // One event larger than the whole budget is still kept, alone.
  publish('a', 'a3'.padEnd(5000, '.'));
  assert.equal(broker.stats().historyEvents, 1);
  void broker.close();
});

/** Registers a subscriber for each token and lets it leave, so the token keeps history. */
function t_subscribeAndLeave(broker: MemoryBroker, tokens: string[]): void {
  for (const token of tokens) {
    const sink = {
      token,
      context: {
        maxBuffer: 1,
        streams: new Set(),
        corkSingleWrites: false,
        delivered: 0,
        dropped: 0,
        cutOff: 0,
        queuedBytes: 0,
        refusedForMemory: 0,
      },
      isClosed: false,
      onClose: undefined as ((s: unknown) => void) | undefined,
      open() {},
      write() {
        return true;
      },
    };
    broker.subscribe(sink as never, undefined);
    sink.isClosed = true;
    sink.onClose?.(sink);
  }
}

test(
  'POSTs get 503 with Retry-After once events waiting for slow readers fill maxMemory',
  { timeout: 30000 },
  async (t) => {
    const running = await startListener({
      keepalive: 0,
      mode: 'multi',
      maxMemory: 2 * MiB,
      maxBuffer: 64 * MiB,
    });
    t.after(() => running.close());
    const readers: RawConnection[] = [];
    t.after(() => readers.forEach((reader) => reader.socket.destroy()));
    for (let i = 0; i < 4; i++) {
      readers.push(
        await rawRequest(running.port, 'GET /poll/slow HTTP/1.1\r\nHost: x\r\n\r\n', {
          isReading: false,
        }),
      );
    }
    await waitUntil(() => running.listener.stats().streams === 4, 'four streams');
    const body = Buffer.alloc(256 * KiB, 'a');
    let refused: Awaited<ReturnType<typeof post>> | undefined;
    // At most 64 MiB posted: the kernel's socket buffers take a few MiB per reader first.
    for (let i = 0; i < 256 && refused === undefined; i++) {
      const result = await post(`${running.url}/ping/slow`, body);
      if (result.status === 503) refused = result;
      else assert.equal(result.status, 200, result.body);
    }
    assert.ok(refused !== undefined, 'a POST was refused');
    assert.equal(refused.body, 'Too much waiting for slow subscribers');
    assert.equal(refused.headers['retry-after'], '5');
    const stats = running.listener.stats();
    // Each reader's queue holds the event (the same bytes, counted once per reader), so what waits
    // may pass the budget by the last event accepted, once per reader.
    assert.ok(
      stats.bytesQueued <= 2 * MiB + 4 * (256 * KiB + 64),
      `${stats.bytesQueued} bytes queued`,
    );
    assert.ok(stats.postsRefusedForMemory >= 1);
    assert.equal(stats.subscribersCutOff, 0);
    // Once the slow readers are gone, so is what waited for them: POSTs are taken again.
    for (const reader of readers) reader.socket.destroy();
    await waitUntil(() => running.listener.stats().bytesQueued === 0, 'the queues emptied');
    assert.equal((await post(`${running.url}/ping/slow`, body)).status, 202);
  },
);

test(
  'the CLI keeps large history within --max-memory and gives the memory back when the grace ends, with no further POST',
  { timeout: 120000 },
  async (t) => {
    const listener = await startListenerProcess([
      '-i',
      '-k',
      '0',
      '--max-memory',
      '32m',
      '--grace',
      '12000',
    ]);
    t.after(() => listener.stop());
    const pid = listener.child.pid as number;
    const tokens = Array.from({ length: 32 }, (_, i) => `m${i}`);
    for (const token of tokens) await touch(listener.url, token);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    t.after(() => agent.destroy());
    await sleep(200);
    const baseline = residentBytes(pid);
    let peak = baseline;
    // 32 tokens × 4 × 1 MB = 122 MiB posted, almost four times the budget.
    for (let round = 0; round < 4; round++) {
      // Subscribing again restarts each token's grace, however slow this machine is.
      for (const token of tokens) await touch(listener.url, token);
      await Promise.all(
        tokens.map(async (token) => {
          const result = await post(
            `${listener.url}/ping/${token}`,
            `${token}:${round}:`.padEnd(1_000_000, 'x'),
            { agent },
          );
          assert.equal(result.status, 202, result.body);
        }),
      );
      peak = Math.max(peak, residentBytes(pid));
    }
    const full = await getStats(listener.url);
    assert.ok(full.historyBytes <= 32 * MiB, `history ${full.historyBytes}`);
    assert.ok(full.historyBytes > 24 * MiB, `history ${full.historyBytes}`);
    const growth = (peak - baseline) / MiB;
    t.diagnostic(`RSS ${(baseline / MiB).toFixed(0)} MiB, peak +${growth.toFixed(1)} MiB`);
    assert.ok(growth < 32 + 40, `RSS grew by ${growth.toFixed(1)} MiB with a 32 MiB budget`);
    // What the history holds is still there while the graces run (large bodies' garbage is gone).
    await sleep(1000);
    const held = residentBytes(pid);
    assert.ok((await getStats(listener.url)).historyBytes > 24 * MiB);
    // The graces end 12 s after the tokens were last left: their history goes, and so does the
    // memory, with no request to trigger a collection.
    let after = await getStats(listener.url);
    const deadline = Date.now() + 40000;
    while (after.tokens > 0 && Date.now() < deadline) {
      await sleep(200);
      after = await getStats(listener.url);
    }
    assert.equal(after.tokens, 0);
    assert.equal(after.historyBytes, 0);
    await waitUntil(() => residentBytes(pid) < held - 16 * MiB, 'memory given back', 10000);
    t.diagnostic(`RSS after the grace: ${(residentBytes(pid) / MiB).toFixed(0)} MiB`);
  },
);

for (const fastPath of [true, false]) {
  test(
    `bodies still arriving count towards maxMemory (${fastPath ? 'fast path' : 'node:http'}), and stop counting when their request ends or is cut`,
    { timeout: 30000 },
    async (t) => {
      // listen(): the fast path sits in front of the server it makes, not of a handler.
      const listener = createListener({
        keepalive: 0,
        mode: 'multi',
        maxMemory: 1 * MiB,
        maxBody: 4 * MiB,
        fastPath,
      });
      t.after(() => listener.close());
      const url = (await listener.listen(0, '127.0.0.1')).replace(/\/$/, '');
      const running = { listener, url, port: Number(new URL(url).port) };
      const streams = [
        await openStream(`${running.url}/poll/u0`),
        await openStream(`${running.url}/poll/other`),
      ];
      t.after(() => streams.forEach((stream) => stream.close()));
      const length = 400 * KiB;
      const head = (token: string, size: number): string =>
        `POST /ping/${token} HTTP/1.1\r\nHost: x\r\nContent-Length: ${size}\r\n\r\n`;
      // Three uploads of 400 KiB, 300 KiB of each sent: 900 KiB being received.
      const uploads: RawConnection[] = [];
      t.after(() => uploads.forEach((upload) => upload.socket.destroy()));
      for (let i = 0; i < 3; i++) {
        uploads.push(await rawRequest(running.port, head(`u${i}`, length)));
        (uploads[i] as RawConnection).socket.write(Buffer.alloc(300 * KiB, 'a'));
      }
      await waitUntil(
        () => running.listener.stats().bytesReceiving === 900 * KiB,
        'the halves received',
      );
      // A fourth large POST would take what is being received past the budget: refused at once.
      const refused = await post(`${running.url}/ping/other`, Buffer.alloc(300 * KiB, 'b'));
      assert.equal(refused.status, 503, refused.body);
      assert.equal(refused.headers['retry-after'], '5');
      assert.equal(running.listener.stats().postsRefusedForMemory, 1);
      // One upload completes (its body is delivered), one is cut off.
      const first = uploads[0] as RawConnection;
      first.socket.write(Buffer.alloc(100 * KiB, 'a'));
      await first.waitFor(/^HTTP\/1\.1 200 /);
      (uploads[1] as RawConnection).socket.destroy();
      await waitUntil(
        () => running.listener.stats().bytesReceiving === 300 * KiB,
        'only the third still counted',
      );
      assert.equal(
        (await post(`${running.url}/ping/other`, Buffer.alloc(300 * KiB, 'b'))).status,
        200,
      );
      (uploads[2] as RawConnection).socket.destroy();
      await waitUntil(() => running.listener.stats().bytesReceiving === 0, 'nothing counted');
    },
  );
}
