/**
 * Our eventsource-client against a raw node:http server replaying event-stream format cases (the
 * topics of the web-platform-tests `eventsource/format-*` tests, restated as data in
 * fixtures/wpt-format-cases.ts), and the `retry` and `id` cases that only show on reconnection.
 */
import assert from 'node:assert/strict';
import type http from 'node:http';
import { after, describe, it, test } from 'node:test';
import { loadCli, runInProcess } from '../helpers/interop-peers.js';
import { listen } from '../helpers/net.js';
import { runBin } from '../helpers/process.js';
import { FORMAT_CASES } from './fixtures/wpt-format-cases.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Writes `chunks` with a pause between them, so that each is its own read on the client. */
async function replay(res: http.ServerResponse, chunks: (string | Buffer)[]): Promise<void> {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  res.flushHeaders();
  for (const chunk of chunks) {
    await sleep(5);
    if (res.destroyed) return;
    res.write(chunk);
  }
  res.end();
}

function parseLines(stdout: string): unknown[] {
  return stdout
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as unknown);
}

// The table runs the client's run(argv, io) in this process: dozens of Node start-ups would cost
// more than the rest of the interop suite on a busy 2-core machine. The reconnection cases below
// spawn the real bin/eventsource-client.js.
describe('eventsource-client reads the web-platform-tests format cases', { timeout: 60000 }, () => {
  const byName = new Map(FORMAT_CASES.map((entry) => [entry.name, entry]));
  const started = listen((req, res) => {
    const entry = byName.get((req.url ?? '').replace(/^\/case\//, ''));
    if (entry === undefined) {
      res.writeHead(404).end();
      return;
    }
    void replay(res, entry.chunks);
  });
  after(async () => (await started).close());

  for (const entry of FORMAT_CASES) {
    it(`${entry.name}: ${entry.about}`, { timeout: 20000 }, async () => {
      const { url } = await started;
      const { run } = await loadCli('client');
      const result = await runInProcess(run, ['--url', `${url}/case/${entry.name}`, '--json']);
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(parseLines(result.stdout), entry.expected);
    });
  }
});

/**
 * A server answering GET n with `bodies[n]` (the last one again after that), recording when each
 * request came and its Last-Event-ID.
 */
async function startReconnectServer(bodies: string[]) {
  const requests: { at: number; lastEventId: string | undefined }[] = [];
  const server = await listen((req, res) => {
    const header = req.headers['last-event-id'];
    requests.push({
      at: performance.now(),
      lastEventId: typeof header === 'string' ? header : undefined,
    });
    void replay(res, [bodies[Math.min(requests.length - 1, bodies.length - 1)] ?? '']);
  });
  return { ...server, requests };
}

test(
  'a valid retry field sets the reconnection time; an id with NUL is not sent back',
  { timeout: 30000 },
  async (t) => {
    const server = await startReconnectServer([
      'id: abc\nretry: 150\ndata: first\n\nid: x\u0000y\ndata: nul\n\n',
      'data: second\n\n',
    ]);
    t.after(() => server.close());
    // -r 5000 is the client's own delay: only the server's retry: 150 can bring it back sooner.
    const result = await runBin('eventsource-client', [
      '--url',
      `${server.url}/`,
      '-r',
      '5000',
      '--json',
      '--count',
      '3',
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(parseLines(result.stdout), [
      { id: 'abc', event: 'message', data: 'first' },
      { id: 'abc', event: 'message', data: 'nul' },
      { id: 'abc', event: 'message', data: 'second' },
    ]);
    const [first, second] = server.requests;
    assert.equal(first?.lastEventId, undefined);
    assert.equal(second?.lastEventId, 'abc');
    const gap = (second?.at ?? 0) - (first?.at ?? 0);
    assert.ok(gap >= 140 && gap < 2500, `reconnected after ${gap} ms`);
  },
);

test('retry fields that are not all ASCII digits are ignored', { timeout: 30000 }, async (t) => {
  const server = await startReconnectServer([
    'retry: 50ms\nretry: 5.0\nretry: -5\nretry:  50\nretry\ndata: first\n\n',
    'data: second\n\n',
  ]);
  t.after(() => server.close());
  const result = await runBin('eventsource-client', [
    '--url',
    `${server.url}/`,
    '-r',
    '600',
    '--json',
    '--count',
    '2',
  ]);
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(parseLines(result.stdout), [
    { id: null, event: 'message', data: 'first' },
    { id: null, event: 'message', data: 'second' },
  ]);
  const gap = (server.requests[1]?.at ?? 0) - (server.requests[0]?.at ?? 0);
  assert.ok(gap >= 550 && gap < 4000, `reconnected after ${gap} ms, not 50`);
});
