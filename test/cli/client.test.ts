import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  runBin,
  spawnBin,
  startListenerProcess,
  waitExit,
  waitForOutput,
} from '../helpers/process.js';
import { freePort } from '../helpers/redis.js';
import { cut, reply, startScriptedServer, stream, type Handler } from '../helpers/sse-server.js';

const timeout = 20000;
const caPath = fileURLToPath(new URL('../../../test/fixtures/ca.pem', import.meta.url));
const packageVersion = (
  JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  }
).version;

type Json = { id: string | null; event: string; data: string };
const message = (data: string, id: string | null = null, event = 'message'): Json => ({
  id,
  event,
  data,
});

// The spec's parsing cases, each sent whole and cut into 1- and 3-byte chunks.
const cases: { name: string; stream: string; events: Json[] }[] = [
  {
    name: 'an event without event: is a message',
    stream: 'data: hello\n\n',
    events: [message('hello')],
  },
  {
    name: 'two events in one chunk stay two',
    stream: 'data: a\n\nevent: update\ndata: b\n\n',
    events: [message('a'), message('b', null, 'update')],
  },
  {
    name: 'one leading space is removed, not more',
    stream: 'data:  two\ndata:none\ndata: \n\n',
    events: [message(' two\nnone\n')],
  },
  {
    name: 'unknown fields are ignored, a line without colon is a field with an empty value',
    stream: 'foo: bar\nevent\ndata\ndata: x\n\n',
    events: [message('\nx')],
  },
  {
    name: 'CR, LF and CRLF line ends',
    stream: 'data: a\r\ndata: b\rdata: c\n\r\ndata: d\r\r',
    events: [message('a\nb\nc'), message('d')],
  },
  {
    name: 'one leading BOM is ignored, comments are skipped',
    stream: '\uFEFFdata: bom\n\n: a comment\n\ndata: after\n\n',
    events: [message('bom'), message('after')],
  },
  {
    name: 'ids persist, an id with NUL is ignored, an empty id resets',
    stream: 'id: 1\ndata: a\n\ndata: b\n\nid: x\0y\ndata: c\n\nid\ndata: d\n\n',
    events: [message('a', '1'), message('b', '1'), message('c', '1'), message('d')],
  },
  {
    name: 'an event without data is not dispatched, its type does not leak',
    stream: 'event: x\n\nid: 5\n\ndata\n\ndata: y\n\n',
    events: [message('', '5'), message('y', '5')],
  },
  {
    name: 'an incomplete event at the end of the stream is dropped',
    stream: 'data: complete\n\ndata: incomplete',
    events: [message('complete')],
  },
  {
    name: 'UTF-8 split across chunks',
    stream: 'data: héllo € 😀\n\nevent: ü\ndata: ✓\n\n',
    events: [message('héllo € 😀'), message('✓', null, 'ü')],
  },
];

async function serve(
  t: { after: (fn: () => Promise<void>) => void },
  handlers: Handler[],
  tls = false,
) {
  const server = await startScriptedServer(handlers, { tls });
  t.after(() => server.close());
  return server;
}

const jsonLines = (events: Json[]): string => events.map((e) => `${JSON.stringify(e)}\n`).join('');

for (const { name, stream: text, events } of cases) {
  for (const size of [0, 1, 3]) {
    test(
      `--json: ${name} (${size === 0 ? 'whole' : `${size}-byte chunks`})`,
      { timeout },
      async (t) => {
        const chunks = size === 0 ? [text] : cut(text, size);
        const server = await serve(t, [stream(chunks, { gapMs: 1 })]);
        const result = await runBin('eventsource-client', [
          '-P',
          String(server.port),
          '--json',
          'tok',
        ]);
        assert.equal(result.stdout, jsonLines(events));
        assert.equal(result.stderr, `connected to ${server.url}/poll/tok\n`);
        assert.equal(result.code, 0);
        assert.equal(server.requests[0]?.url, '/poll/tok');
        assert.equal(server.requests[0]?.headers.accept, 'text/event-stream');
      },
    );
  }
}

test('prints one readable line per event by default', { timeout }, async (t) => {
  const server = await serve(t, [
    stream(['data: hello\n\nid: 3\nevent: news\ndata: line 1\ndata: line 2\n\n']),
  ]);
  const result = await runBin('eventsource-client', ['-P', String(server.port), 'tok']);
  assert.equal(result.stdout, 'message: hello\nnews #3: line 1\n  line 2\n');
  assert.equal(result.code, 0);
});

test('builds the URL from -S -H -P -x -a and encodes the token', { timeout }, async (t) => {
  const server = await serve(t, [reply(204)]);
  const result = await runBin('eventsource-client', [
    '-P',
    String(server.port),
    '-x',
    '/pre/',
    '-a',
    'listen',
    'a b/c',
  ]);
  assert.equal(server.requests[0]?.url, '/pre/listen/a%20b%2Fc');
  assert.equal(result.code, 0);
});

test('reconnects with -r, sending Last-Event-ID, and exits 0 on 204', { timeout }, async (t) => {
  const server = await serve(t, [
    stream(['id: 5\ndata: a\n\n']),
    stream(['data: b\n\n']),
    reply(204),
  ]);
  const url = `${server.url}/poll/tok`;
  const result = await runBin('eventsource-client', [
    '-P',
    String(server.port),
    '-r',
    '150',
    '--json',
    'tok',
  ]);
  assert.equal(result.stdout, jsonLines([message('a', '5'), message('b', '5')]));
  assert.equal(
    result.stderr,
    `connected to ${url}\nstream ended; reconnecting in 150 ms\n`.repeat(2) +
      `${url} answered 204 No Content: not reconnecting\n`,
  );
  assert.equal(result.code, 0);
  assert.deepEqual(
    server.requests.map((r) => r.headers['last-event-id']),
    [undefined, '5', '5'],
  );
});

test("the server's retry: overrides -r", { timeout }, async (t) => {
  const server = await serve(t, [stream(['retry: 150\ndata: a\n\n']), reply(204)]);
  const result = await runBin('eventsource-client', [
    '-P',
    String(server.port),
    '-r',
    '600000',
    'tok',
  ]);
  assert.match(result.stderr, /stream ended; reconnecting in 150 ms\n/);
  assert.equal(result.code, 0);
  assert.equal(server.requests.length, 2);
});

test('--last-event-id and --header are sent on the first connection', { timeout }, async (t) => {
  const server = await serve(t, [reply(204)]);
  const args = [
    '--url',
    `${server.url}/x`,
    '--last-event-id',
    '42',
    '--header',
    'X-A: 1',
    '--header',
    'X-B:2',
  ];
  const result = await runBin('eventsource-client', args);
  assert.equal(result.code, 0);
  const headers = server.requests[0]?.headers;
  assert.equal(headers?.['last-event-id'], '42');
  assert.equal(headers?.['x-a'], '1');
  assert.equal(headers?.['x-b'], '2');
});

test('404 without -k exits 1 with one line naming the URL and status', { timeout }, async (t) => {
  const server = await serve(t, [reply(404, 'Target is not connected\n')]);
  const result = await runBin('eventsource-client', ['-P', String(server.port), '-r', '10', 'tok']);
  assert.equal(result.stdout, '');
  assert.equal(
    result.stderr,
    `Unable to connect to ${server.url}/poll/tok (404): Target is not connected\n`,
  );
  assert.equal(result.code, 1);
  assert.equal(server.requests.length, 1);
});

test('404 with -k keeps reconnecting', { timeout }, async (t) => {
  const server = await serve(t, [reply(404, 'nope'), stream(['data: ok\n\n']), reply(204)]);
  const result = await runBin('eventsource-client', [
    '-P',
    String(server.port),
    '-k',
    '-r',
    '10',
    '--json',
    'tok',
  ]);
  assert.match(
    result.stderr,
    new RegExp(
      `^Unable to connect to ${server.url}/poll/tok \\(404\\): nope; reconnecting in \\d+ ms\n`,
    ),
  );
  assert.equal(result.stdout, jsonLines([message('ok')]));
  assert.equal(result.code, 0);
});

test('500 with -r 0 exits 1', { timeout }, async (t) => {
  const server = await serve(t, [reply(500, 'boom')]);
  const result = await runBin('eventsource-client', ['-P', String(server.port), 'tok']);
  assert.equal(result.stderr, `Unable to connect to ${server.url}/poll/tok (500): boom\n`);
  assert.equal(result.code, 1);
});

test('an HTML error page is shown as its text, on one line', { timeout }, async (t) => {
  const server = await serve(t, [
    reply(404, '<html><body><h1>Not&nbsp;Found</h1>\n<p>No such stream</p></body></html>', {
      'content-type': 'text/html',
    }),
  ]);
  const result = await runBin('eventsource-client', ['-P', String(server.port), 'tok']);
  assert.equal(
    result.stderr,
    `Unable to connect to ${server.url}/poll/tok (404): Not Found No such stream\n`,
  );
  assert.equal(result.code, 1);
});

for (const args of [
  ['-r', '10'],
  ['-r', '10', '-k'],
]) {
  test(`500 with ${args.join(' ')} reconnects with backoff`, { timeout }, async (t) => {
    const server = await serve(t, [
      reply(500, 'boom'),
      reply(503),
      stream(['data: ok\n\n']),
      reply(204),
    ]);
    const result = await runBin('eventsource-client', [
      '-P',
      String(server.port),
      ...args,
      '--json',
      'tok',
    ]);
    assert.equal(result.stdout, jsonLines([message('ok')]));
    const lines = result.stderr.split('\n');
    assert.match(lines[0] ?? '', /\(500\): boom; reconnecting in \d+ ms$/);
    assert.match(lines[1] ?? '', /\(503\): Service Unavailable; reconnecting in \d+ ms$/);
    assert.equal(result.code, 0);
  });
}

test('a silent stream counts as dropped after --timeout', { timeout }, async (t) => {
  const server = await serve(t, [stream(['data: a\n\n'], { keepOpen: true })]);
  const result = await runBin('eventsource-client', [
    '-P',
    String(server.port),
    '--timeout',
    '200',
    'tok',
  ]);
  assert.equal(result.stdout, 'message: a\n');
  assert.equal(
    result.stderr,
    `connected to ${server.url}/poll/tok\nConnection to ${server.url}/poll/tok lost: no data received for 200 ms\n`,
  );
  assert.equal(result.code, 1);
});

test('a silent stream reconnects after --timeout with -r', { timeout }, async (t) => {
  const server = await serve(t, [
    stream(['data: a\n\n'], { keepOpen: true }),
    stream(['data: b\n\n']),
    reply(204),
  ]);
  const result = await runBin('eventsource-client', [
    '-P',
    String(server.port),
    '--timeout',
    '200',
    '-r',
    '10',
    'tok',
  ]);
  assert.equal(result.stdout, 'message: a\nmessage: b\n');
  assert.match(result.stderr, /lost: no data received for 200 ms; reconnecting in \d+ ms\n/);
  assert.equal(result.code, 0);
});

test('an unreachable server exits 1 naming the cause and what to do', { timeout }, async (t) => {
  const server = await startScriptedServer([reply(204)]);
  await server.close();
  const result = await runBin('eventsource-client', ['-P', String(server.port), '-r', '10', 'tok']);
  assert.equal(
    result.stderr,
    `Unable to connect to ${server.url}/poll/tok: connect ECONNREFUSED 127.0.0.1:${server.port} (is eventsource-listener running? Start it first, or add -k to keep trying)\n`,
  );
  assert.equal(result.code, 1);
  t.after(() => undefined);
});

test('follows redirects', { timeout }, async (t) => {
  const server = await serve(t, [
    reply(302, '', { location: '/elsewhere' }),
    stream(['data: moved\n\n']),
  ]);
  const result = await runBin('eventsource-client', ['--url', `${server.url}/start`]);
  assert.equal(result.stdout, 'message: moved\n');
  assert.deepEqual(
    server.requests.map((r) => r.url),
    ['/start', '/elsewhere'],
  );
  assert.equal(result.code, 0);
});

test('a URL given as the argument is connected to as --url gives it', { timeout }, async (t) => {
  const server = await serve(t, [stream(['data: here\n\n'])]);
  const result = await runBin('eventsource-client', [`${server.url}/poll/tok?x=1`]);
  assert.equal(result.stdout, 'message: here\n');
  assert.deepEqual(
    server.requests.map((r) => r.url),
    ['/poll/tok?x=1'],
  );
  assert.equal(result.code, 0);
  // Both a URL and --url: which one was meant is unclear.
  const both = await runBin('eventsource-client', ['--url', `${server.url}/a`, `${server.url}/b`]);
  assert.equal(both.code, 2);
  assert.equal(both.stderr, 'error: give either a token or --url, not both\n');
});

test('sends basic auth from -u and -p, or from EVENTSOURCE_PASSWORD', { timeout }, async (t) => {
  const server = await serve(t, [reply(204)]);
  await runBin('eventsource-client', ['-P', String(server.port), '-u', 'ann', '-p', 'pw', 'tok']);
  await runBin('eventsource-client', ['-P', String(server.port), '-u', 'bob', 'tok'], {
    env: { EVENTSOURCE_PASSWORD: 'from env' },
  });
  assert.deepEqual(
    server.requests.map((r) => r.headers.authorization),
    [
      `Basic ${Buffer.from('ann:pw').toString('base64')}`,
      `Basic ${Buffer.from('bob:from env').toString('base64')}`,
    ],
  );
});

test(
  'HTTPS: refuses a throwaway certificate by default, accepts it with --insecure or --ca',
  { timeout },
  async (t) => {
    const server = await serve(t, [stream(['data: secure\n\n'])], true);
    const base = ['-S', '-P', String(server.port), 'tok'];
    const refused = await runBin('eventsource-client', base);
    assert.match(
      refused.stderr,
      new RegExp(`^Unable to connect to https://127.0.0.1:${server.port}/poll/tok: .*certificate`),
    );
    assert.equal(refused.stderr.split('\n').length, 2, 'one line, no stack trace');
    assert.equal(refused.code, 1);
    for (const extra of [['--insecure'], ['--ca', caPath], ['-V', '--ca', caPath]]) {
      const result = await runBin('eventsource-client', [...extra, ...base]);
      assert.equal(result.stdout, 'message: secure\n');
      assert.equal(result.code, 0);
    }
  },
);

test('--count N exits 0 after N events', { timeout }, async (t) => {
  const server = await serve(t, [
    stream(['data: 1\n\ndata: 2\n\ndata: 3\n\n'], { keepOpen: true }),
  ]);
  const result = await runBin('eventsource-client', [
    '-P',
    String(server.port),
    '--count',
    '2',
    '--json',
    'tok',
  ]);
  assert.equal(result.stdout, jsonLines([message('1'), message('2')]));
  assert.equal(result.code, 0);
});

for (const [signal, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
] as const) {
  test(`${signal} exits ${code} after printing every event received`, { timeout }, async (t) => {
    const server = await serve(t, [stream(['data: 1\n\n', 'data: 2\n\n'], { keepOpen: true })]);
    const child = spawnBin('eventsource-client', ['-P', String(server.port), '--json', 'tok']);
    t.after(() => void child.kill('SIGKILL'));
    await waitForOutput(child, /"data":"2"/, 'stdout');
    child.kill(signal);
    const result = await waitExit(child, 5000);
    assert.equal(result.stdout, jsonLines([message('1'), message('2')]));
    assert.equal(result.code, code);
  });
}

test(
  '--json piped into a reader that goes away (| head -1) ends quietly',
  { timeout },
  async (t) => {
    // Like `head`, the reader's going away is only noticed at the next write: keep events coming
    // until the client hangs up.
    const server = await serve(t, [
      (_request, response) => {
        response.writeHead(200, { 'content-type': 'text/event-stream' });
        let i = 0;
        const timer = setInterval(() => response.write(`data: ${i++}\n\n`), 10);
        response.on('close', () => clearInterval(timer));
      },
    ]);
    const child = spawnBin('eventsource-client', ['-P', String(server.port), '--json', 'tok']);
    t.after(() => void child.kill('SIGKILL'));
    await waitForOutput(child, /\n/, 'stdout');
    child.stdout.destroy();
    const result = await waitExit(child, 5000);
    assert.equal(result.code, 0);
    assert.equal(result.stderr, `connected to ${server.url}/poll/tok\n`);
  },
);

test(
  'with -k a refused connection is said once, retried quietly, and the listener started later is reached',
  { timeout: 30000 },
  async (t) => {
    const port = String(await freePort());
    const url = `http://127.0.0.1:${port}/poll/tok`;
    const client = spawnBin('eventsource-client', [
      '-P',
      port,
      '-r',
      '100',
      '-k',
      '--count',
      '1',
      'tok',
    ]);
    t.after(() => void client.kill('SIGKILL'));
    await waitForOutput(client, /quietly while refused\n/);
    // Let a few more attempts be refused (the delays start at 100 ms and back off) before the
    // listener appears on that port.
    await new Promise((resolve) => setTimeout(resolve, 700));
    const listener = spawnBin('eventsource-listener', ['-H', '127.0.0.1', '-P', port]);
    t.after(() => void listener.kill('SIGKILL'));
    await waitForOutput(listener, /listening on /);
    await waitForOutput(client, /connected to /);
    const ping = await runBin('eventsource-request', ['-P', port, 'tok', 'ping', 'late']);
    assert.equal(ping.code, 0, ping.stderr);
    const result = await waitExit(client, 10000);
    assert.equal(result.stdout, 'ping: late\n');
    assert.equal(
      result.stderr,
      `Unable to connect to ${url}: connect ECONNREFUSED 127.0.0.1:${port} (is eventsource-listener running?); ` +
        `reconnecting in ${/reconnecting in (\d+) ms/.exec(result.stderr)?.[1]} ms, quietly while refused\n` +
        `connected to ${url}\n`,
    );
    assert.equal(result.code, 0);
  },
);

test('-p without -u is a usage error: one line, exit 2', { timeout }, async () => {
  assert.deepEqual(await runBin('eventsource-client', ['-p', 'pw', 'tok']), {
    code: 2,
    signal: null,
    stdout: '',
    stderr: 'error: -p/--password is the HTTP Basic password: give -u/--user with it\n',
  });
});

test('usage errors exit 2', { timeout }, async () => {
  for (const args of [
    [],
    ['-P', 'x', 'tok'],
    ['--bogus', 'tok'],
    ['--url', 'http://a/', 'tok'],
    ['--url', 'ftp://a/'],
  ]) {
    const result = await runBin('eventsource-client', args);
    assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
    assert.equal(result.stdout, '');
    assert.match(result.stderr, /^error: /);
  }
});

test('-v prints the version and --help the usage, both exit 0', { timeout }, async () => {
  const version = await runBin('eventsource-client', ['-v']);
  assert.equal(version.stdout, `${packageVersion}\n`);
  assert.equal(version.code, 0);
  const help = await runBin('eventsource-client', ['--help']);
  assert.match(help.stdout, /^Usage: eventsource-client \[options\] \[token\]/);
  assert.match(help.stdout, /Examples:/);
  // -r's help gives the bounds every reconnection delay is kept within (src/wire/retry.ts).
  assert.match(help.stdout.replace(/\s+/g, ' '), /every wait is kept between 100 ms and 24 h\)/);
  assert.equal(help.code, 0);
});

test(
  'the three CLIs together as in the README: listener, client, request',
  { timeout: 30000 },
  async (t) => {
    const listener = await startListenerProcess(['-i', '-k', '50000']);
    t.after(async () => void (await listener.stop()));
    const token = '42:42:42:42:42:42';
    const port = String(listener.port);
    const client = spawnBin('eventsource-client', [token, '-r', '200', '-P', port, '--json']);
    t.after(() => void client.kill('SIGKILL'));
    await waitForOutput(client, /connected to /);

    const ping = await runBin('eventsource-request', ['-P', port, token, 'ping', '42']);
    assert.equal(ping.code, 0, ping.stderr);
    await waitForOutput(client, /"data":"42"/, 'stdout');

    // `close` ends the stream; with -r the client reconnects and gets what was posted meanwhile.
    const close = await runBin('eventsource-request', ['-P', port, token, 'close']);
    assert.equal(close.code, 0, close.stderr);
    await waitForOutput(client, /stream ended; reconnecting in \d+ ms\n/);
    const again = await runBin('eventsource-request', ['-P', port, token, 'ping', 'again']);
    assert.equal(again.code, 0, again.stderr);
    await waitForOutput(client, /"data":"again"/, 'stdout');

    client.kill('SIGINT');
    const result = await waitExit(client, 5000);
    assert.equal(result.code, 130);
    const events = result.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Json);
    assert.deepEqual(
      events.map((e) => e.data),
      ['42', 'again'],
    );
    // With -i the listener numbers its events, and the client shows each event's id.
    assert.ok(
      events.every((e) => typeof e.id === 'string' && e.id !== ''),
      result.stdout,
    );
  },
);
