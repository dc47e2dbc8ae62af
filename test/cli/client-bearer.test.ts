import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runBin } from '../helpers/process.js';
import { startScriptedServer, stream } from '../helpers/sse-server.js';

const timeout = 20000;

test(
  '--bearer sends "Authorization: Bearer <token>" on the stream request',
  { timeout },
  async (t) => {
    const server = await startScriptedServer([stream(['data: a\n\n'])]);
    t.after(() => server.close());
    const result = await runBin('eventsource-client', [
      '--url',
      `${server.url}/poll/t`,
      '--bearer',
      'abc.def',
      '--count',
      '1',
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'message: a\n');
    assert.equal(server.requests[0]?.headers.authorization, 'Bearer abc.def');
  },
);

test('EVENTSOURCE_BEARER works as --bearer, and the flag beats it', { timeout }, async (t) => {
  const server = await startScriptedServer([stream(['data: a\n\n'])]);
  t.after(() => server.close());
  const url = `${server.url}/poll/t`;
  const env = { EVENTSOURCE_BEARER: 'from-env' };
  const fromEnv = await runBin('eventsource-client', ['--url', url, '--count', '1'], { env });
  assert.equal(fromEnv.code, 0, fromEnv.stderr);
  const fromFlag = await runBin(
    'eventsource-client',
    ['--url', url, '--count', '1', '--bearer', 'from-flag'],
    { env },
  );
  assert.equal(fromFlag.code, 0, fromFlag.stderr);
  assert.deepEqual(
    server.requests.map((r) => r.headers.authorization),
    ['Bearer from-env', 'Bearer from-flag'],
  );
});

test('--bearer with -u is a usage error (exit 2)', async () => {
  const result = await runBin('eventsource-client', ['-u', 'ann', '--bearer', 'x', 'tok']);
  assert.equal(result.code, 2);
  assert.equal(result.stderr, 'error: use either -u/--user or --bearer, not both\n');
});
