import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  runBin,
  spawnBin,
  startListenerProcess,
  waitExit,
  waitForOutput,
} from '../helpers/process.js';
import { openStream } from '../helpers/net.js';
import { closedPort, startRecorder, type Answer } from '../helpers/recorder.js';

// Generous: every test spawns processes, and a loaded CI machine can take seconds per spawn.
const timeout = 60000;
const request = (args: string[], options: Parameters<typeof runBin>[2] = {}) =>
  runBin('eventsource-request', args, options);
const caFile = new URL('../../../test/fixtures/ca.pem', import.meta.url).pathname;
const { version } = JSON.parse(
  readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'),
) as { version: string };
// What the CLI says on stderr after a 200 from a listener with one subscriber.
const DELIVERED = 'delivered to 1 subscriber\n';
const SUMMARY = (sent: number, failed: number) =>
  new RegExp(`^sent ${sent}, failed ${failed}, \\d+ events/s\\n$`);

function answer(status: number, body: string, type = 'text/plain; charset=utf-8'): () => Answer {
  return () => ({ status, headers: { 'content-type': type }, body });
}

// Each test has its own server and processes, so a few run at once: spawning ~60 processes one by
// one takes long on a loaded machine.
const concurrency = 4;

describe('eventsource-request against a raw server', { concurrency }, () => {
  test(
    'sends the data argument, prints the reply with a newline, exits 0',
    { timeout },
    async (t) => {
      const server = await startRecorder();
      t.after(() => server.close());
      const result = await request(['-P', String(server.port), 'my-token', 'ping', 'hello world']);
      assert.deepEqual(result, {
        code: 0,
        signal: null,
        stdout: '{"token":"my-token","action":"ping","id":null,"subscribers":1}\n',
        stderr: DELIVERED,
      });
      assert.equal(server.requests.length, 1);
      const [received] = server.requests;
      assert.equal(received?.method, 'POST');
      assert.equal(received?.url, '/ping/my-token');
      assert.equal(received?.body, 'hello world');
      assert.equal(received?.headers['content-type'], 'text/plain; charset=utf-8');
    },
  );

  test(
    'a reply that already ends in a newline is printed as is; an empty one prints nothing',
    { timeout },
    async (t) => {
      const replies = ['line\n', ''];
      const server = await startRecorder(() => ({ status: 200, body: replies.shift() ?? '' }));
      t.after(() => server.close());
      assert.deepEqual(await request(['-P', String(server.port), 't', 'ping', 'a']), {
        code: 0,
        signal: null,
        stdout: 'line\n',
        stderr: 'delivered\n',
      });
      assert.deepEqual(await request(['-P', String(server.port), 't', 'ping', 'a']), {
        code: 0,
        signal: null,
        stdout: '',
        stderr: 'delivered\n',
      });
    },
  );

  for (const [status, reply, stderr] of [
    [200, { token: 't', action: 'ping', id: '1', subscribers: 3 }, 'delivered to 3 subscribers\n'],
    [
      202,
      { token: 't', action: 'ping', id: '1', subscribers: 0 },
      'kept for a reconnecting subscriber (202: none is connected now)\n',
    ],
    [204, undefined, 'sent (204)\n'],
  ] as const) {
    test(`a ${status} reply: stderr says "${stderr.trim()}"`, { timeout }, async (t) => {
      const body = reply === undefined ? '' : JSON.stringify(reply);
      const server = await startRecorder(() => ({
        status,
        headers: reply === undefined ? {} : { 'content-type': 'application/json' },
        body,
      }));
      t.after(() => server.close());
      assert.deepEqual(await request(['-P', String(server.port), 't', 'ping', 'x']), {
        code: 0,
        signal: null,
        stdout: body === '' ? '' : `${body}\n`,
        stderr,
      });
    });
  }

  test('-H, -P, -x and a token needing encoding build the URL', { timeout }, async (t) => {
    const server = await startRecorder();
    t.after(() => server.close());
    const result = await request([
      '-H',
      '127.0.0.1',
      '-P',
      String(server.port),
      '-x',
      'events/',
      'aa:bb cc',
      'ping',
      'x',
    ]);
    assert.equal(result.code, 0);
    assert.equal(server.requests[0]?.url, '/events/ping/aa%3Abb%20cc');
  });

  test('--url replaces scheme, host, port and prefix', { timeout }, async (t) => {
    const server = await startRecorder();
    t.after(() => server.close());
    const result = await request([
      '--url',
      `${server.url}/base`,
      '-P',
      '1',
      '-x',
      'nope',
      't',
      'ping',
      'x',
    ]);
    assert.deepEqual([result.code, result.stderr], [0, DELIVERED]);
    assert.equal(server.requests[0]?.url, '/base/ping/t');
  });

  test('no data argument with piped stdin sends stdin', { timeout }, async (t) => {
    const server = await startRecorder();
    t.after(() => server.close());
    const result = await request(['-P', String(server.port), 't', 'ping'], {
      input: 'from\nstdin\n',
    });
    assert.deepEqual([result.code, result.stderr], [0, DELIVERED]);
    assert.equal(server.requests[0]?.body, 'from\nstdin\n');
  });

  test('"-" reads stdin; empty stdin sends an empty body', { timeout }, async (t) => {
    const server = await startRecorder();
    t.after(() => server.close());
    assert.equal(
      (await request(['-P', String(server.port), 't', 'ping', '-'], { input: 'dash' })).code,
      0,
    );
    assert.equal((await request(['-P', String(server.port), 't', 'ping'])).code, 0);
    assert.deepEqual(
      server.requests.map((r) => [r.body, r.headers['content-type']]),
      [
        ['dash', 'text/plain; charset=utf-8'],
        ['', undefined],
      ],
    );
  });

  test(
    '-j sends valid JSON as given with Content-Type: application/json',
    { timeout },
    async (t) => {
      const server = await startRecorder();
      t.after(() => server.close());
      assert.equal(
        (await request(['-P', String(server.port), '-j', 't', 'ping', '{ "a": [1, 2] }'])).code,
        0,
      );
      assert.equal(
        (await request(['-P', String(server.port), '-j', 't', 'ping'], { input: '"s"\n' })).code,
        0,
      );
      assert.deepEqual(
        server.requests.map((r) => [r.body, r.headers['content-type']]),
        [
          ['{ "a": [1, 2] }', 'application/json'],
          ['"s"\n', 'application/json'],
        ],
      );
    },
  );

  for (const [what, args, input] of [
    ['an argument', ['{bad'], undefined],
    ['stdin', [], 'not json'],
    ['an empty body', [], ''],
  ] as const) {
    test(`-j refuses invalid JSON from ${what}: exit 2, nothing sent`, { timeout }, async (t) => {
      const server = await startRecorder();
      t.after(() => server.close());
      const result = await request(['-P', String(server.port), '-j', 't', 'ping', ...args], {
        ...(input !== undefined ? { input } : {}),
      });
      assert.equal(result.code, 2);
      assert.equal(result.stdout, '');
      let expected = '';
      try {
        JSON.parse(args[0] ?? input ?? '');
      } catch (error) {
        expected = (error as Error).message;
      }
      assert.equal(result.stderr, `Invalid JSON data, nothing sent: ${expected}\n`);
      assert.equal(server.requests.length, 0);
    });
  }

  for (const [status, body, type, message] of [
    [
      404,
      'Target is not connected',
      'text/plain; charset=utf-8',
      'Target is not connected (nobody subscribes to this token now: start a subscriber first)',
    ],
    [404, 'Unknown action requested', 'text/plain; charset=utf-8', 'Unknown action requested'],
    [
      400,
      'Data is not properly formatted: x\n',
      'text/plain; charset=utf-8',
      'Data is not properly formatted: x',
    ],
    [
      401,
      '',
      'text/plain',
      'Unauthorized (give the secret or a JWT with --bearer or EVENTSOURCE_BEARER)',
    ],
    [
      500,
      '<!DOCTYPE html>\n<html><body><h1>Internal  Error</h1>\n<p>try &lt;later&gt;</p></body></html>',
      'text/html; charset=utf-8',
      'Internal Error try <later>',
    ],
    [503, 'busy', 'text/plain', 'busy'],
  ] as const) {
    test(`HTTP ${status} "${message}": exit 1, one line on stderr`, { timeout }, async (t) => {
      const server = await startRecorder(answer(status, body, type));
      t.after(() => server.close());
      const result = await request(['-P', String(server.port), 't', 'ping', 'x']);
      assert.deepEqual(result, {
        code: 1,
        signal: null,
        stdout: '',
        stderr: `Unable to send request (${status}): ${message}\n`,
      });
    });
  }

  test('an unreachable server: exit 1 with the cause on one line', { timeout }, async () => {
    const port = await closedPort();
    const result = await request(['-P', String(port), 't', 'ping', 'x']);
    assert.deepEqual(result, {
      code: 1,
      signal: null,
      stdout: '',
      stderr: `Unable to send request: connect ECONNREFUSED 127.0.0.1:${port} (is eventsource-listener running? Start it first)\n`,
    });
  });

  test('-d adds debug output and the stack to a failure', { timeout }, async () => {
    const port = await closedPort();
    const result = await request(['-d', '-P', String(port), 't', 'ping', 'x']);
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      new RegExp(`eventsource:request POST http://127\\.0\\.0\\.1:${port}/ping/t`),
    );
    assert.match(
      result.stderr,
      new RegExp(
        `^Unable to send request: connect ECONNREFUSED 127\\.0\\.0\\.1:${port} \\(is eventsource-listener running\\? Start it first\\)$`,
        'm',
      ),
    );
    assert.match(result.stderr, /\n\s+at /);
  });

  test('--timeout without an answer: exit 1 "no response within"', { timeout }, async (t) => {
    const server = await startRecorder(() => ({ hang: true }));
    t.after(() => server.close());
    const result = await request(['-P', String(server.port), '--timeout', '300', 't', 'ping', 'x']);
    assert.deepEqual(result, {
      code: 1,
      signal: null,
      stdout: '',
      stderr: 'Unable to send request: no response within 300 ms\n',
    });
  });

  test(
    '-u and -p send HTTP Basic auth; EVENTSOURCE_PASSWORD supplies -p',
    { timeout },
    async (t) => {
      const server = await startRecorder();
      t.after(() => server.close());
      const port = String(server.port);
      assert.equal(
        (await request(['-P', port, '-u', 'ann', '-p', 'pw', 't', 'ping', 'x'])).code,
        0,
      );
      assert.equal(
        (
          await request(['-P', port, '-u', 'ann', 't', 'ping', 'x'], {
            env: { EVENTSOURCE_PASSWORD: 'envpw' },
          })
        ).code,
        0,
      );
      assert.equal(
        (
          await request(['-P', port, '-u', 'ann', '-p', 'flag', 't', 'ping', 'x'], {
            env: { EVENTSOURCE_PASSWORD: 'envpw' },
          })
        ).code,
        0,
      );
      assert.deepEqual(
        server.requests.map((r) => r.headers.authorization),
        ['ann:pw', 'ann:envpw', 'ann:flag'].map(
          (s) => `Basic ${Buffer.from(s).toString('base64')}`,
        ),
      );
    },
  );

  test(
    '--secret and EVENTSOURCE_SECRET send a Bearer token; --header adds headers',
    { timeout },
    async (t) => {
      const server = await startRecorder();
      t.after(() => server.close());
      const port = String(server.port);
      const args = ['--header', 'X-One: 1', '--header', 'X-Two:two words'];
      assert.equal(
        (await request(['-P', port, '--secret', 's1', ...args, 't', 'ping', 'x'])).code,
        0,
      );
      assert.equal(
        (await request(['-P', port, 't', 'ping', 'x'], { env: { EVENTSOURCE_SECRET: 's2' } })).code,
        0,
      );
      assert.equal(
        (
          await request(['-P', port, '--secret', 's3', 't', 'ping', 'x'], {
            env: { EVENTSOURCE_SECRET: 's2' },
          })
        ).code,
        0,
      );
      assert.deepEqual(
        server.requests.map((r) => [
          r.headers.authorization,
          r.headers['x-one'],
          r.headers['x-two'],
        ]),
        [
          ['Bearer s1', '1', 'two words'],
          ['Bearer s2', undefined, undefined],
          ['Bearer s3', undefined, undefined],
        ],
      );
    },
  );

  for (const [what, args, stderr] of [
    ['no arguments', [], "error: missing required argument 'token'\n"],
    ['no action', ['t'], "error: missing required argument 'action'\n"],
    [
      'a bad port',
      ['-P', '70000', 't', 'ping'],
      "error: option '-P, --port <port>' argument '70000' is invalid. expected a port number (0-65535), got \"70000\"\n",
    ],
    [
      'a bad timeout',
      ['--timeout', '0', 't', 'ping'],
      "error: option '--timeout <ms>' argument '0' is invalid. expected a positive integer, got \"0\"\n",
    ],
    ['an unknown flag', ['--nope', 't', 'ping'], "error: unknown option '--nope'\n"],
    [
      'a bad header',
      ['--header', 'nocolon', 't', 'ping'],
      'error: option \'--header <header>\' argument \'nocolon\' is invalid. expected "Name: value", got "nocolon"\n',
    ],
    [
      'too many arguments',
      ['t', 'ping', 'data', 'extra'],
      'error: too many arguments. Expected 3 arguments but got 4.\n',
    ],
    [
      '--batch with arguments',
      ['--batch', 't'],
      'error: --batch reads token, action and data from stdin; give none as arguments\n',
    ],
    [
      '-u with --secret',
      ['-u', 'a', '--secret', 's', 't', 'ping'],
      'error: use either -u/--user or --secret, not both\n',
    ],
    [
      'a bad --url',
      ['--url', 'ftp://x', 't', 'ping'],
      'error: --url must be an http or https URL, got "ftp://x"\n',
    ],
    [
      '-p without -u',
      ['-p', 'pw', 't', 'ping', 'x'],
      'error: -p/--password is the HTTP Basic password: give -u/--user with it\n',
    ],
    [
      'a missing --ca file',
      ['--ca', '/nonexistent/ca.pem', 't', 'ping'],
      "error: cannot read --ca file: ENOENT: no such file or directory, open '/nonexistent/ca.pem'\n",
    ],
  ] as const) {
    test(`usage error with ${what}: exit 2`, { timeout }, async () => {
      const result = await request([...args]);
      assert.deepEqual(result, { code: 2, signal: null, stdout: '', stderr });
    });
  }

  test('--help and --version print to stdout and exit 0', { timeout }, async () => {
    const help = await request(['--help']);
    assert.equal(help.code, 0);
    assert.equal(help.stderr, '');
    assert.match(
      help.stdout,
      /^Usage: eventsource-request \[options\] \[token\] \[action\] \[data\]\n/,
    );
    assert.match(help.stdout, /\(env:\s+EVENTSOURCE_SECRET\)/);
    assert.match(help.stdout, /Examples:\n/);
    assert.deepEqual(await request(['-v']), {
      code: 0,
      signal: null,
      stdout: `${version}\n`,
      stderr: '',
    });
    assert.deepEqual(await request(['--version']), {
      code: 0,
      signal: null,
      stdout: `${version}\n`,
      stderr: '',
    });
  });

  test('-V is accepted (certificates are validated anyway)', { timeout }, async (t) => {
    const server = await startRecorder();
    t.after(() => server.close());
    const result = await request(['-V', '-P', String(server.port), 't', 'ping', 'x']);
    assert.deepEqual([result.code, result.stderr], [0, DELIVERED]);
  });

  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    test(
      `${signal} while waiting for the server aborts and exits ${code}`,
      { timeout },
      async (t) => {
        const server = await startRecorder(() => ({ hang: true }));
        t.after(() => server.close());
        const child = spawnBin('eventsource-request', [
          '-P',
          String(server.port),
          't',
          'ping',
          'x',
        ]);
        t.after(() => child.kill('SIGKILL'));
        await server.waitForRequests(1);
        child.kill(signal);
        assert.deepEqual(await waitExit(child, 15000), {
          code,
          signal: null,
          stdout: '',
          stderr: '',
        });
      },
    );
  }

  test(
    'SIGTERM while waiting on an open stdin exits 143 without sending',
    { timeout },
    async (t) => {
      const server = await startRecorder();
      t.after(() => server.close());
      const child = spawnBin('eventsource-request', ['-d', '-P', String(server.port), 't', 'ping']);
      t.after(() => child.kill('SIGKILL'));
      child.stdin.write('partial');
      // The debug line shows the process is up, with its signal handlers, and blocked on stdin.
      await waitForOutput(child, /eventsource:request reading the data from stdin/);
      child.kill('SIGTERM');
      const result = await waitExit(child, 15000);
      assert.equal(result.code, 143);
      assert.equal(result.stdout, '');
      assert.equal(server.requests.length, 0);
    },
  );

  describe('HTTPS', { concurrency }, () => {
    test('an untrusted certificate is refused by default: exit 1', { timeout }, async (t) => {
      const server = await startRecorder(undefined, { tls: true });
      t.after(() => server.close());
      const result = await request(['-S', '-P', String(server.port), 't', 'ping', 'x']);
      assert.deepEqual(result, {
        code: 1,
        signal: null,
        stdout: '',
        stderr: 'Unable to send request: unable to verify the first certificate\n',
      });
      assert.equal(server.requests.length, 0);
    });

    for (const [what, args] of [
      ['--insecure', ['--insecure', '-S', '-P']],
      ['--ca', ['--ca', caFile, '-S', '-P']],
    ] as const) {
      test(`accepted with ${what}`, { timeout }, async (t) => {
        const server = await startRecorder(undefined, { tls: true });
        t.after(() => server.close());
        const result = await request([...args, String(server.port), 't', 'ping', 'secure']);
        assert.deepEqual(result, {
          code: 0,
          signal: null,
          stdout: '{"token":"t","action":"ping","id":null,"subscribers":1}\n',
          stderr: DELIVERED,
        });
        assert.equal(server.requests[0]?.body, 'secure');
      });
    }

    test('--url https://localhost with --ca', { timeout }, async (t) => {
      const server = await startRecorder(undefined, { tls: true });
      t.after(() => server.close());
      const result = await request([
        '--ca',
        caFile,
        '--url',
        `https://localhost:${server.port}/p`,
        't',
        'ping',
      ]);
      assert.deepEqual([result.code, result.stderr], [0, DELIVERED]);
      assert.equal(server.requests[0]?.url, '/p/ping/t');
    });
  });

  describe('--batch', { concurrency }, () => {
    test(
      'sends every line in order over one connection, replies on stdout, summary on stderr',
      { timeout },
      async (t) => {
        const server = await startRecorder();
        t.after(() => server.close());
        const input = [
          '{"token":"a","action":"ping","data":"text"}',
          '',
          '   ',
          '{"token":"b c","action":"ping","data":{"n":1}}',
          '{"token":"a","action":"close"}',
          '{"token":"a","action":"ping","data":[1,"x"],"extra":true}\r',
        ].join('\n');
        const result = await request(['-P', String(server.port), '--batch'], { input });
        assert.equal(result.code, 0);
        assert.match(result.stderr, SUMMARY(4, 0));
        assert.equal(
          result.stdout,
          [
            '{"token":"a","action":"ping","id":null,"subscribers":1}',
            '{"token":"b c","action":"ping","id":null,"subscribers":1}',
            '{"token":"a","action":"close","id":null,"subscribers":1}',
            '{"token":"a","action":"ping","id":null,"subscribers":1}',
            '',
          ].join('\n'),
        );
        assert.deepEqual(
          server.requests.map((r) => [r.url, r.body, r.headers['content-type']]),
          [
            ['/ping/a', 'text', 'text/plain; charset=utf-8'],
            ['/ping/b%20c', '{"n":1}', 'application/json'],
            ['/close/a', '', undefined],
            ['/ping/a', '[1,"x"]', 'application/json'],
          ],
        );
        assert.equal(new Set(server.requests.map((r) => r.remotePort)).size, 1);
      },
    );

    test('empty input sends nothing and exits 0', { timeout }, async (t) => {
      const server = await startRecorder();
      t.after(() => server.close());
      const result = await request(['-P', String(server.port), '--batch']);
      assert.equal(result.code, 0);
      assert.equal(result.stdout, '');
      assert.match(result.stderr, SUMMARY(0, 0));
    });

    test('stops at the first HTTP failure with its line number: exit 1', { timeout }, async (t) => {
      const server = await startRecorder((r) =>
        r.body === 'bad'
          ? {
              status: 404,
              headers: { 'content-type': 'text/plain' },
              body: 'Target is not connected',
            }
          : { status: 200, body: 'ok' },
      );
      t.after(() => server.close());
      const lines = ['1', '2', '', 'bad', '4', '5'].map((d) =>
        d === '' ? '' : JSON.stringify({ token: 't', action: 'ping', data: d }),
      );
      const result = await request(['-P', String(server.port), '--batch'], {
        input: lines.join('\n'),
      });
      assert.equal(result.code, 1);
      assert.equal(result.stdout, 'ok\nok\n');
      const [first, summary] = result.stderr.split(/(?<=\n)/);
      assert.equal(
        first,
        'line 4: Unable to send request (404): Target is not connected (nobody subscribes to this token now: start a subscriber first)\n',
      );
      assert.match(summary ?? '', SUMMARY(2, 1));
      assert.deepEqual(
        server.requests.map((r) => r.body),
        ['1', '2', 'bad'],
      );
    });

    test('an unreachable server fails at line 1: exit 1', { timeout }, async () => {
      const port = await closedPort();
      const result = await request(['-P', String(port), '--batch'], {
        input: '{"token":"t","action":"ping"}\n',
      });
      assert.equal(result.code, 1);
      const [first, summary] = result.stderr.split(/(?<=\n)/);
      assert.equal(
        first,
        `line 1: Unable to send request: connect ECONNREFUSED 127.0.0.1:${port} (is eventsource-listener running? Start it first)\n`,
      );
      assert.match(summary ?? '', SUMMARY(0, 1));
    });

    for (const [what, line, message] of [
      ['invalid JSON', '{"token":', 'not valid JSON: Unexpected end of JSON input'],
      ['an array', '["t","ping"]', 'expected an object {"token","action","data"}'],
      ['a missing token', '{"action":"ping"}', '"token" must be a non-empty string'],
      ['an empty action', '{"token":"t","action":""}', '"action" must be a non-empty string'],
    ] as const) {
      test(`a malformed line (${what}) stops with its number: exit 2`, { timeout }, async (t) => {
        const server = await startRecorder();
        t.after(() => server.close());
        const input = `{"token":"t","action":"ping","data":"1"}\n\n${line}\n{"token":"t","action":"ping","data":"2"}\n`;
        const result = await request(['-P', String(server.port), '--batch'], { input });
        assert.equal(result.code, 2);
        const [first, summary] = result.stderr.split(/(?<=\n)/);
        assert.equal(first, `line 3: ${message}\n`);
        assert.match(summary ?? '', SUMMARY(1, 0));
        assert.deepEqual(
          server.requests.map((r) => r.body),
          ['1'],
        );
      });
    }

    test(
      '-j checks string data on each line: invalid JSON is a malformed line, exit 2',
      { timeout },
      async (t) => {
        const server = await startRecorder();
        t.after(() => server.close());
        const input =
          '{"token":"t","action":"ping","data":"[1]"}\n{"token":"t","action":"ping","data":"nope"}\n';
        const result = await request(['-P', String(server.port), '-j', '--batch'], { input });
        assert.equal(result.code, 2);
        const [first, summary] = result.stderr.split(/(?<=\n)/);
        let expected = '';
        try {
          JSON.parse('nope');
        } catch (error) {
          expected = (error as Error).message;
        }
        assert.equal(first, `line 2: \`data\` is not valid JSON: ${expected}\n`);
        assert.match(summary ?? '', SUMMARY(1, 0));
        assert.deepEqual(
          server.requests.map((r) => [r.body, r.headers['content-type']]),
          [['[1]', 'application/json']],
        );
      },
    );

    test('SIGINT during a batch stops it: exit 130 with the summary', { timeout }, async (t) => {
      const server = await startRecorder((r) =>
        r.body === 'hang' ? { hang: true } : { status: 200, body: 'ok' },
      );
      t.after(() => server.close());
      const child = spawnBin('eventsource-request', ['-P', String(server.port), '--batch']);
      t.after(() => child.kill('SIGKILL'));
      child.stdin.write(
        '{"token":"t","action":"ping","data":"1"}\n{"token":"t","action":"ping","data":"hang"}\n',
      );
      await server.waitForRequests(2);
      child.kill('SIGINT');
      const result = await waitExit(child, 15000);
      assert.equal(result.code, 130);
      assert.equal(result.stdout, 'ok\n');
      assert.match(result.stderr, SUMMARY(1, 0));
    });
  });
});

describe('eventsource-request against eventsource-listener', () => {
  async function startListener(
    t: { after: (fn: () => unknown) => void },
    args: string[] = [],
    env = {},
  ) {
    const listener = await startListenerProcess(args, env);
    t.after(() => listener.stop());
    return listener;
  }

  test(
    'ping to a connected subscriber: exit 0, the reply on stdout, the event delivered',
    { timeout },
    async (t) => {
      const listener = await startListener(t);
      const stream = await openStream(`${listener.url}/poll/dev-1`);
      t.after(() => stream.close());
      const result = await request(['-P', String(listener.port), 'dev-1', 'ping', 'hello']);
      assert.equal(result.code, 0);
      assert.equal(result.stderr, DELIVERED);
      assert.ok(result.stdout.endsWith('\n'));
      const reply = JSON.parse(result.stdout) as Record<string, unknown>;
      assert.deepEqual(
        { token: reply.token, action: reply.action, subscribers: reply.subscribers },
        { token: 'dev-1', action: 'ping', subscribers: 1 },
      );
      const [event] = await stream.waitFor(1);
      assert.equal(event?.event, 'ping');
      assert.equal(event?.data, 'hello');
    },
  );

  test(
    'no subscriber: exit 1 "Unable to send request (404): Target is not connected"',
    { timeout },
    async (t) => {
      const listener = await startListener(t);
      assert.deepEqual(await request(['-P', String(listener.port), 'nobody', 'ping', 'x']), {
        code: 1,
        signal: null,
        stdout: '',
        stderr:
          'Unable to send request (404): Target is not connected (nobody subscribes to this token now: start a subscriber first)\n',
      });
    },
  );

  test(
    'unknown action: exit 1 "Unable to send request (404): Unknown action requested"',
    { timeout },
    async (t) => {
      const listener = await startListener(t);
      const stream = await openStream(`${listener.url}/poll/dev-1`);
      t.after(() => stream.close());
      assert.deepEqual(
        await request(['-P', String(listener.port), 'dev-1', 'no-such-action!', 'x']),
        {
          code: 1,
          signal: null,
          stdout: '',
          stderr:
            'Unable to send request (404): Unknown action requested (this listener accepts: ping, close)\n',
        },
      );
    },
  );

  test(
    '-j with bad JSON sends nothing to the subscriber; good JSON arrives',
    { timeout },
    async (t) => {
      const listener = await startListener(t);
      const stream = await openStream(`${listener.url}/poll/dev-1`);
      t.after(() => stream.close());
      const port = String(listener.port);
      assert.equal((await request(['-P', port, '-j', 'dev-1', 'ping', '{nope'])).code, 2);
      assert.equal((await request(['-P', port, '-j', 'dev-1', 'ping', '{"ok":true}'])).code, 0);
      const events = await stream.waitFor(1);
      assert.equal(events.length, 1);
      assert.equal(events[0]?.data, '{"ok":true}');
    },
  );

  test(
    '--publish-secret: 401 without the secret, 0 with --secret or EVENTSOURCE_SECRET',
    { timeout },
    async (t) => {
      const listener = await startListener(t, ['--publish-secret', 'S3cret']);
      const stream = await openStream(`${listener.url}/poll/dev-1`);
      t.after(() => stream.close());
      const port = String(listener.port);
      const refused = await request(['-P', port, 'dev-1', 'ping', 'x']);
      assert.equal(refused.code, 1);
      assert.equal(refused.stdout, '');
      assert.equal(
        refused.stderr,
        'Unable to send request (401): Unauthorized: a valid Bearer secret is required (give the secret or a JWT with --bearer or EVENTSOURCE_BEARER)\n',
      );
      const wrong = await request(['-P', port, '--secret', 'nope', 'dev-1', 'ping', 'x']);
      assert.equal(wrong.code, 1);
      assert.equal(wrong.stderr, refused.stderr);
      assert.equal(
        (await request(['-P', port, '--secret', 'S3cret', 'dev-1', 'ping', 'a'])).code,
        0,
      );
      assert.equal(
        (
          await request(['-P', port, 'dev-1', 'ping', 'b'], {
            env: { EVENTSOURCE_SECRET: 'S3cret' },
          })
        ).code,
        0,
      );
      const events = await stream.waitFor(2);
      assert.deepEqual(
        events.map((e) => e.data),
        ['a', 'b'],
      );
    },
  );

  test(
    '--batch of 10 000 lines: all delivered in order, ids increasing',
    { timeout: 120000 },
    async (t) => {
      const listener = await startListener(t, ['-i']);
      const stream = await openStream(`${listener.url}/poll/bulk`);
      t.after(() => stream.close());
      const count = 10000;
      const input = Array.from({ length: count }, (_, i) =>
        JSON.stringify({ token: 'bulk', action: 'ping', data: `event ${i}` }),
      ).join('\n');
      const result = await request(['-P', String(listener.port), '--batch'], {
        input,
        timeoutMs: 110000,
      });
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stderr, SUMMARY(count, 0));
      assert.equal(result.stdout.split('\n').length, count + 1);
      const events = await stream.waitFor(count, 60000);
      assert.equal(events.length, count);
      assert.deepEqual(
        events.map((e) => e.data),
        Array.from({ length: count }, (_, i) => `event ${i}`),
      );
      const ids = events.map((e) => BigInt(e.id ?? '-1'));
      for (let i = 1; i < ids.length; i++)
        assert.ok(ids[i]! > ids[i - 1]!, `id ${i} is not increasing`);
    },
  );
});
