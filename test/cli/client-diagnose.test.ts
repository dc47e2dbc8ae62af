import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { runBin, startListenerProcess } from '../helpers/process.js';
import { reply, startScriptedServer, stream } from '../helpers/sse-server.js';
import { listen } from '../helpers/net.js';

const timeout = 30000;
const fixturePath = (name: string): string =>
  fileURLToPath(new URL(`../../../test/fixtures/${name}`, import.meta.url));
// Short windows: each run takes two or three seconds.
const quick = ['--diagnose-seconds', '1.5', '--keepalive-max', '1000'];
const ids = [
  'connect',
  'status',
  'content-type',
  'cache-control',
  'compression',
  'buffering',
  'keepalive',
  'http-version',
  'cors',
  'last-event-id',
  'retry',
];

type Report = {
  url: string;
  verdict: string;
  checks: { id: string; status: string; detail: string }[];
};

/** The human report's lines as [id, status], and its verdict. */
function parseHuman(stdout: string): { rows: [string, string][]; verdict: string } {
  const lines = stdout.trimEnd().split('\n');
  const last = lines.pop() ?? '';
  const verdict = /^verdict: (pass|warn|fail)$/.exec(last)?.[1];
  assert.ok(verdict, `no verdict line in ${stdout}`);
  const rows = lines.map((line) => {
    const match = /^(\S+) +(pass|warn|fail|skip) +\S/.exec(line);
    assert.ok(match, `not a check line: ${line}`);
    return [match[1], match[2]] as [string, string];
  });
  return { rows, verdict };
}

test(
  '--diagnose against the listener: one line per check, then the verdict; --json agrees',
  { timeout },
  async (t) => {
    const listener = await startListenerProcess(['-i', '-k', '200']);
    t.after(async () => void (await listener.stop()));
    const port = String(listener.port);
    const human = await runBin('eventsource-client', ['--diagnose', '-P', port, 'tok', ...quick]);
    assert.equal(human.code, 0, human.stderr);
    const { rows, verdict } = parseHuman(human.stdout);
    assert.deepEqual(
      rows.map(([id]) => id),
      ids,
    );
    // Plain HTTP/1.1 warns; everything else the listener does passes (cors is skipped).
    assert.deepEqual(Object.fromEntries(rows), {
      connect: 'pass',
      status: 'pass',
      'content-type': 'pass',
      'cache-control': 'pass',
      compression: 'pass',
      buffering: 'pass',
      keepalive: 'pass',
      'http-version': 'warn',
      cors: 'skip',
      'last-event-id': 'pass',
      retry: 'pass',
    });
    assert.equal(verdict, 'warn');
    assert.match(human.stderr, /^diagnosing http:\/\/127\.0\.0\.1:\d+\/poll\/tok \(watching for/);

    const json = await runBin('eventsource-client', [
      '--diagnose',
      '--json',
      `http://127.0.0.1:${port}/poll/tok2`,
      ...quick,
    ]);
    assert.equal(json.code, 0, json.stderr);
    assert.equal(json.stdout.split('\n').length, 2, 'exactly one JSON line');
    const report = JSON.parse(json.stdout) as Report;
    assert.deepEqual(Object.keys(report), ['url', 'verdict', 'checks']);
    assert.equal(report.url, `http://127.0.0.1:${port}/poll/tok2`);
    assert.equal(report.verdict, verdict);
    assert.deepEqual(
      report.checks.map((c) => Object.keys(c).join()),
      ids.map(() => 'id,status,detail'),
    );
    assert.deepEqual(
      report.checks.map((c) => [c.id, c.status]),
      rows,
    );
  },
);

test(
  'a failing endpoint: the report and --json both say fail and exit 1',
  { timeout },
  async (t) => {
    const server = await startScriptedServer([reply(404, 'Target is not connected')]);
    t.after(() => server.close());
    const url = `${server.url}/poll/gone`;
    const human = await runBin('eventsource-client', ['--diagnose', url, ...quick]);
    const json = await runBin('eventsource-client', ['--diagnose', '--json', url, ...quick]);
    assert.equal(human.code, 1);
    assert.equal(json.code, 1);
    assert.equal(parseHuman(human.stdout).verdict, 'fail');
    assert.match(human.stdout, /^status +fail +404: Target is not connected/m);
    const report = JSON.parse(json.stdout) as Report;
    assert.equal(report.verdict, 'fail');
    assert.equal(report.checks[1]?.status, 'fail');
  },
);

test(
  'an unreachable port: connect fails in one line, no stack trace, exit 1',
  { timeout },
  async () => {
    const server = await listen((_request, response) => response.end());
    const port = String(server.port);
    await server.close();
    const result = await runBin('eventsource-client', ['--diagnose', '-P', port, 'tok', ...quick]);
    assert.equal(result.code, 1);
    const connectLine = result.stdout.split('\n')[0] ?? '';
    assert.match(connectLine, /^connect +fail +connect ECONNREFUSED 127\.0\.0\.1:\d+$/);
    assert.equal(parseHuman(result.stdout).verdict, 'fail');
    assert.doesNotMatch(result.stderr, /\n\s+at /);
    assert.equal(result.stderr.split('\n').filter(Boolean).length, 1, result.stderr);
    const json = await runBin('eventsource-client', ['--diagnose', '--json', '-P', port, 'x']);
    assert.equal(json.code, 1);
    assert.equal((JSON.parse(json.stdout) as Report).checks[0]?.status, 'fail');
  },
);

test(
  'the listener over TLS with HTTP/2 and --ca: http-version passes, verdict pass, exit 0',
  { timeout },
  async (t) => {
    const listener = await startListenerProcess([
      '-i',
      '-k',
      '200',
      '-K',
      fixturePath('key.pem'),
      '-C',
      fixturePath('cert.pem'),
      '--cors',
      'https://app.example',
    ]);
    t.after(async () => void (await listener.stop()));
    const result = await runBin('eventsource-client', [
      '--diagnose',
      `${listener.url}/poll/secure`,
      '--ca',
      fixturePath('ca.pem'),
      '--origin',
      'https://app.example',
      ...quick,
    ]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /^http-version +pass +HTTP\/2, negotiated by ALPN$/m);
    assert.match(result.stdout, /^cors +pass /m);
    assert.match(result.stdout, /\nverdict: pass\n$/);
  },
);

test(
  '--diagnose with a publish secret: without --secret the probes fall back to passive mode',
  { timeout },
  async (t) => {
    const listener = await startListenerProcess(['-i', '-k', '200', '--publish-secret', 's3cret']);
    t.after(async () => void (await listener.stop()));
    const port = String(listener.port);
    const without = await runBin('eventsource-client', ['--diagnose', '-P', port, 'a', ...quick]);
    assert.match(without.stdout, /^buffering +skip +passive mode: the probe POST .*\(401\)/m);
    const withSecret = await runBin(
      'eventsource-client',
      ['--diagnose', '-P', port, 'b', ...quick],
      { env: { EVENTSOURCE_SECRET: 's3cret' } },
    );
    assert.match(withSecret.stdout, /^buffering +pass +3 probe events/m);
    const withBearer = await runBin('eventsource-client', [
      '--diagnose',
      '-P',
      port,
      'c',
      '--bearer',
      's3cret',
      ...quick,
    ]);
    assert.match(withBearer.stdout, /^buffering +pass +3 probe events/m);
  },
);

test(
  '--diagnose takes -x and -a to find the listener stream for its probes',
  { timeout },
  async (t) => {
    const listener = await startListenerProcess(['-i', '-k', '200', '--prefix', 'events']);
    t.after(async () => void (await listener.stop()));
    const result = await runBin('eventsource-client', [
      '--diagnose',
      '-P',
      String(listener.port),
      '-x',
      'events',
      'tok',
      '--probe-action',
      'ping',
      ...quick,
    ]);
    assert.match(result.stdout, /^buffering +pass /m);
  },
);

test('a raw server is observed passively', { timeout }, async (t) => {
  const server = await startScriptedServer([stream(['data: one\n\n'], { keepOpen: true })]);
  t.after(() => server.close());
  const result = await runBin('eventsource-client', ['--diagnose', `${server.url}/feed`, ...quick]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(
    result.stdout,
    /^buffering +skip +passive mode: the URL is not an eventsource-listener stream/m,
  );
  assert.match(result.stdout, /^keepalive +warn +the stream was silent/m);
});

const usageCases: [string, string[], RegExp][] = [
  ['no URL', ['--diagnose'], /missing the URL/],
  ['an unparseable URL', ['--diagnose', 'http://exa mple/'], /must be an absolute http\(s\) URL/],
  ['a non-http(s) URL', ['--diagnose', 'ftp://example.com/x'], /must be an http\(s\) URL/],
  ['a bad --diagnose-seconds', ['--diagnose', 'x', '--diagnose-seconds', 'abc'], /positive number/],
  [
    'a bad --keepalive-max',
    ['--diagnose', 'x', '--keepalive-max', '-1'],
    /positive integer|unknown option/,
  ],
];
for (const [name, args, message] of usageCases) {
  test(`usage: ${name} exits 2 with nothing on stdout, with --json too`, { timeout }, async () => {
    for (const extra of [[], ['--json']]) {
      const result = await runBin('eventsource-client', [...args, ...extra]);
      assert.equal(result.code, 2, result.stderr);
      assert.equal(result.stdout, '');
      assert.match(result.stderr, message);
    }
  });
}

test('--help shows every diagnose flag, --bearer and an example', async () => {
  const result = await runBin('eventsource-client', ['--help']);
  assert.equal(result.code, 0);
  for (const flag of [
    '--diagnose ',
    '--diagnose-seconds',
    '--keepalive-max',
    '--origin',
    '--with-credentials',
    '--probe-action',
    '--secret',
    '--bearer',
    'EVENTSOURCE_BEARER',
    '--json',
  ]) {
    assert.ok(result.stdout.includes(flag), flag);
  }
  assert.match(result.stdout, /\$ eventsource-client --diagnose https:\/\//);
});
