import { test } from 'node:test';
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { runBin, spawnBin, waitExit, waitForOutput } from '../helpers/process.js';
import { startScriptedServer, stream } from '../helpers/sse-server.js';

const timeout = 20000;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

test(
  'retry: 99999999999 is waited as 24 h, said as such, with no timer overflow',
  { timeout },
  async (t) => {
    const server = await startScriptedServer([stream(['retry: 99999999999\ndata: a\n\n'])]);
    t.after(() => server.close());
    const url = `${server.url}/poll/tok`;
    const child = spawnBin('eventsource-client', ['-P', String(server.port), '-r', '10', 'tok']);
    t.after(() => void child.kill('SIGKILL'));
    await waitForOutput(child, /reconnecting in/);
    // An overflowing timer fires after 1 ms: reconnections would show within this wait.
    await sleep(300);
    child.kill('SIGTERM');
    const result = await waitExit(child);
    assert.equal(result.stdout, 'message: a\n');
    assert.equal(result.stderr, `connected to ${url}\nstream ended; reconnecting in 86400000 ms\n`);
    assert.equal(result.code, 143);
    assert.equal(server.requests.length, 1);
  },
);

test('a gzip-encoded stream is decoded: its events on stdout, exit 0', { timeout }, async (t) => {
  const body = zlib.gzipSync('id: 1\ndata: one\n\nevent: e\ndata: two\n\n');
  const server = await startScriptedServer([
    stream([body.subarray(0, 10), body.subarray(10)], { headers: { 'content-encoding': 'gzip' } }),
  ]);
  t.after(() => server.close());
  const result = await runBin('eventsource-client', ['-P', String(server.port), '--json', 'tok']);
  assert.deepEqual(result, {
    code: 0,
    signal: null,
    stdout: '{"id":"1","event":"message","data":"one"}\n{"id":"1","event":"e","data":"two"}\n',
    stderr: `connected to ${server.url}/poll/tok\n`,
  });
});

test(
  'a Content-Encoding the client does not decode exits 1 with one line',
  { timeout },
  async (t) => {
    const server = await startScriptedServer([
      stream(['data: x\n\n'], { headers: { 'content-encoding': 'zstd' } }),
    ]);
    t.after(() => server.close());
    const url = `${server.url}/poll/tok`;
    const result = await runBin('eventsource-client', ['-P', String(server.port), 'tok']);
    assert.deepEqual(result, {
      code: 1,
      signal: null,
      stdout: '',
      stderr: `Unable to connect to ${url}: the response's Content-Encoding "zstd" is not one the client decodes (gzip, deflate, br)\n`,
    });
  },
);
