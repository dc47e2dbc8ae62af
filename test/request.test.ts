import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  createRequestAgent,
  RequestError,
  RequestTimeoutError,
  sendRequest,
  sendRequestTo,
} from '../src/request.js';
import { flattenError } from '../src/errors.js';
import { closedPort, fixture, startRecorder, type Answer } from './helpers/recorder.js';

const timeout = 10000;

function text(status: number, body: string, type = 'text/plain; charset=utf-8'): () => Answer {
  return () => ({ status, headers: { 'content-type': type }, body });
}

test(
  'POSTs data to /<action>/<token> and returns status, body and the parsed reply',
  { timeout },
  async (t) => {
    const server = await startRecorder();
    t.after(() => server.close());
    const result = await sendRequest({
      token: 'aa:bb/cc d',
      action: 'ping',
      data: 'hello',
      port: server.port,
    });
    assert.equal(result.status, 200);
    assert.deepEqual(result.reply, {
      token: 'aa:bb/cc d',
      action: 'ping',
      id: null,
      subscribers: 1,
    });
    assert.equal(result.body, JSON.stringify(result.reply));
    assert.equal(result.headers['content-type'], 'application/json');
    const [request] = server.requests;
    assert.equal(request?.method, 'POST');
    assert.equal(request?.url, '/ping/aa%3Abb%2Fcc%20d');
    assert.equal(request?.body, 'hello');
    assert.equal(request?.headers['content-type'], 'text/plain; charset=utf-8');
    assert.equal(request?.headers.authorization, undefined);
  },
);

test('no data sends an empty body without a Content-Type', { timeout }, async (t) => {
  const server = await startRecorder();
  t.after(() => server.close());
  await sendRequest({ token: 't', action: 'close', port: server.port });
  assert.equal(server.requests[0]?.body, '');
  assert.equal(server.requests[0]?.headers['content-type'], undefined);
  assert.equal(server.requests[0]?.headers['content-length'], '0');
});

test(
  'a reply that is not JSON leaves `reply` undefined and keeps the body',
  { timeout },
  async (t) => {
    const server = await startRecorder(text(202, 'queued'));
    t.after(() => server.close());
    const result = await sendRequest({ token: 't', action: 'ping', port: server.port });
    assert.equal(result.status, 202);
    assert.equal(result.body, 'queued');
    assert.equal(result.reply, undefined);
  },
);

for (const [prefix, path] of [
  ['events', '/events/ping/t'],
  ['/events/', '/events/ping/t'],
  ['/a/b', '/a/b/ping/t'],
  ['/', '/ping/t'],
  ['', '/ping/t'],
] as const) {
  test(`prefix ${JSON.stringify(prefix)} sends to ${path}`, { timeout }, async (t) => {
    const server = await startRecorder();
    t.after(() => server.close());
    await sendRequest({ token: 't', action: 'ping', host: '127.0.0.1', port: server.port, prefix });
    assert.equal(server.requests[0]?.url, path);
  });
}

test('`url` replaces scheme, host, port and prefix', { timeout }, async (t) => {
  const server = await startRecorder();
  t.after(() => server.close());
  await sendRequest({
    token: 't 1',
    action: 'ping',
    url: `${server.url}/base/`,
    port: 1,
    prefix: '/ignored',
  });
  await sendRequest({ token: 't', action: 'ping', url: new URL(server.url) });
  assert.deepEqual(
    server.requests.map((r) => r.url),
    ['/base/ping/t%201', '/ping/t'],
  );
});

test('sendRequestTo() POSTs to a full URL as it is', { timeout }, async (t) => {
  const server = await startRecorder();
  t.after(() => server.close());
  const result = await sendRequestTo(`${server.url}/x/ping/my-token?a=1`, { data: 'd' });
  assert.equal(result.status, 200);
  assert.equal(server.requests[0]?.url, '/x/ping/my-token?a=1');
  assert.equal(server.requests[0]?.body, 'd');
});

test('a non-string data value is sent JSON-encoded as application/json', { timeout }, async (t) => {
  const server = await startRecorder();
  t.after(() => server.close());
  for (const data of [{ a: [1, 'x'] }, 42, null, false, ['a']]) {
    await sendRequest({ token: 't', action: 'ping', port: server.port, data });
  }
  assert.deepEqual(
    server.requests.map((r) => [r.body, r.headers['content-type']]),
    [
      ['{"a":[1,"x"]}', 'application/json'],
      ['42', 'application/json'],
      ['null', 'application/json'],
      ['false', 'application/json'],
      ['["a"]', 'application/json'],
    ],
  );
});

test('`json: true` sends valid JSON text unchanged as application/json', { timeout }, async (t) => {
  const server = await startRecorder();
  t.after(() => server.close());
  await sendRequest({
    token: 't',
    action: 'ping',
    port: server.port,
    json: true,
    data: '{ "a" : 1 }\n',
  });
  await sendRequest({
    token: 't',
    action: 'ping',
    port: server.port,
    json: true,
    data: Buffer.from('[1]'),
  });
  assert.deepEqual(
    server.requests.map((r) => [r.body, r.headers['content-type']]),
    [
      ['{ "a" : 1 }\n', 'application/json'],
      ['[1]', 'application/json'],
    ],
  );
});

test(
  '`json: true` with invalid JSON throws a TypeError and sends nothing',
  { timeout },
  async (t) => {
    const server = await startRecorder();
    t.after(() => server.close());
    await assert.rejects(
      sendRequest({ token: 't', action: 'ping', port: server.port, json: true, data: '{bad' }),
      (error: unknown) =>
        error instanceof TypeError && error.message.startsWith('`data` is not valid JSON: '),
    );
    assert.equal(server.requests.length, 0);
  },
);

test('a missing token or action, or a non-http url, is a TypeError', async () => {
  await assert.rejects(sendRequest({ token: '', action: 'ping' }), {
    name: 'TypeError',
    message: '`token` must be a non-empty string, got ""',
  });
  await assert.rejects(sendRequest({ token: 't', action: '' }), {
    name: 'TypeError',
    message: '`action` must be a non-empty string, got ""',
  });
  await assert.rejects(sendRequest({ token: 't', action: 'ping', url: 'ftp://x' }), {
    name: 'TypeError',
    message: '`url` must be an http or https URL, got "ftp://x"',
  });
  await assert.rejects(sendRequestTo('not a url'), {
    name: 'TypeError',
    message: '`url` must be an http or https URL, got "not a url"',
  });
});

test('HTTP Basic auth from user and password', { timeout }, async (t) => {
  const server = await startRecorder();
  t.after(() => server.close());
  await sendRequest({
    token: 't',
    action: 'ping',
    port: server.port,
    user: 'ann',
    password: 'pä:ss',
  });
  await sendRequest({ token: 't', action: 'ping', port: server.port, user: 'bob' });
  assert.deepEqual(
    server.requests.map((r) => r.headers.authorization),
    [
      `Basic ${Buffer.from('ann:pä:ss').toString('base64')}`,
      `Basic ${Buffer.from('bob:').toString('base64')}`,
    ],
  );
});

test(
  '`secret` sends Authorization: Bearer; extra headers are added and win',
  { timeout },
  async (t) => {
    const server = await startRecorder();
    t.after(() => server.close());
    await sendRequest({
      token: 't',
      action: 'ping',
      port: server.port,
      secret: 's3',
      headers: { 'X-One': '1' },
    });
    await sendRequest({
      token: 't',
      action: 'ping',
      port: server.port,
      data: 'x',
      headers: [
        ['Content-Type', 'text/x-custom'],
        ['X-Two', '2'],
      ],
    });
    const [first, second] = server.requests;
    assert.equal(first?.headers.authorization, 'Bearer s3');
    assert.equal(first?.headers['x-one'], '1');
    assert.equal(second?.headers['content-type'], 'text/x-custom');
    assert.equal(second?.headers['x-two'], '2');
  },
);

for (const [what, answer, message] of [
  ['a text/plain message', text(404, 'Target is not connected'), 'Target is not connected'],
  [
    'another text/plain message',
    text(404, 'Unknown action requested\n'),
    'Unknown action requested',
  ],
  [
    'an HTML page, without its tags',
    text(
      500,
      '<html><head><title>Oops</title><style>b{}</style></head>\n<body><h1>Server &amp; &#x263A; error</h1></body></html>',
      'text/html',
    ),
    'Oops Server & ☺ error',
  ],
  ['a JSON error', text(400, '{"error":"bad data"}', 'application/json'), 'bad data'],
  ['an empty body, as the status text', text(401, ''), 'Unauthorized'],
  ['a multi-line message, on one line', text(413, 'too\nlarge  \r\n body'), 'too large body'],
] as const) {
  test(`a non-2xx answer throws RequestError with ${what}`, { timeout }, async (t) => {
    const server = await startRecorder(answer);
    t.after(() => server.close());
    const status = answer().status;
    await assert.rejects(
      sendRequest({ token: 't', action: 'ping', port: server.port }),
      (error: unknown) => {
        assert.ok(error instanceof RequestError);
        assert.equal(error.name, 'RequestError');
        assert.equal(error.code, 'ERR_EVENTSOURCE_REQUEST');
        assert.equal(error.status, status);
        assert.equal(error.serverMessage, message);
        assert.equal(error.body, answer().body);
        assert.equal(error.url, `${server.url}/ping/t`);
        assert.equal(error.message, `Unable to send request (${status}): ${message}`);
        return true;
      },
    );
  });
}

test('a redirect is not followed and is an error', { timeout }, async (t) => {
  const server = await startRecorder(() => ({ status: 301, headers: { location: '/' } }));
  t.after(() => server.close());
  await assert.rejects(sendRequest({ token: 't', action: 'ping', port: server.port }), {
    name: 'RequestError',
    status: 301,
    message: 'Unable to send request (301): Moved Permanently',
  });
});

test('an unreachable server rejects with the cause', { timeout }, async () => {
  const port = await closedPort();
  await assert.rejects(sendRequest({ token: 't', action: 'ping', port }), (error: unknown) => {
    assert.equal(flattenError(error), `connect ECONNREFUSED 127.0.0.1:${port}`);
    return true;
  });
});

test('`timeoutMs` without an answer rejects with RequestTimeoutError', { timeout }, async (t) => {
  const server = await startRecorder(() => ({ hang: true }));
  t.after(() => server.close());
  await assert.rejects(
    sendRequest({ token: 't', action: 'ping', port: server.port, timeoutMs: 200 }),
    {
      name: 'RequestTimeoutError',
      code: 'ERR_EVENTSOURCE_REQUEST_TIMEOUT',
      timeoutMs: 200,
      message: 'no response within 200 ms',
    },
  );
  assert.ok(RequestTimeoutError);
});

test('an aborted signal rejects with its reason', { timeout }, async (t) => {
  const server = await startRecorder(() => ({ hang: true }));
  t.after(() => server.close());
  const controller = new AbortController();
  const sending = sendRequest({
    token: 't',
    action: 'ping',
    port: server.port,
    signal: controller.signal,
  });
  await server.waitForRequests(1);
  controller.abort(new Error('stop'));
  await assert.rejects(sending, { message: 'stop' });
});

test('sequential sends reuse keep-alive connections (default agent)', { timeout }, async (t) => {
  const server = await startRecorder();
  t.after(() => server.close());
  for (let i = 0; i < 50; i++) {
    await sendRequest({ token: 't', action: 'ping', port: server.port, data: String(i) });
  }
  // undici's pool may hand the next request to a second socket while the first is being
  // released (a bare undici.request loop does the same), but never opens one per request.
  assert.ok(new Set(server.requests.map((r) => r.remotePort)).size <= 2);
  assert.deepEqual(
    server.requests.map((r) => r.body),
    Array.from({ length: 50 }, (_, i) => String(i)),
  );
});

test(
  'createRequestAgent({ connections: 1 }) keeps concurrent sends on one connection',
  { timeout },
  async (t) => {
    const server = await startRecorder();
    const agent = createRequestAgent({ connections: 1 });
    t.after(async () => {
      await agent.close();
      await server.close();
    });
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        sendRequest({
          token: 't',
          action: 'ping',
          port: server.port,
          data: String(i),
          dispatcher: agent,
        }),
      ),
    );
    assert.equal(server.requests.length, 20);
    assert.equal(new Set(server.requests.map((r) => r.remotePort)).size, 1);
  },
);

test('HTTPS: an untrusted certificate is refused by default', { timeout }, async (t) => {
  const server = await startRecorder(undefined, { tls: true });
  t.after(() => server.close());
  await assert.rejects(
    sendRequest({ token: 't', action: 'ping', port: server.port, ssl: true }),
    (error: unknown) => /certificate/i.test(flattenError(error)),
  );
  assert.equal(server.requests.length, 0);
});

for (const [what, options] of [
  ['the CA given', { ca: fixture('ca.pem') }],
  ['insecure', { insecure: true }],
] as const) {
  test(`HTTPS: accepted with ${what}`, { timeout }, async (t) => {
    const server = await startRecorder(undefined, { tls: true });
    const agent = createRequestAgent(options);
    t.after(async () => {
      await agent.close();
      await server.close();
    });
    const result = await sendRequest({
      token: 't',
      action: 'ping',
      url: server.url,
      dispatcher: agent,
    });
    assert.equal(result.status, 200);
    const viaHost = await sendRequest({
      token: 't',
      action: 'ping',
      host: 'localhost',
      port: server.port,
      ssl: true,
      dispatcher: agent,
    });
    assert.equal(viaHost.status, 200);
  });
}
