/**
 * HTTP/2 on the TLS listener: every route answers over HTTP/2 as over HTTP/1.1 (the same core
 * decides both), streams multiplex on one session, a slow stream is cut alone, and close() sends
 * GOAWAY and ends every stream. Real TLS sockets on 127.0.0.1 with the throwaway certificate.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import https from 'node:https';
import tls from 'node:tls';
import { once } from 'node:events';
import { StringIdEvent } from '../../src/events.js';
import {
  createListener,
  type Listener,
  type ListenerOptions,
} from '../../src/listener/listener.js';
import { comparable, h2Request, openH2Stream, type Reply } from '../helpers/h2.js';
import { fixture } from '../helpers/recorder.js';
import { sleep, waitUntil } from '../helpers/listener-helpers.js';
import { startListenerProcess } from '../helpers/process.js';
import { redisSkipReason, startRedis } from '../helpers/redis.js';

const timeout = 20000;
const tlsOptions = { key: fixture('key.pem'), cert: fixture('cert.pem') };
const ca = fixture('ca.pem');

interface Running {
  listener: Listener;
  /** Base URL without the trailing slash. */
  url: string;
}

async function start(t: TestContext, options: ListenerOptions = {}): Promise<Running> {
  const listener = createListener({ keepalive: 0, tls: tlsOptions, ...options });
  const url = (await listener.listen(0, '127.0.0.1')).replace(/\/$/, '');
  t.after(() => listener.close());
  return { listener, url };
}

function connect(t: TestContext, url: string): http2.ClientHttp2Session {
  const session = http2.connect(url, { ca });
  session.on('error', () => {}); // a session reset by the test's own close
  t.after(() => session.destroy());
  return session;
}

/** The same request over HTTP/1.1 (node's https offers no ALPN, so the listener falls back). */
async function h1Request(
  url: string,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<Reply & { alpn: string | false | null }> {
  const request = https.request(`${url}${path}`, { method, headers, ca, agent: false });
  request.end(body);
  const [response] = (await once(request, 'response')) as [import('node:http').IncomingMessage];
  response.setEncoding('utf8');
  let text = '';
  for await (const chunk of response) text += chunk as string;
  return {
    status: response.statusCode ?? 0,
    headers: comparable(response.headers),
    body: text,
    alpn: (response.socket as tls.TLSSocket | null)?.alpnProtocol ?? null,
  };
}

test(
  'with tls, ALPN picks h2 for an HTTP/2 client and http/1.1 for the others',
  { timeout },
  async (t) => {
    const { url } = await start(t);
    for (const [offered, expected] of [
      [['h2', 'http/1.1'], 'h2'],
      [['http/1.1'], 'http/1.1'],
    ] as const) {
      const socket = tls.connect({
        host: '127.0.0.1',
        port: Number(new URL(url).port),
        ca,
        ALPNProtocols: [...offered],
        servername: 'localhost',
      });
      await once(socket, 'secureConnect');
      assert.equal(socket.alpnProtocol, expected);
      socket.destroy();
    }
    const reply = await h1Request(url, 'GET', '/');
    assert.equal(reply.status, 200);
    assert.equal(reply.alpn, false, 'a client that offers no ALPN gets HTTP/1.1');
  },
);

test('with http2: false, only http/1.1 is offered', { timeout }, async (t) => {
  const { url } = await start(t, { http2: false });
  const socket = tls.connect({
    host: '127.0.0.1',
    port: Number(new URL(url).port),
    ca,
    ALPNProtocols: ['h2', 'http/1.1'],
    servername: 'localhost',
  });
  await once(socket, 'secureConnect');
  assert.notEqual(socket.alpnProtocol, 'h2');
  socket.destroy();
  const reply = await h1Request(url, 'GET', '/stats');
  assert.equal(reply.status, 200);
});

// Requests that change nothing, answered over both protocols by one listener: the answers must be
// the same but for the per-connection headers.
const SAME_ANSWERS: [string, ListenerOptions, string, string, Record<string, string>, string?][] = [
  ['root page', {}, 'GET', '/', {}],
  ['demo page', { demo: true }, 'GET', '/', {}],
  ['404 unknown path', {}, 'GET', '/nothing/here/at/all', {}],
  ['400 bad token encoding', {}, 'GET', '/poll/%E0%A4%A', {}],
  ['301 GET on an action', {}, 'GET', '/ping/t', {}],
  ['405 PUT', {}, 'PUT', '/ping/t', {}, 'x'],
  ['404 POST unknown action', {}, 'POST', '/nope/t', {}, 'x'],
  ['404 POST to a token nobody holds', {}, 'POST', '/ping/t', {}, 'x'],
  [
    '404 POST with CORS',
    { cors: 'https://app.example' },
    'POST',
    '/ping/t',
    { origin: 'https://app.example' },
    'x',
  ],
  ['401 POST without the secret', { publishSecret: 's3cret' }, 'POST', '/ping/t', {}, 'x'],
  ['413 POST over maxBody', { maxBody: 4 }, 'POST', '/ping/t', {}, 'too long'],
  ['400 retry that is not a number', {}, 'POST', '/retry/t', {}, 'soon'],
  ['204 OPTIONS without CORS', {}, 'OPTIONS', '/poll/t', {}],
  [
    '204 OPTIONS preflight with CORS',
    { cors: '*' },
    'OPTIONS',
    '/poll/t',
    { origin: 'https://app.example', 'access-control-request-headers': 'last-event-id' },
  ],
  [
    '503 when a stream is over maxConnections: none here, so 200 stats',
    { maxConnections: 1 },
    'GET',
    '/stats',
    {},
  ],
];

for (const [name, options, method, path, headers, body] of SAME_ANSWERS) {
  test(`over HTTP/2 as over HTTP/1.1: ${name}`, { timeout }, async (t) => {
    const { url } = await start(t, options);
    const session = connect(t, url);
    const h2 = await h2Request(session, method, path, headers, body);
    const h1 = await h1Request(url, method, path, headers, body);
    if (path === '/stats') {
      // The counters may move between the two requests; their shape may not.
      assert.deepEqual(Object.keys(JSON.parse(h2.body)), Object.keys(JSON.parse(h1.body)));
      delete h2.headers['content-length'];
      delete h1.headers['content-length'];
      h1.body = h2.body;
    }
    assert.deepEqual({ ...h2, alpn: undefined }, { ...h1, alpn: undefined });
  });
}

test(
  'a stream over HTTP/2 has the event-stream headers, its events, keepalive comments and CORS',
  { timeout },
  async (t) => {
    const origin = 'https://app.example';
    const { url } = await start(t, { eventClass: StringIdEvent, cors: origin, keepalive: 100 });
    const session = connect(t, url);
    const opened = await openH2Stream(session, '/poll/k', { origin });
    assert.equal(opened.headers[':status'], 200);
    assert.deepEqual(comparable(opened.headers), {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache, no-transform',
      'x-accel-buffering': 'no',
      'access-control-allow-origin': origin,
      'access-control-allow-credentials': 'true',
      vary: 'Origin',
    });
    const reply = await h2Request(session, 'POST', '/ping/k', { origin }, 'hello\nworld');
    assert.equal(reply.status, 200);
    const answer = JSON.parse(reply.body) as { id: string; subscribers: number };
    assert.equal(answer.subscribers, 1);
    const [event] = await opened.waitFor(1);
    assert.deepEqual(
      { id: event?.id, event: event?.event, data: event?.data },
      { id: answer.id, event: 'ping', data: 'hello\nworld' },
    );
    await waitUntil(() => opened.raw.includes(':\n\n'), 'a keepalive comment', 2000);
    // A second subscriber in single mode: 423, over the same session.
    const refused = await h2Request(session, 'GET', '/poll/k');
    assert.equal(refused.status, 423);
    assert.match(refused.body, /^Target is already connected \(--multi /);
    // close ends the stream cleanly.
    const closed = await h2Request(session, 'POST', '/close/k');
    assert.equal(closed.status, 200);
    await opened.ended;
  },
);

test(
  'over HTTP/2, a reconnect with Last-Event-ID replays what was missed',
  { timeout },
  async (t) => {
    const { url, listener } = await start(t, { eventClass: StringIdEvent });
    const session = connect(t, url);
    const first = await openH2Stream(session, '/poll/r');
    for (const data of ['1', '2']) await h2Request(session, 'POST', '/ping/r', {}, data);
    const seen = await first.waitFor(2);
    first.stream.close();
    await first.ended;
    // The listener sees the stream close a moment later: from then on a POST is kept (202).
    await waitUntil(() => listener.stats().streams === 0, 'the stream to close', 2000);
    assert.equal((await h2Request(session, 'POST', '/ping/r', {}, '3')).status, 202);
    await h2Request(session, 'POST', '/ping/r', {}, '4');
    const second = await openH2Stream(session, '/poll/r', { 'last-event-id': seen[1]?.id ?? '' });
    const replayed = await second.waitFor(2);
    assert.deepEqual(
      replayed.map((event) => event.data),
      ['3', '4'],
    );
  },
);

test(
  'over HTTP/2, maxConnections counts streams: the next one gets 503 with Retry-After',
  { timeout },
  async (t) => {
    const { url } = await start(t, { maxConnections: 2 });
    const session = connect(t, url);
    await openH2Stream(session, '/poll/a');
    await openH2Stream(session, '/poll/b');
    const refused = await h2Request(session, 'GET', '/poll/c');
    assert.equal(refused.status, 503);
    assert.equal(refused.headers['retry-after'], '5');
    assert.equal(refused.body, 'Too many connections');
  },
);

test(
  '200 streams on one HTTP/2 session to 200 tokens each get exactly their own event',
  { timeout },
  async (t) => {
    const { url, listener } = await start(t);
    const session = connect(t, url);
    const streams = await Promise.all(
      Array.from({ length: 200 }, (_, i) => openH2Stream(session, `/poll/token-${i}`)),
    );
    assert.equal(listener.stats().streams, 200);
    const replies = await Promise.all(
      streams.map((_, i) => h2Request(session, 'POST', `/ping/token-${i}`, {}, `for ${i}`)),
    );
    assert.ok(replies.every((reply) => reply.status === 200));
    await Promise.all(streams.map((opened) => opened.waitFor(1)));
    await sleep(50);
    streams.forEach((opened, i) => {
      assert.deepEqual(
        opened.events.map((event) => event.data),
        [`for ${i}`],
      );
    });
  },
);

test(
  'over HTTP/2, a stream that stops reading is cut at maxBuffer while its sibling keeps receiving',
  { timeout },
  async (t) => {
    const { url, listener } = await start(t, { maxBuffer: 64 * 1024, mode: 'multi' });
    const session = connect(t, url);
    const slow = await openH2Stream(session, '/poll/slow');
    const fast = await openH2Stream(session, '/poll/fast');
    slow.stream.pause();
    const block = 'x'.repeat(16 * 1024);
    let sent = 0;
    // Enough to fill the stream's flow-control window (64 KiB) and the listener's buffer beyond it.
    for (; sent < 64 && listener.stats().subscribersCutOff === 0; sent++) {
      await h2Request(session, 'POST', '/ping/slow', {}, block);
      await h2Request(session, 'POST', '/ping/fast', {}, String(sent));
    }
    assert.equal(listener.stats().subscribersCutOff, 1, 'the slow stream was cut off');
    await slow.ended;
    assert.equal(slow.stream.rstCode, http2.constants.NGHTTP2_CANCEL);
    // The sibling got everything so far and still receives.
    await fast.waitFor(sent);
    await h2Request(session, 'POST', '/ping/fast', {}, 'after');
    const events = await fast.waitFor(sent + 1);
    assert.equal(events.at(-1)?.data, 'after');
    assert.equal(session.destroyed, false);
  },
);

test('close() sends GOAWAY and ends every HTTP/2 stream', { timeout }, async (t) => {
  const listener = createListener({ keepalive: 0, tls: tlsOptions, mode: 'multi' });
  const url = (await listener.listen(0, '127.0.0.1')).replace(/\/$/, '');
  const session = connect(t, url);
  const streams = await Promise.all([1, 2, 3].map((i) => openH2Stream(session, `/poll/g${i}`)));
  const goaway = once(session, 'goaway');
  const started = Date.now();
  await listener.close();
  await goaway;
  await Promise.all(streams.map((opened) => opened.ended));
  for (const opened of streams)
    assert.equal(opened.stream.rstCode, http2.constants.NGHTTP2_NO_ERROR);
  assert.ok(Date.now() - started < 2000, 'closed without waiting for the grace period');
});

test(
  'eventsource-listener -K -C serves HTTP/2; --no-http2 offers HTTP/1.1 only',
  { timeout: 30000 },
  async (t) => {
    const args = ['-k', '0', '-K', fileOf('key.pem'), '-C', fileOf('cert.pem')];
    for (const [extra, expected] of [
      [[], 'h2'],
      [['--no-http2'], 'http/1.1'],
    ] as const) {
      const running = await startListenerProcess([...args, ...extra]);
      t.after(() => running.stop());
      assert.match(running.url, /^https:/);
      const socket = tls.connect({
        host: '127.0.0.1',
        port: running.port,
        ca,
        ALPNProtocols: ['h2', 'http/1.1'],
        servername: 'localhost',
      });
      await once(socket, 'secureConnect');
      assert.equal(socket.alpnProtocol, expected);
      socket.destroy();
      if (expected === 'h2') {
        const session = connect(t, running.url);
        const opened = await openH2Stream(session, '/poll/cli');
        const reply = await h2Request(session, 'POST', '/ping/cli', {}, 'over h2');
        assert.equal(reply.status, 200);
        assert.equal((await opened.waitFor(1))[0]?.data, 'over h2');
      }
      const result = await running.stop();
      assert.equal(result.code, 0, result.stderr);
    }
  },
);

function fileOf(name: string): string {
  return new URL(`../../../test/fixtures/${name}`, import.meta.url).pathname;
}

test(
  'over HTTP/2 with --redis --workers 2: streams on both workers get the events POSTed over HTTP/2',
  { skip: redisSkipReason(), timeout: 30000 },
  async (t) => {
    const redis = await startRedis();
    t.after(() => redis.close());
    const running = await startListenerProcess([
      '-k',
      '0',
      '--multi',
      '-K',
      fileOf('key.pem'),
      '-C',
      fileOf('cert.pem'),
      '--redis',
      redis.url,
      '--workers',
      '2',
    ]);
    t.after(() => running.stop());
    // Sessions are spread over the workers by the cluster: several of them reach both.
    const sessions = Array.from({ length: 6 }, () => connect(t, running.url));
    const workers = new Set<string>();
    for (const session of sessions) {
      const stats = JSON.parse((await h2Request(session, 'GET', '/stats')).body) as {
        workerPid: number;
        workers: number;
      };
      assert.equal(stats.workers, 2, 'the stats of both workers');
      workers.add(String(stats.workerPid));
    }
    assert.equal(workers.size, 2, 'both workers serve HTTP/2');
    const streams = await Promise.all(
      sessions.map((session) => openH2Stream(session, '/poll/all')),
    );
    const reply = await h2Request(
      sessions[0] as http2.ClientHttp2Session,
      'POST',
      '/ping/all',
      {},
      'x',
    );
    assert.equal(reply.status, 200);
    assert.equal((JSON.parse(reply.body) as { subscribers: number }).subscribers, 6);
    for (const opened of streams) assert.equal((await opened.waitFor(1))[0]?.data, 'x');
    const result = await running.stop();
    assert.equal(result.code, 0, result.stderr);
  },
);
