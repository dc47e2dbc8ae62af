import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventSourceClient, type EventSourceErrorEvent } from '../../src/client.js';
import { reconnectDelayMs } from '../../src/client/backoff.js';
import { MAX_RETRY_MS, MIN_RETRY_MS } from '../../src/wire/retry.js';
import { reply, startScriptedServer, stream } from '../helpers/sse-server.js';

const timeout = 15000;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Records the warnings the process emits while a test runs (TimeoutOverflowWarning above all). */
function recordWarnings(t: { after: (fn: () => void) => void }): Error[] {
  const warnings: Error[] = [];
  const onWarning = (warning: Error): void => void warnings.push(warning);
  process.on('warning', onWarning);
  t.after(() => process.off('warning', onWarning));
  return warnings;
}

test('the bounds are 100 ms and 24 h, within what a Node timer can wait', () => {
  assert.equal(MIN_RETRY_MS, 100);
  assert.equal(MAX_RETRY_MS, 86_400_000);
  assert.ok(MAX_RETRY_MS <= 2 ** 31 - 1);
});

// [retryMs, failureCount, Retry-After, lowest, highest]
const delays: [number, number, number | undefined, number, number][] = [
  [0, 0, undefined, 100, 100],
  [99999999999, 0, undefined, MAX_RETRY_MS, MAX_RETRY_MS],
  [Infinity, 0, undefined, MAX_RETRY_MS, MAX_RETRY_MS],
  [2500, 0, undefined, 2500, 2500],
  [0, 1, undefined, 50, 100],
  [0, 1, 99999999999000, MAX_RETRY_MS, MAX_RETRY_MS],
  [99999999999, 1, undefined, 15000, 30000],
];
for (const [retryMs, failureCount, retryAfterMs, lowest, highest] of delays) {
  test(`reconnectDelayMs(${retryMs}, 30000, ${failureCount}, ${retryAfterMs}) is within ${lowest}-${highest} ms`, () => {
    for (let i = 0; i < 20; i++) {
      const delayMs = reconnectDelayMs(retryMs, 30000, failureCount, retryAfterMs);
      assert.ok(delayMs >= lowest && delayMs <= highest, `got ${delayMs}`);
    }
  });
}

test(
  'retry: 0 from a server that ends each stream cleanly waits 100 ms between connections',
  { timeout },
  async (t) => {
    const server = await startScriptedServer([
      stream(['retry: 0\ndata: one\n\n']),
      stream(['data: two\n\n']),
      reply(204),
    ]);
    t.after(() => server.close());
    const client = new EventSourceClient(`${server.url}/s`);
    t.after(() => client.close());
    const errors: EventSourceErrorEvent[] = [];
    client.addEventListener('error', (event) => errors.push(event as EventSourceErrorEvent));
    await client.closed;
    assert.equal(server.requests.length, 3);
    assert.deepEqual(
      errors.map((e) => [e.willReconnect, e.delayMs]),
      [
        [true, 100],
        [true, 100],
        [false, undefined],
      ],
    );
    assert.equal(client.retryMs, 100);
    for (let i = 1; i < 3; i++) {
      const gap = (server.requests[i]?.at ?? 0) - (server.requests[i - 1]?.at ?? 0);
      assert.ok(gap >= 95, `connection ${i + 1} came ${gap} ms after the one before`);
    }
  },
);

test(
  'a huge retry: waits 24 h (and says so) instead of overflowing the timer',
  { timeout },
  async (t) => {
    const warnings = recordWarnings(t);
    const server = await startScriptedServer([stream(['retry: 99999999999\ndata: one\n\n'])]);
    t.after(() => server.close());
    const client = new EventSourceClient(`${server.url}/s`);
    t.after(() => client.close());
    const errors: EventSourceErrorEvent[] = [];
    client.addEventListener('error', (event) => errors.push(event as EventSourceErrorEvent));
    await server.waitForRequests(1);
    while (errors.length === 0) await sleep(5);
    // An overflowing timer fires after 1 ms: a second request would arrive within this wait.
    await sleep(300);
    assert.equal(server.requests.length, 1);
    assert.deepEqual(
      errors.map((e) => [e.willReconnect, e.delayMs]),
      [[true, MAX_RETRY_MS]],
    );
    assert.equal(client.retryMs, MAX_RETRY_MS);
    assert.equal(client.readyState, EventSourceClient.CONNECTING);
    assert.deepEqual(
      warnings.map((w) => w.name),
      [],
    );
  },
);

test('a huge Retry-After waits 24 h instead of overflowing the timer', { timeout }, async (t) => {
  const warnings = recordWarnings(t);
  const server = await startScriptedServer([reply(503, '', { 'retry-after': '99999999999' })]);
  t.after(() => server.close());
  const client = new EventSourceClient(`${server.url}/s`);
  t.after(() => client.close());
  const errors: EventSourceErrorEvent[] = [];
  client.addEventListener('error', (event) => errors.push(event as EventSourceErrorEvent));
  await server.waitForRequests(1);
  while (errors.length === 0) await sleep(5);
  await sleep(300);
  assert.equal(server.requests.length, 1);
  assert.deepEqual(
    errors.map((e) => e.delayMs),
    [MAX_RETRY_MS],
  );
  assert.deepEqual(
    warnings.map((w) => w.name),
    [],
  );
});
