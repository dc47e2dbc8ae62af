import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import zlib from 'node:zlib';
import {
  diagnose,
  DIAGNOSIS_CHECKS,
  type Diagnosis,
  type DiagnoseOptions,
  type DiagnosisCheckId,
} from '../../src/client/diagnose.js';
import { createListener, type ListenerOptions } from '../../src/listener/listener.js';
import { StringIdEvent } from '../../src/events.js';
import { listen } from '../helpers/net.js';
import {
  fixture,
  startScriptedServer,
  stream,
  reply,
  type Handler,
} from '../helpers/sse-server.js';

const timeout = 20000;
// Short windows: every case takes a second or two.
const quick: DiagnoseOptions = { observeMs: 1000, keepaliveMaxMs: 500 };
// Against the listener (keepalive every 150 ms, deferred after each event), a limit with room
// for a busy machine.
const quickListener: DiagnoseOptions = { observeMs: 1000, keepaliveMaxMs: 1000 };

function check(diagnosis: Diagnosis, id: DiagnosisCheckId): { status: string; detail: string } {
  const found = diagnosis.checks.find((c) => c.id === id);
  assert.ok(found, `no check ${id}`);
  return found;
}

function statuses(diagnosis: Diagnosis): Record<string, string> {
  return Object.fromEntries(diagnosis.checks.map((c) => [c.id, c.status]));
}

/** A listener of the package on 127.0.0.1:0, with ids and a short keepalive. */
async function startOwnListener(
  options: ListenerOptions = {},
): Promise<{ url: string; close: () => Promise<void> }> {
  const listener = createListener({ eventClass: StringIdEvent, keepalive: 150, ...options });
  const url = (await listener.listen(0, '127.0.0.1')).replace(/\/$/, '');
  return { url, close: () => listener.close() };
}

/**
 * A reverse proxy in front of `target` that buffers response bodies of GETs, as nginx's
 * `proxy_buffering` does: it holds them until 16 KiB are waiting or 2.5 s have passed.
 */
async function startBufferingProxy(
  target: string,
): Promise<{ url: string; close: () => Promise<void> }> {
  return listen((request, response) => {
    const upstream = http.request(
      `${target}${request.url ?? '/'}`,
      { method: request.method, headers: request.headers },
      (answer) => {
        const headers = { ...answer.headers };
        delete headers['transfer-encoding'];
        delete headers.connection;
        response.writeHead(answer.statusCode ?? 502, headers);
        if (request.method !== 'GET') {
          answer.pipe(response);
          return;
        }
        response.flushHeaders();
        let held: Buffer[] = [];
        let size = 0;
        let timer: NodeJS.Timeout | undefined;
        const flush = (): void => {
          clearTimeout(timer);
          timer = undefined;
          if (size > 0) response.write(Buffer.concat(held));
          held = [];
          size = 0;
        };
        answer.on('data', (chunk: Buffer) => {
          held.push(chunk);
          size += chunk.length;
          if (size >= 16 * 1024) flush();
          else timer ??= setTimeout(flush, 2500);
        });
        answer.on('end', () => {
          flush();
          response.end();
        });
        response.on('close', () => {
          clearTimeout(timer);
          upstream.destroy();
        });
      },
    );
    upstream.on('error', () => response.destroy());
    request.pipe(upstream);
  });
}

test(
  "the package's own listener over TLS passes every check it can run, HTTP/2 included",
  { timeout },
  async (t) => {
    const running = await startOwnListener({
      tls: { key: fixture('key.pem'), cert: fixture('cert.pem') },
      cors: 'https://app.example',
    });
    t.after(() => running.close());
    const diagnosis = await diagnose(`${running.url}/poll/own`, {
      ...quickListener,
      ca: fixture('ca.pem'),
      origin: 'https://app.example',
    });
    assert.deepEqual(
      diagnosis.checks.map((c) => c.id),
      [...DIAGNOSIS_CHECKS],
    );
    assert.equal(diagnosis.verdict, 'pass', JSON.stringify(diagnosis, null, 1));
    assert.deepEqual(statuses(diagnosis), {
      connect: 'pass',
      status: 'pass',
      'content-type': 'pass',
      'cache-control': 'pass',
      compression: 'pass',
      buffering: 'pass',
      keepalive: 'pass',
      'http-version': 'pass',
      cors: 'pass',
      'last-event-id': 'pass',
      retry: 'pass',
    });
    assert.match(check(diagnosis, 'http-version').detail, /HTTP\/2/);
    assert.match(check(diagnosis, 'buffering').detail, /^3 probe events arrived/);
    assert.match(check(diagnosis, 'last-event-id').detail, /posted while disconnected arrived/);
  },
);

test('a TLS listener without HTTP/2 warns in http-version', { timeout }, async (t) => {
  const running = await startOwnListener({
    tls: { key: fixture('key.pem'), cert: fixture('cert.pem') },
    http2: false,
  });
  t.after(() => running.close());
  const diagnosis = await diagnose(`${running.url}/poll/h1`, { ...quick, ca: fixture('ca.pem') });
  assert.equal(check(diagnosis, 'http-version').status, 'warn');
  assert.match(check(diagnosis, 'http-version').detail, /ALPN chose http\/1\.1/);
  assert.equal(diagnosis.verdict, 'warn');
});

test('the listener behind a buffering proxy fails "buffering"', { timeout }, async (t) => {
  const running = await startOwnListener();
  t.after(() => running.close());
  const proxy = await startBufferingProxy(running.url);
  t.after(() => proxy.close());
  const diagnosis = await diagnose(`${proxy.url}/poll/buffered`, {
    observeMs: 3000,
    keepaliveMaxMs: 500,
  });
  const buffering = check(diagnosis, 'buffering');
  assert.equal(buffering.status, 'fail');
  assert.match(buffering.detail, /^responses are buffered: probe 1 arrived \d\.\d s late/);
  assert.match(buffering.detail, /one burst/);
  assert.match(buffering.detail, /proxy_buffering off/);
  assert.equal(diagnosis.verdict, 'fail');
});

test('a probe POST that is refused falls back to passive mode', { timeout }, async (t) => {
  const running = await startOwnListener({ publishSecret: 's3cret' });
  t.after(() => running.close());
  const refused = await diagnose(`${running.url}/poll/secret`, quickListener);
  assert.equal(check(refused, 'buffering').status, 'skip');
  assert.match(check(refused, 'buffering').detail, /^passive mode: the probe POST .* \(401\)/);
  const allowed = await diagnose(`${running.url}/poll/secret`, {
    ...quickListener,
    secret: 's3cret',
  });
  assert.equal(check(allowed, 'buffering').status, 'pass');
});

test(
  'an unreachable port fails "connect" in one line and skips the rest',
  { timeout },
  async () => {
    const server = await listen((_request, response) => response.end());
    const url = `${server.url}/poll/nobody`;
    await server.close();
    const diagnosis = await diagnose(url, quick);
    assert.equal(diagnosis.verdict, 'fail');
    const connect = check(diagnosis, 'connect');
    assert.equal(connect.status, 'fail');
    assert.match(connect.detail, /^connect ECONNREFUSED 127\.0\.0\.1:\d+$/);
    for (const { id, status } of diagnosis.checks.slice(1)) assert.equal(status, 'skip', id);
  },
);

// Raw servers, observed passively: each row is a server and what the diagnosis must say of it.
const gzipped = (text: string): Handler => {
  return (_request, response) => {
    response.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      'content-encoding': 'gzip',
    });
    const gzip = zlib.createGzip();
    gzip.pipe(response);
    gzip.write(text);
    gzip.flush();
  };
};
const noCache = { 'cache-control': 'no-cache' };
const comments = Array.from({ length: 40 }, () => ':\n');
const rows: {
  name: string;
  handlers: Handler[];
  options?: DiagnoseOptions;
  expect: Partial<Record<DiagnosisCheckId, [string, RegExp?]>>;
  verdict: string;
}[] = [
  {
    name: 'a 404 fails "status" with the status and the message',
    handlers: [reply(404, 'No such stream')],
    expect: { status: ['fail', /^404: No such stream/], 'content-type': ['skip'] },
    verdict: 'fail',
  },
  {
    name: 'a 204 fails "status": browsers stop',
    handlers: [reply(204)],
    expect: { status: ['fail', /^204 No Content/] },
    verdict: 'fail',
  },
  {
    name: 'text/plain fails "content-type"',
    handlers: [reply(200, 'data: x\n\n')],
    expect: { 'content-type': ['fail', /"text\/plain; charset=utf-8"/], buffering: ['skip'] },
    verdict: 'fail',
  },
  {
    name: 'a gzip stream warns in "compression" and is still read',
    handlers: [gzipped('retry: 3000\n\ndata: zipped\n\n')],
    expect: {
      compression: ['warn', /Content-Encoding: gzip/],
      retry: ['pass', /retry: 3000 ms/],
    },
    verdict: 'warn',
  },
  {
    name: 'no Cache-Control warns in "cache-control"',
    handlers: [stream(comments, { keepOpen: true, gapMs: 50 })],
    expect: { 'cache-control': ['warn', /no Cache-Control header/], keepalive: ['pass'] },
    verdict: 'warn',
  },
  {
    name: 'silence after one event warns in "keepalive"',
    handlers: [stream(['data: one\n\n'], { keepOpen: true, headers: noCache })],
    expect: {
      'cache-control': ['pass'],
      keepalive: ['warn', /silent for \d\.\d s \(limit 0\.5 s\)/],
      buffering: ['skip', /^passive mode/],
      'last-event-id': ['skip', /no ids/],
    },
    verdict: 'warn',
  },
  {
    name: 'a server that ignores Last-Event-ID fails "last-event-id"',
    handlers: [stream(['id: 1\ndata: a\n\nid: 2\ndata: b\n\n'], { keepOpen: true })],
    expect: { 'last-event-id': ['fail', /came again \(id "1", "2"\)/] },
    verdict: 'fail',
  },
  {
    name: 'a server that honours Last-Event-ID passes "last-event-id"',
    handlers: [
      stream(['id: 1\ndata: a\n\nid: 2\ndata: b\n\n'], { keepOpen: true }),
      (request, response) => {
        response.writeHead(200, { 'content-type': 'text/event-stream' });
        response.write(request.headers['last-event-id'] === '2' ? 'id: 3\ndata: c\n\n' : '');
      },
    ],
    expect: { 'last-event-id': ['pass', /^resumed after reconnecting with Last-Event-ID "2"/] },
    verdict: 'warn',
  },
  {
    name: '"retry" reports the server\'s retry: 3000',
    handlers: [stream(['retry: 3000\n\n'], { keepOpen: true })],
    expect: { retry: ['pass', /^the server sets retry: 3000 ms$/] },
    verdict: 'warn',
  },
  {
    name: 'an allowed origin passes "cors"',
    handlers: [
      stream([':\n'], {
        keepOpen: true,
        headers: { 'access-control-allow-origin': 'https://app.example' },
      }),
    ],
    options: { origin: 'https://app.example' },
    expect: { cors: ['pass'] },
    verdict: 'warn',
  },
  {
    name: 'a refused origin fails "cors"',
    handlers: [
      stream([':\n'], {
        keepOpen: true,
        headers: { 'access-control-allow-origin': 'https://other.example' },
      }),
    ],
    options: { origin: 'https://app.example' },
    expect: { cors: ['fail', /Access-Control-Allow-Origin: https:\/\/other\.example/] },
    verdict: 'fail',
  },
  {
    name: '"*" with credentials fails "cors"',
    handlers: [
      stream([':\n'], { keepOpen: true, headers: { 'access-control-allow-origin': '*' } }),
    ],
    options: { origin: 'https://app.example', withCredentials: true },
    expect: { cors: ['fail', /withCredentials/] },
    verdict: 'fail',
  },
];

for (const row of rows) {
  test(row.name, { timeout }, async (t) => {
    const server = await startScriptedServer(row.handlers);
    t.after(() => server.close());
    const diagnosis = await diagnose(`${server.url}/stream`, { ...quick, ...row.options });
    for (const [id, [status, detail]] of Object.entries(row.expect)) {
      const found = check(diagnosis, id as DiagnosisCheckId);
      assert.equal(found.status, status, `${id}: ${found.detail}`);
      if (detail) assert.match(found.detail, detail, id);
    }
    assert.equal(diagnosis.verdict, row.verdict, JSON.stringify(diagnosis.checks, null, 1));
  });
}

test('the GET sends what a browser sends, and Origin when given', { timeout }, async (t) => {
  const server = await startScriptedServer([stream([':\n'], { keepOpen: true })]);
  t.after(() => server.close());
  await diagnose(`${server.url}/stream`, {
    ...quick,
    origin: 'https://app.example',
    bearer: 'tok',
  });
  const { headers } = server.requests[0] ?? assert.fail('no request');
  assert.equal(headers.accept, 'text/event-stream');
  assert.equal(headers['cache-control'], 'no-cache');
  assert.equal(headers['accept-encoding'], 'gzip, deflate, br');
  assert.equal(headers.origin, 'https://app.example');
  assert.equal(headers.authorization, 'Bearer tok');
});

test('bad arguments are TypeError and RangeError', async () => {
  await assert.rejects(diagnose('ftp://example.com/x'), TypeError);
  await assert.rejects(diagnose('not a url'), TypeError);
  await assert.rejects(diagnose('http://127.0.0.1:1/x', { observeMs: 0 }), RangeError);
  await assert.rejects(
    diagnose('http://127.0.0.1:1/x', { bearer: 'a', username: 'u' }),
    /`bearer` and `username` cannot be combined/,
  );
});
