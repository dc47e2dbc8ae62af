/**
 * Authorization with signed grants (JWT): every answer through real sockets, every place a JWT can
 * come from, the patterns, the keys and the attacks, and the same answers on the fast path,
 * node:http and HTTP/2.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import http2 from 'node:http2';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, exportJWK, base64url } from 'jose';
import {
  createListener,
  type Listener,
  type ListenerOptions,
} from '../../src/listener/listener.js';
import { signAccessToken } from '../../src/listener/auth.js';
import { StringIdEvent } from '../../src/events.js';
import { openStream } from '../helpers/net.js';
import { sleep, waitUntil } from '../helpers/listener-helpers.js';
import { fixture } from '../helpers/recorder.js';
import { h2Request, openH2Stream } from '../helpers/h2.js';
import { runBin, startListenerProcess } from '../helpers/process.js';
import { redisSkipReason, startRedis } from '../helpers/redis.js';

const timeout = 20000;
const SECRET = 'a-test-secret-that-is-long-enough-32';

async function start(
  t: TestContext,
  options: ListenerOptions = {},
): Promise<{ listener: Listener; url: string }> {
  const listener = createListener({ keepalive: 0, jwt: { secret: SECRET }, ...options });
  const url = (await listener.listen(0, '127.0.0.1')).replace(/\/$/, '');
  t.after(() => listener.close());
  return { listener, url };
}

interface Answer {
  status: number;
  body: string;
  challenge: string | null;
  headers: Headers;
}

async function request(
  url: string,
  init: { method?: string; body?: string; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const response = await fetch(url, { ...init, signal: AbortSignal.timeout(5000) });
  const body = await response.text();
  return {
    status: response.status,
    body,
    challenge: response.headers.get('www-authenticate'),
    headers: response.headers,
  };
}

const bearer = (jwt: string): Record<string, string> => ({ authorization: `Bearer ${jwt}` });

/** A JWT signed with `SECRET` by jose directly (as a backend would), with any claims. */
async function mint(
  claims: Record<string, unknown>,
  options: {
    alg?: string;
    key?: Uint8Array | import('node:crypto').KeyObject;
    exp?: number;
    nbf?: number;
    iss?: string;
    aud?: string;
  } = {},
): Promise<string> {
  let jwt = new SignJWT(claims).setProtectedHeader({ alg: options.alg ?? 'HS256' }).setIssuedAt();
  if (options.exp !== undefined) jwt = jwt.setExpirationTime(options.exp);
  if (options.nbf !== undefined) jwt = jwt.setNotBefore(options.nbf);
  if (options.iss !== undefined) jwt = jwt.setIssuer(options.iss);
  if (options.aud !== undefined) jwt = jwt.setAudience(options.aud);
  return jwt.sign(options.key ?? new TextEncoder().encode(SECRET));
}

const now = (): number => Math.floor(Date.now() / 1000);

test(
  'without a JWT: 401 with the Bearer realm challenge; the root page and preflights need none',
  { timeout },
  async (t) => {
    const { url } = await start(t, { cors: 'https://app.example' });
    for (const [method, path] of [
      ['GET', '/poll/a'],
      ['POST', '/ping/a'],
      ['POST', '/close/a'],
      ['POST', '/retry/a'],
      ['GET', '/stats'],
    ] as const) {
      const answer = await request(`${url}${path}`, {
        method,
        ...(method === 'POST' ? { body: '5' } : {}),
      });
      assert.equal(answer.status, 401, `${method} ${path}`);
      assert.equal(answer.challenge, 'Bearer realm="eventsource"');
      assert.equal(answer.body, 'Unauthorized: an access token is required');
    }
    assert.equal((await request(`${url}/`)).status, 200);
    const preflight = await request(`${url}/poll/a`, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-headers': 'authorization' },
    });
    assert.equal(preflight.status, 204);
    assert.match(preflight.headers.get('access-control-allow-headers') ?? '', /authorization/i);
  },
);

// Each reason a JWT is refused, and its answer (RFC 6750 §3).
const REFUSED: [string, () => Promise<string>, ListenerOptions, number, RegExp][] = [
  ['a malformed JWT', async () => 'not.a.jwt', {}, 401, /invalid_token/],
  [
    'a bad signature',
    async () =>
      mint(
        { eventsource: { subscribe: ['*'] } },
        { key: new TextEncoder().encode('another-secret-of-at-least-32-bytes!') },
      ),
    {},
    401,
    /invalid_token/,
  ],
  [
    'an expired JWT',
    async () => mint({ eventsource: { subscribe: ['*'] } }, { exp: now() - 60 }),
    {},
    401,
    /expired/,
  ],
  [
    'a JWT not valid yet',
    async () => mint({ eventsource: { subscribe: ['*'] } }, { nbf: now() + 3600 }),
    {},
    401,
    /not valid yet/,
  ],
  [
    'a wrong issuer',
    async () => mint({ eventsource: { subscribe: ['*'] } }, { iss: 'evil' }),
    { jwt: { secret: SECRET, issuer: 'backend' } },
    401,
    /iss/,
  ],
  [
    'a missing issuer',
    async () => mint({ eventsource: { subscribe: ['*'] } }),
    { jwt: { secret: SECRET, issuer: 'backend' } },
    401,
    /iss/,
  ],
  [
    'a wrong audience',
    async () => mint({ eventsource: { subscribe: ['*'] } }, { aud: 'other' }),
    { jwt: { secret: SECRET, audience: 'hub' } },
    401,
    /aud/,
  ],
  [
    'alg none',
    async () =>
      `${base64url.encode(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${base64url.encode(JSON.stringify({ eventsource: { subscribe: ['*'] } }))}.`,
    {},
    401,
    /invalid_token/,
  ],
  ['no eventsource claim', async () => mint({ sub: 'user-1' }), {}, 403, /insufficient_scope/],
  [
    'a grant for another token',
    async () => mint({ eventsource: { subscribe: ['lobby'] } }),
    {},
    403,
    /insufficient_scope/,
  ],
];

for (const [name, make, options, status, challenge] of REFUSED) {
  test(
    `a stream with ${name} is refused with ${status}, and nothing is subscribed`,
    { timeout },
    async (t) => {
      const { url, listener } = await start(t, options);
      const answer = await request(`${url}/poll/room-7`, { headers: bearer(await make()) });
      assert.equal(answer.status, status, answer.body);
      assert.match(answer.challenge ?? '', /^Bearer realm="eventsource", error="/);
      assert.match(answer.challenge ?? '', challenge);
      assert.doesNotMatch(answer.body, /\n/);
      assert.equal(listener.stats().streams, 0);
    },
  );
}

test(
  'patterns: room-* grants room-7 but not lobby; * grants every token',
  { timeout },
  async (t) => {
    const { url } = await start(t, { mode: 'multi' });
    const rooms = await signAccessToken({ subscribe: ['room-*'] }, SECRET);
    const all = await signAccessToken({ subscribe: ['*'] }, SECRET);
    const exact = await signAccessToken({ subscribe: ['room'] }, SECRET);
    const cases: [string, string, number][] = [
      [rooms, 'room-7', 200],
      [rooms, 'room-', 200],
      [rooms, 'lobby', 403],
      [rooms, 'xroom-7', 403],
      [all, 'lobby', 200],
      [all, 'a b/c:d', 200],
      [exact, 'room', 200],
      [exact, 'room-7', 403],
    ];
    for (const [jwt, token, status] of cases) {
      const controller = new AbortController();
      const response = await fetch(`${url}/poll/${encodeURIComponent(token)}`, {
        headers: bearer(jwt),
        signal: controller.signal,
      });
      assert.equal(response.status, status, `${token}`);
      controller.abort();
    }
  },
);

test(
  'the JWT is read from the header (any case), the access_token query, or the cookie; the first place found is judged',
  { timeout },
  async (t) => {
    const { url } = await start(t, { mode: 'multi', jwt: { secret: SECRET, cookie: 'my_grant' } });
    const good = await signAccessToken({ subscribe: ['t'] }, SECRET);
    const none = await signAccessToken({ subscribe: [] }, SECRET);
    const open = async (path: string, headers: Record<string, string>): Promise<number> => {
      const controller = new AbortController();
      const response = await fetch(`${url}${path}`, { headers, signal: controller.signal });
      controller.abort();
      return response.status;
    };
    assert.equal(await open('/poll/t', { authorization: `bearer ${good}` }), 200);
    assert.equal(await open('/poll/t', { authorization: `BEARER  ${good}` }), 200);
    assert.equal(await open(`/poll/t?access_token=${good}`, {}), 200);
    assert.equal(await open('/poll/t', { cookie: `other=1; my_grant=${good}` }), 200);
    assert.equal(
      await open('/poll/t', { cookie: `eventsource_access_token=${good}` }),
      401,
      'the default name is replaced',
    );
    // A header that does not grant is not followed by the query or the cookie.
    assert.equal(
      await open(`/poll/t?access_token=${good}`, { authorization: `Bearer ${none}` }),
      403,
    );
    assert.equal(
      await open('/poll/t', { authorization: `Bearer ${none}`, cookie: `my_grant=${good}` }),
      403,
    );
    // Another scheme is not a JWT: the query still counts.
    assert.equal(await open(`/poll/t?access_token=${good}`, { authorization: 'Basic dTpw' }), 200);
  },
);

test(
  'publishing needs a publish grant, for events, close and retry alike; subscribe-only is refused',
  { timeout },
  async (t) => {
    const { url, listener } = await start(t, { eventClass: StringIdEvent });
    const reader = await signAccessToken({ subscribe: ['t'] }, SECRET);
    const writer = await signAccessToken({ publish: ['t'] }, SECRET);
    const stream = await openStream(`${url}/poll/t?access_token=${reader}`);
    t.after(() => stream.close());
    for (const action of ['ping', 'retry', 'close']) {
      const refused = await request(`${url}/${action}/t`, {
        method: 'POST',
        body: '10',
        headers: bearer(reader),
      });
      assert.equal(refused.status, 403, action);
      assert.match(refused.challenge ?? '', /insufficient_scope/);
    }
    assert.equal(listener.stats().eventsAccepted, 0, 'nothing published on a refusal');
    const sent = await request(`${url}/ping/t`, {
      method: 'POST',
      body: 'hi',
      headers: bearer(writer),
    });
    assert.equal(sent.status, 200);
    assert.equal((await stream.waitFor(1))[0]?.data, 'hi');
    assert.equal(
      (await request(`${url}/close/t`, { method: 'POST', headers: bearer(writer) })).status,
      200,
    );
    await stream.ended;
  },
);

test(
  'the publish secret still lets a POST and /stats through beside JWT auth',
  { timeout },
  async (t) => {
    const { url } = await start(t, { publishSecret: 's3cret', mode: 'multi' });
    const reader = await signAccessToken({ subscribe: ['t'] }, SECRET);
    const stream = await openStream(`${url}/poll/t?access_token=${reader}`);
    t.after(() => stream.close());
    assert.equal(
      (
        await request(`${url}/ping/t`, {
          method: 'POST',
          body: 'x',
          headers: { authorization: 'bearer s3cret' },
        })
      ).status,
      200,
    );
    assert.equal(
      (await request(`${url}/stats`, { headers: { authorization: 'Bearer s3cret' } })).status,
      200,
    );
    assert.equal(
      (
        await request(`${url}/ping/t`, {
          method: 'POST',
          body: 'x',
          headers: { authorization: 'Bearer wrong' },
        })
      ).status,
      401,
    );
  },
);

test('/stats needs an admin grant', { timeout }, async (t) => {
  const { url } = await start(t);
  const admin = await signAccessToken({ admin: true }, SECRET);
  const user = await signAccessToken({ subscribe: ['*'], publish: ['*'] }, SECRET);
  assert.equal((await request(`${url}/stats`, { headers: bearer(admin) })).status, 200);
  const refused = await request(`${url}/stats`, { headers: bearer(user) });
  assert.equal(refused.status, 403);
  assert.match(refused.body, /admin/);
});

test(
  'an open stream ends within a second of its grant expiring; a far expiry does not end it',
  { timeout },
  async (t) => {
    const { url } = await start(t, { mode: 'multi' });
    const soon = await signAccessToken({ subscribe: ['t'], expiresIn: 2 }, SECRET);
    // 30 days: past Node's 24.8-day timer limit, which must not make it end at once.
    const far = await signAccessToken({ subscribe: ['t'], expiresIn: 30 * 24 * 3600 }, SECRET);
    const started = Date.now();
    const ending = await openStream(`${url}/poll/t?access_token=${soon}`);
    const lasting = await openStream(`${url}/poll/t?access_token=${far}`);
    t.after(() => lasting.close());
    await ending.ended;
    const lived = Date.now() - started;
    assert.ok(lived >= 1000 && lived < 3500, `ended after ${lived} ms`);
    await sleep(300);
    assert.equal(lasting.response.destroyed, false, 'the far grant keeps its stream');
  },
);

test(
  'RS256 with a PEM public key, and HS256 made with that public key (alg confusion) is refused',
  { timeout },
  async (t) => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const { url } = await start(t, { jwt: { key: pem } });
    const good = await mint({ eventsource: { admin: true } }, { alg: 'RS256', key: privateKey });
    assert.equal((await request(`${url}/stats`, { headers: bearer(good) })).status, 200);
    const ps = await mint({ eventsource: { admin: true } }, { alg: 'PS256', key: privateKey });
    assert.equal((await request(`${url}/stats`, { headers: bearer(ps) })).status, 200);
    const confused = await mint(
      { eventsource: { admin: true } },
      { alg: 'HS256', key: new TextEncoder().encode(pem) },
    );
    const refused = await request(`${url}/stats`, { headers: bearer(confused) });
    assert.equal(refused.status, 401);
    assert.match(refused.challenge ?? '', /invalid_token/);
  },
);

test(
  'eventsource-listener --jwt-key with a JWKS file verifies ES256; the CLIs send --bearer',
  { timeout: 30000 },
  async (t) => {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const dir = mkdtempSync(join(tmpdir(), 'eventsource-jwks-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const jwksFile = join(dir, 'jwks.json');
    writeFileSync(
      jwksFile,
      JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), alg: 'ES256', kid: 'k1' }] }),
    );
    const running = await startListenerProcess(['-k', '0', '-i', '--jwt-key', jwksFile]);
    t.after(() => running.stop());
    assert.match(running.child.output.stderr, /JWT auth/);
    const sign = (claims: Record<string, unknown>): Promise<string> =>
      new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).sign(privateKey);
    const reader = await sign({ eventsource: { subscribe: ['dev-1'] } });
    const writer = await sign({ eventsource: { publish: ['dev-*'] } });
    const stream = await openStream(`${running.url}/poll/dev-1?access_token=${reader}`);
    t.after(() => stream.close());
    assert.equal(stream.response.statusCode, 200);
    const sent = await runBin('eventsource-request', [
      '-P',
      String(running.port),
      '--bearer',
      writer,
      'dev-1',
      'ping',
      'signed',
    ]);
    assert.equal(sent.code, 0, sent.stderr);
    assert.equal((await stream.waitFor(1))[0]?.data, 'signed');
    const viaEnv = await runBin(
      'eventsource-request',
      ['-P', String(running.port), 'dev-1', 'ping', 'env'],
      {
        env: { EVENTSOURCE_BEARER: writer },
      },
    );
    assert.equal(viaEnv.code, 0, viaEnv.stderr);
    const refused = await runBin('eventsource-request', [
      '-P',
      String(running.port),
      '--bearer',
      reader,
      'dev-1',
      'ping',
      'x',
    ]);
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr,
      /\(403\): Forbidden: the access token does not grant publish access/,
    );
  },
);

test(
  'eventsource-listener refuses a short --jwt-secret, an unreadable --jwt-key and both at once (exit 2, one line)',
  { timeout },
  async () => {
    for (const [args, message] of [
      [['--jwt-secret', 'short'], /--jwt-secret must be at least 32 bytes/],
      [['--jwt-key', '/nonexistent/key.pem'], /cannot read --jwt-key file/],
      [
        ['--jwt-secret', SECRET, '--jwt-key', '/tmp/x'],
        /--jwt-secret and --jwt-key do not go together/,
      ],
    ] as const) {
      const result = await runBin('eventsource-listener', ['-P', '0', ...args]);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, message);
      assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
    }
  },
);

test(
  'CORS: a named origin is echoed with credentials; --cors * sends a literal * without credentials',
  { timeout },
  async (t) => {
    const named = await start(t, { cors: 'https://app.example', jwt: undefined });
    const any = await start(t, { cors: '*', jwt: undefined });
    const fromNamed = await request(`${named.url}/stats`, {
      headers: { origin: 'https://app.example' },
    });
    assert.equal(fromNamed.headers.get('access-control-allow-origin'), 'https://app.example');
    assert.equal(fromNamed.headers.get('access-control-allow-credentials'), 'true');
    const fromAny = await request(`${any.url}/stats`, {
      headers: { origin: 'https://evil.example' },
    });
    assert.equal(fromAny.headers.get('access-control-allow-origin'), '*');
    assert.equal(fromAny.headers.get('access-control-allow-credentials'), null);
  },
);

test(
  'the same refusals and grants over the fast path, node:http and HTTP/2',
  { timeout },
  async (t) => {
    const writer = await signAccessToken({ publish: ['t'], subscribe: ['t'] }, SECRET);
    const reader = await signAccessToken({ subscribe: ['t'] }, SECRET);
    const cases: [string, Record<string, string>][] = [
      ['none', {}],
      ['malformed', bearer('x.y.z')],
      ['reader', bearer(reader)],
      ['writer', bearer(writer)],
    ];
    const seen: Record<string, string[]> = {};
    for (const [name, options] of [
      ['fast path', {}],
      ['node:http', { fastPath: false }],
    ] as const) {
      const { url } = await start(t, { ...options, mode: 'multi' });
      const stream = await openStream(`${url}/poll/t?access_token=${reader}`);
      t.after(() => stream.close());
      seen[name] = [];
      for (const [label, headers] of cases) {
        const answer = await request(`${url}/ping/t`, { method: 'POST', body: label, headers });
        seen[name].push(
          `${label}: ${answer.status} ${answer.challenge ?? ''} ${answer.body.replace(/"id":"?[0-9a-z]*"?/, '')}`,
        );
      }
      assert.deepEqual(
        (await stream.waitFor(1)).map((event) => event.data),
        ['writer'],
      );
    }
    const { url } = await start(t, {
      mode: 'multi',
      tls: { key: fixture('key.pem'), cert: fixture('cert.pem') },
    });
    const session = http2.connect(url, { ca: fixture('ca.pem') });
    session.on('error', () => {});
    t.after(() => session.destroy());
    const stream = await openH2Stream(session, `/poll/t?access_token=${reader}`);
    seen['HTTP/2'] = [];
    for (const [label, headers] of cases) {
      const answer = await h2Request(session, 'POST', '/ping/t', headers, label);
      seen['HTTP/2'].push(
        `${label}: ${answer.status} ${answer.headers['www-authenticate'] ?? ''} ${answer.body.replace(/"id":"?[0-9a-z]*"?/, '')}`,
      );
    }
    assert.deepEqual(
      (await stream.waitFor(1)).map((event) => event.data),
      ['writer'],
    );
    assert.deepEqual(seen['node:http'], seen['fast path']);
    assert.deepEqual(seen['HTTP/2'], seen['fast path']);
  },
);

test(
  'with a pipelined POST waiting for its first JWT check, the fast path keeps the order of answers',
  { timeout },
  async (t) => {
    const { url } = await start(t, { mode: 'multi' });
    const reader = await signAccessToken({ subscribe: ['t'] }, SECRET);
    const stream = await openStream(`${url}/poll/t?access_token=${reader}`);
    t.after(() => stream.close());
    const jwts = await Promise.all(
      [1, 2, 3].map(() => signAccessToken({ publish: ['t'] }, SECRET)),
    );
    const port = Number(new URL(url).port);
    const net = await import('node:net');
    const socket = net.connect(port, '127.0.0.1');
    t.after(() => socket.destroy());
    await once(socket, 'connect');
    // Three POSTs in one write, each with a JWT never seen before (each check waits for jose).
    socket.write(
      jwts
        .map(
          (jwt, i) =>
            `POST /ping/t HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${jwt}\r\nContent-Length: 1\r\n\r\n${i}`,
        )
        .join(''),
    );
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (text += chunk));
    await waitUntil(
      () => (text.match(/HTTP\/1\.1 200/g) ?? []).length === 3,
      'three answers',
      5000,
    );
    assert.deepEqual(
      (await stream.waitFor(3)).map((event) => event.data),
      ['0', '1', '2'],
    );
  },
);

test(
  'with --redis, each process checks the JWT itself',
  { skip: redisSkipReason(), timeout: 30000 },
  async (t) => {
    const redis = await startRedis();
    t.after(() => redis.close());
    const [a, b] = await Promise.all(
      [0, 1].map(() =>
        startListenerProcess(['-k', '0', '--redis', redis.url, '--jwt-secret', SECRET]),
      ),
    );
    for (const running of [a, b]) t.after(() => running?.stop());
    const reader = await signAccessToken({ subscribe: ['t'] }, SECRET);
    const writer = await signAccessToken({ publish: ['t'] }, SECRET);
    const stream = await openStream(`${a?.url}/poll/t?access_token=${reader}`);
    t.after(() => stream.close());
    assert.equal(
      (await request(`${b?.url}/ping/t`, { method: 'POST', body: 'x', headers: bearer(reader) }))
        .status,
      403,
    );
    assert.equal(
      (
        await request(`${b?.url}/ping/t`, {
          method: 'POST',
          body: 'across',
          headers: bearer(writer),
        })
      ).status,
      200,
    );
    assert.equal((await stream.waitFor(1))[0]?.data, 'across');
  },
);

test(
  'an authorize hook of your own sees the request and may answer later',
  { timeout },
  async (t) => {
    const seen: string[] = [];
    const listener = createListener({
      keepalive: 0,
      authorize: async (request) => {
        seen.push(
          `${request.kind} ${request.token ?? '-'} ${request.action ?? '-'} ${request.headers.cookie ?? '-'}`,
        );
        await sleep(5);
        if (request.kind === 'admin') return { status: 401, message: 'Who are you?' };
        return request.headers.cookie === 'session=ok';
      },
    });
    const url = (await listener.listen(0, '127.0.0.1')).replace(/\/$/, '');
    t.after(() => listener.close());
    assert.equal((await request(`${url}/stats`)).body, 'Who are you?');
    assert.equal((await request(`${url}/ping/t`, { method: 'POST', body: 'x' })).status, 403);
    assert.equal(
      (
        await request(`${url}/ping/t`, {
          method: 'POST',
          body: 'x',
          headers: { cookie: 'session=ok' },
        })
      ).status,
      404,
    );
    assert.deepEqual(seen, ['admin - - -', 'publish t ping -', 'publish t ping session=ok']);
    assert.throws(
      () => createListener({ authorize: () => true, jwt: { secret: SECRET } }),
      TypeError,
    );
    assert.throws(() => createListener({ jwt: { secret: 'short' } }), RangeError);
  },
);

test(
  'the demo page needs no grant and asks for an access token when auth is on',
  { timeout },
  async (t) => {
    const withAuth = await start(t, { demo: true });
    const page = await request(`${withAuth.url}/`);
    assert.equal(page.status, 200);
    assert.match(page.body, /id="access"/);
    assert.match(page.body, /Refused \(403\)/);
    const withoutAuth = await start(t, { demo: true, jwt: undefined });
    assert.doesNotMatch((await request(`${withoutAuth.url}/`)).body, /id="access"/);
  },
);

test(
  'a JWT too long or not shaped as one is refused as malformed without verification',
  { timeout },
  async (t) => {
    const { url } = await start(t);
    for (const jwt of [
      'a'.repeat(5000),
      'only.two',
      'a.b.c.d',
      'has space.b.c',
      `${'a'.repeat(2000)}.${'b'.repeat(2000)}.${'c'.repeat(200)}`,
    ]) {
      const answer = await request(`${url}/poll/t`, { headers: bearer(jwt) });
      assert.equal(answer.status, 401, jwt.slice(0, 20));
      assert.match(
        answer.challenge ?? '',
        /error="invalid_token", error_description="the access token is malformed"/,
      );
    }
  },
);
