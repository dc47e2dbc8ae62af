import { test } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { createParser, type ParsedEvent } from '../../src/wire/parser.js';
import { httpRequest, openStream } from '../helpers/net.js';
import {
  runBin,
  spawnBin,
  startListenerProcess,
  waitExit,
  waitForOutput,
} from '../helpers/process.js';
import { post, rawRequest, replyId, waitUntil } from '../helpers/listener-helpers.js';

const fixturePath = (name: string): string =>
  fileURLToPath(new URL(`../../../test/fixtures/${name}`, import.meta.url));
const version = (
  JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  }
).version;

const FLAGS: [string, string][] = [
  ['--host', 'HOST'],
  ['--port', 'PORT'],
  ['--debug', 'DEBUG'],
  ['--json', 'JSON'],
  ['--id', 'ID'],
  ['--keepalive', 'KEEPALIVE'],
  ['--keyfile', 'KEYFILE'],
  ['--certfile', 'CERTFILE'],
  ['--multi', 'MULTI'],
  ['--takeover', 'TAKEOVER'],
  ['--history', 'HISTORY'],
  ['--history-bytes', 'HISTORY_BYTES'],
  ['--grace', 'GRACE'],
  ['--gap-event', 'GAP_EVENT'],
  ['--max-buffer', 'MAX_BUFFER'],
  ['--max-body', 'MAX_BODY'],
  ['--prefix', 'PREFIX'],
  ['--cors', 'CORS'],
  ['--publish-secret', 'PUBLISH_SECRET'],
  ['--max-connections', 'MAX_CONNECTIONS'],
  ['--max-memory', 'MAX_MEMORY'],
];

test(
  '--help lists every flag with its EVENTSOURCE_* variable, and exits 0',
  {
    timeout: 30000,
  },
  async () => {
    const result = await runBin('eventsource-listener', ['--help']);
    assert.equal(result.code, 0);
    assert.equal(result.stderr, '');
    const help = result.stdout.replace(/\s+/g, ' ');
    for (const [flag, env] of FLAGS) {
      assert.match(help, new RegExp(`${flag}\\b`), flag);
      assert.match(help, new RegExp(`env: EVENTSOURCE_${env}\\b`), env);
    }
    for (const short of ['-H', '-P', '-d', '-j', '-i', '-k', '-K', '-C']) {
      assert.match(help, new RegExp(`${short}, --`), short);
    }
    assert.match(result.stdout, /Examples:/);
  },
);

test('--version prints the version and exits 0', { timeout: 30000 }, async () => {
  const result = await runBin('eventsource-listener', ['--version']);
  assert.deepEqual([result.code, result.stdout, result.stderr], [0, `${version}\n`, '']);
});

const usageErrors: [string[], NodeJS.ProcessEnv, RegExp][] = [
  [['-P', 'abc'], {}, /option '-P, --port <port>' argument 'abc' is invalid/],
  [['-P', '70000'], {}, /--port.*'70000' is invalid. expected a port number/],
  [['-k', '-5'], {}, /--keepalive/],
  [['--history', 'ten'], {}, /--history <n>' argument 'ten' is invalid/],
  [['--history-bytes', '1q'], {}, /--history-bytes <bytes>' argument '1q' is invalid/],
  [['--grace', '-1'], {}, /--grace/],
  [['--max-buffer', 'lots'], {}, /--max-buffer <bytes>' argument 'lots' is invalid/],
  [['--max-body', '1.5m'], {}, /--max-body <bytes>' argument '1.5m' is invalid/],
  [['--max-connections', '0'], {}, /--max-connections <n>' argument '0' is invalid/],
  [[], { EVENTSOURCE_PORT: 'x' }, /value 'x' from env 'EVENTSOURCE_PORT' is invalid/],
  [[], { EVENTSOURCE_KEEPALIVE: 'soon' }, /from env 'EVENTSOURCE_KEEPALIVE' is invalid/],
  [['--multi', '--takeover'], {}, /'--multi' cannot be used with option '--takeover'/],
  [['--nope'], {}, /unknown option '--nope'/],
  [
    ['-K', 'key.pem'],
    {},
    /^eventsource-listener: -K\/--keyfile and -C\/--certfile go together: give both to serve HTTPS\n$/,
  ],
  [['-C', 'cert.pem'], {}, /-K\/--keyfile and -C\/--certfile go together/],
  [[], { EVENTSOURCE_KEYFILE: 'key.pem' }, /-K\/--keyfile and -C\/--certfile go together/],
  [
    ['-K', '/nonexistent/key.pem', '-C', '/nonexistent/cert.pem'],
    {},
    /^eventsource-listener: cannot read TLS files: .*ENOENT/,
  ],
];

test(
  'bad flags and variables are usage errors: exit 2 with one clear line',
  {
    timeout: 60000,
    concurrency: true,
  },
  async (t) => {
    await Promise.all(
      usageErrors.map(([args, env, message]) => {
        const name = [...Object.entries(env).map(([k, v]) => `${k}=${v}`), ...args].join(' ');
        return t.test(`"${name}" exits 2`, async () => {
          const result = await runBin('eventsource-listener', ['-H', '127.0.0.1', ...args], {
            env,
          });
          assert.equal(result.code, 2, result.stderr);
          assert.equal(result.stdout, '');
          assert.match(result.stderr, message);
          assert.equal(result.stderr.trim().split('\n').length, 1, 'one line');
        });
      }),
    );
  },
);

test('a port already in use exits 1 with one line', { timeout: 30000 }, async (t) => {
  const first = await startListenerProcess();
  t.after(() => first.stop());
  const result = await runBin('eventsource-listener', [
    '-H',
    '127.0.0.1',
    '-P',
    String(first.port),
  ]);
  assert.equal(result.code, 1);
  assert.match(
    result.stderr,
    /^eventsource-listener: cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE/,
  );
});

test(
  'the start line is "listening on <url> (<Class>)" for each class flag',
  {
    timeout: 60000,
    concurrency: true,
  },
  async (t) => {
    const table = [
      [[], 'StringEvent'],
      [['-i'], 'StringIdEvent'],
      [['-j'], 'JSONEvent'],
      [['-j', '-i'], 'JSONIdEvent'],
    ] as const;
    await Promise.all(
      table.map(([args, className]) =>
        t.test(`${['eventsource-listener', ...args].join(' ')}: ${className}`, async () => {
          const listener = await startListenerProcess([...args]);
          try {
            assert.equal(
              listener.child.output.stderr,
              `listening on ${listener.url}/ (${className})\n`,
            );
            assert.equal(listener.child.output.stdout, '');
          } finally {
            await listener.stop();
          }
        }),
      ),
    );
  },
);

const OPTIONS_LINE =
  'keepalive 500 ms, multi, history 10, history-bytes 1048576, grace 100 ms, gap-event gap, ' +
  'max-buffer 2097152, max-body 10, cors *, publish-secret set, max-connections 5, ' +
  'max-memory 67108864';

test(
  'the start line lists the options that differ from the defaults',
  {
    timeout: 30000,
  },
  async (t) => {
    const listener = await startListenerProcess([
      ...['-j', '-k', '500', '--multi', '--history', '10', '--history-bytes', '1m'],
      ...['--grace', '100', '--gap-event', 'gap', '--max-buffer', '2m', '--max-body', '10'],
      ...['--cors', '*', '--publish-secret', 's', '--max-connections', '5', '--prefix', 'p'],
      ...['--max-memory', '64m'],
    ]);
    t.after(() => listener.stop());
    assert.match(listener.url, /\/p$/);
    assert.equal(
      listener.child.output.stderr,
      `listening on ${listener.url}/ (JSONEvent; ${OPTIONS_LINE})\n`,
    );
  },
);

test(
  'every flag can come from an EVENTSOURCE_* variable, and flags beat the environment',
  {
    timeout: 30000,
  },
  async (t) => {
    const env = {
      EVENTSOURCE_HOST: '127.0.0.1',
      EVENTSOURCE_PORT: '0',
      EVENTSOURCE_JSON: '1',
      EVENTSOURCE_ID: '1',
      EVENTSOURCE_KEEPALIVE: '500',
      EVENTSOURCE_MULTI: '1',
      EVENTSOURCE_HISTORY: '10',
      EVENTSOURCE_HISTORY_BYTES: '1m',
      EVENTSOURCE_GRACE: '100',
      EVENTSOURCE_GAP_EVENT: 'gap',
      EVENTSOURCE_MAX_BUFFER: '2m',
      EVENTSOURCE_MAX_BODY: '10',
      EVENTSOURCE_CORS: '*',
      EVENTSOURCE_PUBLISH_SECRET: 's',
      EVENTSOURCE_MAX_CONNECTIONS: '5',
      EVENTSOURCE_MAX_MEMORY: '64m',
      EVENTSOURCE_PREFIX: 'p',
    };
    const child = spawnBin('eventsource-listener', [], env);
    t.after(async () => {
      child.kill('SIGTERM');
      await waitExit(child, 5000);
    });
    const [, url] = (await waitForOutput(
      child,
      /listening on (http:\/\/127\.0\.0\.1:\d+\/p\/) /,
    )) as [string, string];
    assert.equal(child.output.stderr, `listening on ${url} (JSONIdEvent; ${OPTIONS_LINE})\n`);
    // The secret, the body limit and the JSON class are in force.
    const stream = await openStream(`${url}poll/t`);
    t.after(() => stream.close());
    assert.equal((await post(`${url}ping/t`, '1')).status, 401);
    const auth = { authorization: 'Bearer s' };
    assert.equal((await post(`${url}ping/t`, '12345678901', { headers: auth })).status, 413);
    assert.equal((await post(`${url}ping/t`, '{x', { headers: auth })).status, 400);
    assert.equal((await post(`${url}ping/t`, '[1, 2]', { headers: auth })).status, 200);
    await stream.waitFor(1);
    assert.equal(stream.events[0]?.data, '[1,2]');
    assert.match(stream.events[0]?.id ?? '', /^\d+$/);
    // Flags beat the environment.
    const flagged = await startListenerProcess(['-k', '700', '--history', '20'], {
      EVENTSOURCE_KEEPALIVE: '500',
      EVENTSOURCE_HISTORY: '10',
      EVENTSOURCE_TAKEOVER: '1',
    });
    t.after(() => flagged.stop());
    assert.equal(
      flagged.child.output.stderr,
      `listening on ${flagged.url}/ (StringEvent; keepalive 700 ms, takeover, history 20)\n`,
    );
  },
);

test('-d (or EVENTSOURCE_DEBUG) writes debug output to stderr', { timeout: 30000 }, async (t) => {
  for (const [args, env] of [
    [['-d'], {}],
    [[], { EVENTSOURCE_DEBUG: '1' }],
  ] as const) {
    const listener = await startListenerProcess([...args], env);
    t.after(() => listener.stop());
    const stream = await openStream(`${listener.url}/poll/dbg`);
    t.after(() => stream.close());
    await waitForOutput(listener.child, /eventsource:listener .*subscribed to dbg/);
    assert.equal(listener.child.output.stdout, '');
  }
});

test(
  '-K and -C serve HTTPS (the certificate checked against the fixture CA)',
  {
    timeout: 30000,
  },
  async (t) => {
    const listener = await startListenerProcess([
      '-i',
      '-K',
      fixturePath('key.pem'),
      '-C',
      fixturePath('cert.pem'),
    ]);
    t.after(() => listener.stop());
    assert.match(listener.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(listener.child.output.stderr, `listening on ${listener.url}/ (StringIdEvent)\n`);
    const ca = readFileSync(fixturePath('ca.pem'));
    const request = https.get(`${listener.url}/poll/secure`, { ca });
    t.after(() => request.destroy());
    const [response] = (await once(request, 'response')) as [import('node:http').IncomingMessage];
    assert.equal(response.statusCode, 200);
    const events: ParsedEvent[] = [];
    const parser = createParser({ onEvent: (event) => events.push(event) });
    response.on('data', (chunk: Buffer) => parser.feed(chunk));
    const reply = await new Promise<string>((resolve, reject) => {
      const req = https.request(`${listener.url}/ping/secure`, { method: 'POST', ca }, (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () => resolve(body));
      });
      req.on('error', reject);
      req.end('hello\nTLS');
    });
    await waitUntil(() => events.length === 1, 'the event over TLS');
    assert.deepEqual(events[0], { event: 'ping', data: 'hello\nTLS', id: JSON.parse(reply).id });
  },
);

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`${signal} ends every stream and exits 0 within a second`, { timeout: 30000 }, async (t) => {
    const listener = await startListenerProcess(['-i']);
    t.after(() => listener.stop());
    const stream = await openStream(`${listener.url}/poll/a`);
    t.after(() => stream.close());
    // A subscriber that never reads, with more waiting for it than the socket takes.
    const stuck = await rawRequest(listener.port, 'GET /poll/b HTTP/1.1\r\nHost: x\r\n\r\n', {
      isReading: false,
    });
    t.after(() => stuck.socket.destroy());
    const big = 'x'.repeat(512 * 1024);
    for (let i = 0; i < 8; i++)
      assert.equal((await post(`${listener.url}/ping/b`, big)).status, 200);
    const id = replyId(await post(`${listener.url}/ping/a`, 'last'));
    await stream.waitFor(1);
    const started = Date.now();
    listener.child.kill(signal);
    const result = await waitExit(listener.child, 5000);
    const elapsed = Date.now() - started;
    assert.equal(result.code, 0, result.stderr);
    assert.ok(elapsed < 1000, `exited after ${elapsed} ms`);
    await stream.ended;
    assert.equal(stream.response.complete, true, 'the stream was ended cleanly');
    assert.deepEqual(stream.events, [{ event: 'ping', data: 'last', id }]);
    assert.equal(result.stderr, `listening on ${listener.url}/ (StringIdEvent)\n`);
    assert.equal(result.stdout, '');
    const refused = await httpRequest(`${listener.url}/`).catch(
      (error: NodeJS.ErrnoException) => error,
    );
    assert.equal((refused as NodeJS.ErrnoException).code, 'ECONNREFUSED');
  });
}

test(
  'README quick start: listener -i -k 50000, a client on 42:42:42:42:42:42, request ping and close',
  {
    timeout: 30000,
  },
  async (t) => {
    const listener = await startListenerProcess(['-i', '-k', '50000']);
    t.after(() => listener.stop());
    const token = '42:42:42:42:42:42';
    const stream = await openStream(`${listener.url}/poll/${token}`);
    t.after(() => stream.close());
    const port = String(listener.port);
    const ping = await runBin('eventsource-request', ['-P', port, token, 'ping', '42']);
    assert.equal(ping.code, 0, ping.stderr);
    await stream.waitFor(1);
    assert.equal(stream.events[0]?.data, '42');
    assert.match(stream.events[0]?.id ?? '', /^\d+$/);
    const close = await runBin('eventsource-request', ['-P', port, token, 'close']);
    assert.equal(close.code, 0, close.stderr);
    await stream.ended;
    const again = await runBin('eventsource-request', ['-P', port, 'nobody', 'ping', '1']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /404.*Target is not connected/);
  },
);

test(
  'a boolean EVENTSOURCE_* variable set to 0, false, no or off leaves its flag off',
  { timeout: 30000 },
  async (t) => {
    for (const value of ['0', 'false', 'no', 'off']) {
      const child = spawnBin('eventsource-listener', ['-H', '127.0.0.1', '-P', '0'], {
        EVENTSOURCE_MULTI: value,
        EVENTSOURCE_ID: value,
      });
      t.after(() => child.kill('SIGKILL'));
      await waitForOutput(child, /listening on .*\n/);
      assert.match(child.output.stderr, /\(StringEvent\)\n$/, `with ${value}`);
      child.kill('SIGTERM');
      assert.equal((await waitExit(child, 5000)).code, 0);
    }
  },
);
