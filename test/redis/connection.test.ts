/**
 * The `--redis` URL forms (issue 20) and the checks made before any connection: no Redis needed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRedisUrl } from '../../src/listener/redis/connection.js';
import { createRedisBroker } from '../../src/listener/redis/broker.js';
import { runBin } from '../helpers/process.js';

const forms: [string, ReturnType<typeof parseRedisUrl>][] = [
  [
    'redis://127.0.0.1:6379/0',
    { mode: 'standalone', url: 'redis://127.0.0.1:6379/0', location: {} },
  ],
  [
    'rediss://user:pw@redis.example:6380',
    { mode: 'standalone', url: 'rediss://user:pw@redis.example:6380', location: {} },
  ],
  [
    'redis+sentinel://10.0.0.1:26379,10.0.0.2:26380,10.0.0.3/mymaster',
    {
      mode: 'sentinel',
      url: undefined,
      location: {
        sentinels: [
          { host: '10.0.0.1', port: 26379 },
          { host: '10.0.0.2', port: 26380 },
          { host: '10.0.0.3', port: 26379 },
        ],
        name: 'mymaster',
      },
    },
  ],
  [
    'redis+sentinel://app:p%40ss@s1,[::1]:5000/my%20master/3',
    {
      mode: 'sentinel',
      url: undefined,
      location: {
        sentinels: [
          { host: 's1', port: 26379 },
          { host: '::1', port: 5000 },
        ],
        name: 'my master',
        db: 3,
        username: 'app',
        password: 'p@ss',
      },
    },
  ],
  [
    'redis+sentinel://:secret@s1:1/m/',
    {
      mode: 'sentinel',
      url: undefined,
      location: { sentinels: [{ host: 's1', port: 1 }], name: 'm', password: 'secret' },
    },
  ],
];

for (const [url, expected] of forms) {
  test(`parseRedisUrl reads ${url}`, () => {
    assert.deepEqual(parseRedisUrl(url), expected);
  });
}

const refused = [
  'redis+sentinel://s1:26379',
  'redis+sentinel://s1:26379/',
  'redis+sentinel:///mymaster',
  'redis+sentinel://s1:99999/mymaster',
  'redis+sentinel://s1,,s2/mymaster',
  'redis+sentinel://s1/mymaster/db0',
  'http://127.0.0.1:6379',
  '127.0.0.1:6379',
];
for (const url of refused) {
  test(`parseRedisUrl refuses ${url} with a TypeError naming the URL forms`, () => {
    assert.throws(() => parseRedisUrl(url), {
      name: 'TypeError',
      message:
        /redis\+sentinel:\/\/host:port\[,host:port…\]\/<master-name>\[\/db\]|bad Sentinel address/,
    });
  });
}

test('a refused URL does not show its password', () => {
  assert.throws(
    () => parseRedisUrl('redis+sentinel://u:hunter2@s1'),
    (error: Error) => {
      assert.doesNotMatch(error.message, /hunter2/);
      return true;
    },
  );
});

test('waitReplicas and waitTimeoutMs are checked before any connection is made', async () => {
  await assert.rejects(createRedisBroker('redis://127.0.0.1:1', { waitReplicas: -1 }), {
    name: 'RangeError',
    message: '`waitReplicas` must be a non-negative integer (replicas), got -1',
  });
  await assert.rejects(createRedisBroker('redis://127.0.0.1:1', { waitTimeoutMs: 0 }), {
    name: 'RangeError',
    message: '`waitTimeoutMs` must be an integer >= 1 (milliseconds), got 0',
  });
});

test(
  'the CLI: a bad --redis URL and a bad --redis-wait-* value are usage errors (exit 2)',
  {
    timeout: 20000,
  },
  async () => {
    const badUrl = await runBin('eventsource-listener', [
      '-P',
      '0',
      '--redis',
      'redis+sentinel://s1',
    ]);
    assert.equal(badUrl.code, 2);
    assert.match(badUrl.stderr, /^eventsource-listener: --redis: `url` must be /);
    assert.equal(badUrl.stderr.trim().split('\n').length, 1);
    const badCount = await runBin('eventsource-listener', [
      '-P',
      '0',
      '--redis-wait-replicas',
      '-1',
    ]);
    assert.equal(badCount.code, 2);
    const badTimeout = await runBin('eventsource-listener', [
      '-P',
      '0',
      '--redis-wait-timeout',
      '0',
    ]);
    assert.equal(badTimeout.code, 2);
    const help = await runBin('eventsource-listener', ['--help']);
    // Commander wraps the lines: compare with the white space folded.
    const text = help.stdout.replace(/\s+/g, ' ');
    assert.match(
      text,
      /--redis-wait-replicas <n> .*\(default: 0, env: EVENTSOURCE_REDIS_WAIT_REPLICAS\)/,
    );
    assert.match(
      text,
      /--redis-wait-timeout <ms> .*\(default: 2000, env: EVENTSOURCE_REDIS_WAIT_TIMEOUT\)/,
    );
  },
);
