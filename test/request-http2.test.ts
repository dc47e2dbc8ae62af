import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Agent } from 'undici';
import { createRequestAgent, sendRequest, sendRequestTo } from '../src/request.js';
import { startHttp2Server } from './helpers/http2-server.js';
import { fixture } from './helpers/sse-server.js';

const timeout = 15000;
const caPath = fileURLToPath(new URL('../../test/fixtures/ca.pem', import.meta.url));
const requestModule = new URL('../src/request.js', import.meta.url).href;

test(
  'createRequestAgent({ http2: true }) POSTs over h2, several requests on one session',
  { timeout },
  async (t) => {
    const server = await startHttp2Server();
    const agent = createRequestAgent({ ca: fixture('ca.pem'), http2: true });
    t.after(async () => {
      await agent.close();
      await server.close();
    });
    const first = await sendRequest({
      token: 'dev-1',
      action: 'ping',
      data: 'hello',
      url: server.url,
      dispatcher: agent,
    });
    assert.equal(first.status, 200);
    assert.deepEqual(first.reply, { token: 'dev-1', action: 'ping', id: null, subscribers: 1 });
    await sendRequestTo(`${server.url}/ping/dev-2`, { data: { n: 2 }, dispatcher: agent });
    assert.deepEqual(
      server.requests.map((r) => [r.method, r.url, r.httpVersion, r.streamId, r.body]),
      [
        ['POST', '/ping/dev-1', '2.0', 1, 'hello'],
        ['POST', '/ping/dev-2', '2.0', 3, '{"n":2}'],
      ],
    );
  },
);

test('createRequestAgent() without http2 POSTs over HTTP/1.1', { timeout }, async (t) => {
  const server = await startHttp2Server();
  const agent = createRequestAgent({ ca: fixture('ca.pem') });
  t.after(async () => {
    await agent.close();
    await server.close();
  });
  await sendRequest({ token: 't', action: 'ping', url: server.url, dispatcher: agent });
  assert.equal(server.requests[0]?.httpVersion, '1.1');
});

test(
  'sendRequest({ http2: true }) shares one h2 agent across calls; the default stays HTTP/1.1',
  { timeout },
  async (t) => {
    const server = await startHttp2Server();
    t.after(() => server.close());
    // The shared agents use Node's CAs, so the throwaway CA comes in through NODE_EXTRA_CA_CERTS,
    // which Node reads only at start: the calls run in a process of their own.
    const script = `
      const { sendRequest } = await import(${JSON.stringify(requestModule)});
      const url = ${JSON.stringify(server.url)};
      for (const [token, http2] of [['a', true], ['b', true], ['c', false]]) {
        const { reply } = await sendRequest({ token, action: 'ping', url, http2 });
        console.log(reply.token);
      }`;
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      ['--input-type=module', '-e', script],
      { env: { ...process.env, NODE_EXTRA_CA_CERTS: caPath, DEBUG: '' }, timeout },
    );
    assert.equal(stderr, '');
    assert.equal(stdout, 'a\nb\nc\n');
    const [a, b, c] = server.requests;
    assert.deepEqual(
      server.requests.map((r) => [r.url, r.httpVersion, r.streamId]),
      [
        ['/ping/a', '2.0', 1],
        ['/ping/b', '2.0', 3],
        ['/ping/c', '1.1', undefined],
      ],
    );
    assert.equal(b?.remotePort, a?.remotePort);
    assert.notEqual(c?.remotePort, a?.remotePort);
  },
);

test('http2 together with dispatcher is a TypeError naming both options', async () => {
  const dispatcher = new Agent();
  try {
    await assert.rejects(
      sendRequest({ token: 't', action: 'ping', port: 1, dispatcher, http2: true }),
      (error: unknown) =>
        error instanceof TypeError &&
        /`http2`/.test(error.message) &&
        /`dispatcher`/.test(error.message),
    );
    await assert.rejects(
      sendRequestTo('http://127.0.0.1:1/ping/t', { dispatcher, http2: true }),
      TypeError,
    );
    assert.throws(() => createRequestAgent({ http2: 1 as unknown as boolean }), TypeError);
  } finally {
    await dispatcher.close();
  }
});
