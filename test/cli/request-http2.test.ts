import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { runBin } from '../helpers/process.js';
import { startHttp2Server } from '../helpers/http2-server.js';

// Every test spawns a process, which can take seconds on a loaded machine.
const timeout = 30000;
const caPath = fileURLToPath(new URL('../../../test/fixtures/ca.pem', import.meta.url));
const reply = (token: string) => `{"token":"${token}","action":"ping","id":null,"subscribers":1}\n`;

describe('eventsource-request --http2', { concurrency: 3 }, () => {
  test('POSTs over HTTP/2 and prints the reply', { timeout }, async (t) => {
    const server = await startHttp2Server();
    t.after(() => server.close());
    const result = await runBin('eventsource-request', [
      ...['--http2', '-S', '--ca', caPath, '-P', String(server.port)],
      ...['my-token', 'ping', 'hello'],
    ]);
    assert.deepEqual(result, {
      code: 0,
      signal: null,
      stdout: reply('my-token'),
      stderr: 'delivered to 1 subscriber\n',
    });
    assert.deepEqual(
      server.requests.map((r) => [r.method, r.url, r.httpVersion, r.body]),
      [['POST', '/ping/my-token', '2.0', 'hello']],
    );
  });

  test('--batch sends every event as a stream of one HTTP/2 session', { timeout }, async (t) => {
    const server = await startHttp2Server();
    t.after(() => server.close());
    const input = ['a', 'b', 'c']
      .map((token) => JSON.stringify({ token, action: 'ping', data: token }))
      .join('\n');
    const result = await runBin(
      'eventsource-request',
      ['--http2', '--ca', caPath, '--url', server.url, '--batch'],
      { input },
    );
    assert.equal(result.code, 0);
    assert.equal(result.stdout, reply('a') + reply('b') + reply('c'));
    assert.match(result.stderr, /^sent 3, failed 0, \d+ events\/s\n$/);
    assert.deepEqual(
      server.requests.map((r) => [r.httpVersion, r.streamId, r.body]),
      [
        ['2.0', 1, 'a'],
        ['2.0', 3, 'b'],
        ['2.0', 5, 'c'],
      ],
    );
    assert.equal(new Set(server.requests.map((r) => r.remotePort)).size, 1);
  });

  for (const [what, args, env, version] of [
    ['without --http2', [], {}, '1.1'],
    ['EVENTSOURCE_HTTP2=1', [], { EVENTSOURCE_HTTP2: '1' }, '2.0'],
    ['EVENTSOURCE_HTTP2=off', [], { EVENTSOURCE_HTTP2: 'off' }, '1.1'],
  ] as const) {
    test(`${what}: the POST goes over HTTP/${version}`, { timeout }, async (t) => {
      const server = await startHttp2Server();
      t.after(() => server.close());
      const result = await runBin(
        'eventsource-request',
        [...args, '--ca', caPath, '--url', server.url, 't', 'ping', 'x'],
        { env },
      );
      assert.deepEqual(
        [result.code, result.stdout, result.stderr],
        [0, reply('t'), 'delivered to 1 subscriber\n'],
      );
      assert.deepEqual(
        server.requests.map((r) => r.httpVersion),
        [version],
      );
    });
  }

  test('--help explains --http2 and its environment variable', { timeout }, async () => {
    const help = await runBin('eventsource-request', ['--help']);
    assert.equal(help.code, 0);
    // Commander wraps the description to the terminal width: compare it on one line.
    assert.ok(
      help.stdout
        .replace(/\s+/g, ' ')
        .includes(
          '--http2 speak HTTP/2 when the server offers it over TLS (-S or an https --url); HTTP/1.1 otherwise (env: EVENTSOURCE_HTTP2)',
        ),
      help.stdout,
    );
  });
});
