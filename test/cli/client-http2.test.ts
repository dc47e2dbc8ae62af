import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { runBin } from '../helpers/process.js';
import { startHttp2Server } from '../helpers/http2-server.js';

// Every test spawns a process, which can take seconds on a loaded machine.
const timeout = 30000;
const caPath = fileURLToPath(new URL('../../../test/fixtures/ca.pem', import.meta.url));

describe('eventsource-client --http2', { concurrency: 3 }, () => {
  test(
    'reads the stream over HTTP/2 and reconnects with Last-Event-ID on the same session',
    { timeout },
    async (t) => {
      const server = await startHttp2Server();
      t.after(() => server.close());
      const args = ['--http2', '-S', '--ca', caPath, '-P', String(server.port)];
      const result = await runBin('eventsource-client', [
        ...args,
        ...['-r', '100', '--count', '2', '--json', 'tok'],
      ]);
      const url = `https://127.0.0.1:${server.port}/poll/tok`;
      assert.deepEqual(result, {
        code: 0,
        signal: null,
        stdout:
          '{"id":"1","event":"message","data":"event 1 over 2.0"}\n' +
          '{"id":"2","event":"message","data":"event 2 over 2.0"}\n',
        stderr: `connected to ${url}\nstream ended; reconnecting in 100 ms\nconnected to ${url}\n`,
      });
      assert.deepEqual(
        server.requests.map((r) => [r.httpVersion, r.streamId, r.lastEventId]),
        [
          ['2.0', 1, undefined],
          ['2.0', 3, '1'],
        ],
      );
    },
  );

  for (const [what, args, env, version] of [
    ['without --http2', [], {}, '1.1'],
    ['EVENTSOURCE_HTTP2=1', [], { EVENTSOURCE_HTTP2: '1' }, '2.0'],
    ['EVENTSOURCE_HTTP2=0', [], { EVENTSOURCE_HTTP2: '0' }, '1.1'],
    ['--http2 beside EVENTSOURCE_HTTP2=0', ['--http2'], { EVENTSOURCE_HTTP2: '0' }, '2.0'],
  ] as const) {
    test(`${what}: the stream comes over HTTP/${version}`, { timeout }, async (t) => {
      const server = await startHttp2Server();
      t.after(() => server.close());
      const result = await runBin(
        'eventsource-client',
        [...args, '--url', `${server.url}/s`, '--ca', caPath, '--count', '1'],
        { env },
      );
      assert.deepEqual([result.code, result.stdout], [0, `message #1: event 1 over ${version}\n`]);
      assert.deepEqual(
        server.requests.map((r) => r.httpVersion),
        [version],
      );
    });
  }

  test('--help explains --http2 and its environment variable', { timeout }, async () => {
    const help = await runBin('eventsource-client', ['--help']);
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
