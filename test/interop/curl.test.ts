/**
 * The listener against `curl -N`: a plain HTTP reader sees well-formed event blocks, byte for byte,
 * over HTTP/1.1 (chunked) and HTTP/1.0 (no chunking, the stream ends with the connection).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { test, type TestContext } from 'node:test';
import { findExecutable, post, requirePeer, waitUntil } from '../helpers/interop-peers.js';
import { startListenerProcess } from '../helpers/process.js';

/**
 * Runs `curl -N -D -` on `url`: the response head, then the body, on stdout (unbuffered with -N).
 * `output.head` and `output.body` split them at the first blank line.
 */
function startCurl(t: TestContext, curl: string, url: string, extra: string[] = []) {
  const child = spawn(curl, ['-N', '-sS', '-D', '-', ...extra, url]);
  const output = {
    stdout: '',
    stderr: '',
    get head(): string {
      const end = this.stdout.indexOf('\r\n\r\n');
      return end === -1 ? '' : this.stdout.slice(0, end + 2);
    },
    get body(): string {
      const end = this.stdout.indexOf('\r\n\r\n');
      return end === -1 ? '' : this.stdout.slice(end + 4);
    },
  };
  child.stdout.setEncoding('utf8').on('data', (text: string) => (output.stdout += text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => (output.stderr += text));
  const exited = once(child, 'close') as Promise<[number | null, NodeJS.Signals | null]>;
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const connected = waitUntil(
    () => output.head !== '',
    'curl to receive the response headers',
    10000,
    () => `stdout: ${output.stdout}; stderr: ${output.stderr}`,
  );
  return { child, output, exited, connected };
}

async function exitCode(
  exited: Promise<[number | null, NodeJS.Signals | null]>,
): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('curl did not exit within 10 s')), 10000);
  });
  try {
    const [code] = await Promise.race([exited, timeout]);
    return code;
  } finally {
    clearTimeout(timer);
  }
}

test(
  'curl -N reads well-formed event blocks, then a Last-Event-ID replay, byte for byte',
  { timeout: 30000 },
  async (t) => {
    const curl = findExecutable('curl');
    if (!requirePeer(t, 'curl', curl, 'apt-get install curl')) return;
    const listener = await startListenerProcess(['-i', '-k', '0']);
    t.after(() => listener.stop());
    const url = `${listener.url}/poll/curl-token`;

    const first = startCurl(t, curl, url);
    await first.connected;
    assert.match(first.output.head, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(first.output.head, /\r\ncontent-type: text\/event-stream\r\n/i);
    assert.match(first.output.head, /\r\ntransfer-encoding: chunked\r\n/i);
    const hello = await post(listener.url, 'ping', 'curl-token', 'hello');
    const lines = await post(listener.url, 'ping', 'curl-token', 'one\ntwo\r\nthree\rfour');
    assert.deepEqual([hello.status, lines.status], [200, 200]);
    assert.equal((await post(listener.url, 'retry', 'curl-token', '2500')).status, 200);
    assert.equal((await post(listener.url, 'close', 'curl-token', '')).status, 200);
    assert.equal(await exitCode(first.exited), 0, first.output.stderr);
    assert.equal(
      first.output.body,
      `id: ${hello.id}\nevent: ping\ndata: hello\n\n` +
        `id: ${lines.id}\nevent: ping\ndata: one\ndata: two\ndata: three\ndata: four\n\n` +
        'retry: 2500\n\n',
    );

    // Back with the id of the first event: the retry the token keeps, then what followed, once.
    const second = startCurl(t, curl, url, ['-H', `Last-Event-ID: ${hello.id}`]);
    await second.connected;
    assert.equal((await post(listener.url, 'close', 'curl-token', '')).status, 200);
    assert.equal(await exitCode(second.exited), 0, second.output.stderr);
    assert.equal(
      second.output.body,
      `retry: 2500\n\nid: ${lines.id}\nevent: ping\ndata: one\ndata: two\ndata: three\ndata: four\n\n`,
    );
  },
);

test(
  'curl --http1.0 gets the same blocks without chunked framing',
  { timeout: 30000 },
  async (t) => {
    const curl = findExecutable('curl');
    if (!requirePeer(t, 'curl', curl, 'apt-get install curl')) return;
    const listener = await startListenerProcess(['-j', '-i', '-k', '0']);
    t.after(() => listener.stop());
    const reader = startCurl(t, curl, `${listener.url}/poll/curl-json`, ['--http1.0']);
    await reader.connected;
    assert.match(reader.output.head, /^HTTP\/1\.1 200 OK\r\n/);
    assert.doesNotMatch(reader.output.head, /transfer-encoding/i);
    const sent = await post(
      listener.url,
      'ping',
      'curl-json',
      '{ "a": [1, "x"] }',
      'application/json',
    );
    assert.equal(sent.status, 200, sent.body);
    assert.equal((await post(listener.url, 'close', 'curl-json', '')).status, 200);
    assert.equal(await exitCode(reader.exited), 0, reader.output.stderr);
    assert.equal(reader.output.body, `id: ${sent.id}\nevent: ping\ndata: {"a":[1,"x"]}\n\n`);
  },
);
