import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StringIdEvent } from '../../src/events.js';
import { normalizePrefix, parseTarget, type Route } from '../../src/listener/routes.js';
import { httpRequest, openStream } from '../helpers/net.js';
import { post, startListener } from '../helpers/listener-helpers.js';

const TEXT = 'text/plain; charset=utf-8';

const targets: [string, string, Route, string | undefined][] = [
  ['/poll/abc', '', { kind: 'event', action: 'poll', token: 'abc' }, undefined],
  ['/ping/42:42:42', '', { kind: 'event', action: 'ping', token: '42:42:42' }, undefined],
  ['/ping/42%3A42%3a42', '', { kind: 'event', action: 'ping', token: '42:42:42' }, undefined],
  ['/ping/a%2Fb', '', { kind: 'event', action: 'ping', token: 'a/b' }, undefined],
  ['/ping/a+b', '', { kind: 'event', action: 'ping', token: 'a+b' }, undefined],
  ['/ping/%E2%82%AC', '', { kind: 'event', action: 'ping', token: '€' }, undefined],
  ['/ping/%zz', '', { kind: 'bad-token' }, undefined],
  ['/poll/t?lastEventId=17', '', { kind: 'event', action: 'poll', token: 't' }, '17'],
  ['/poll/t?last_event_id=18', '', { kind: 'event', action: 'poll', token: 't' }, '18'],
  ['/poll/t?x=1&lastEventId=a%20b', '', { kind: 'event', action: 'poll', token: 't' }, 'a b'],
  ['/poll/t?other=1', '', { kind: 'event', action: 'poll', token: 't' }, undefined],
  ['/', '', { kind: 'root' }, undefined],
  ['/?x', '', { kind: 'root' }, undefined],
  ['/stats', '', { kind: 'stats' }, undefined],
  ['/poll', '', { kind: 'none' }, undefined],
  ['/poll/', '', { kind: 'none' }, undefined],
  ['//t', '', { kind: 'none' }, undefined],
  ['/a/b/c', '', { kind: 'none' }, undefined],
  ['/poll/t/', '', { kind: 'none' }, undefined],
  ['poll/t', '', { kind: 'none' }, undefined],
  ['/p/poll/t', '/p', { kind: 'event', action: 'poll', token: 't' }, undefined],
  ['/p', '/p', { kind: 'root' }, undefined],
  ['/p/', '/p', { kind: 'root' }, undefined],
  ['/p/stats', '/p', { kind: 'stats' }, undefined],
  ['/poll/t', '/p', { kind: 'none' }, undefined],
  ['/px/poll/t', '/p', { kind: 'none' }, undefined],
  ['/', '/p', { kind: 'none' }, undefined],
  ['/stats', '/p', { kind: 'none' }, undefined],
  ['/a/b/poll/t', '/a/b', { kind: 'event', action: 'poll', token: 't' }, undefined],
];

for (const [url, prefix, route, lastEventId] of targets) {
  test(`parseTarget(${JSON.stringify(url)}, ${JSON.stringify(prefix)})`, () => {
    assert.deepEqual(parseTarget(url, prefix), { route, lastEventId });
  });
}

for (const [given, expected] of [
  [undefined, ''],
  ['', ''],
  ['/', ''],
  ['p', '/p'],
  ['/p', '/p'],
  ['/p/', '/p'],
  ['a/b/', '/a/b'],
] as const) {
  test(`normalizePrefix(${JSON.stringify(given)}) is ${JSON.stringify(expected)}`, () => {
    assert.equal(normalizePrefix(given), expected);
  });
}

test('GET / answers a short text help', { timeout: 20000 }, async (t) => {
  const running = await startListener({ eventClass: StringIdEvent });
  t.after(() => running.close());
  const result = await httpRequest(`${running.url}/`);
  assert.equal(result.status, 200);
  assert.equal(result.headers['content-type'], TEXT);
  assert.match(result.body, /GET \/poll\/<token>/);
  assert.match(result.body, /POST \/<action>\/<token>/);
  assert.match(result.body, /ping, close, retry/);
});

test('GET /stats answers JSON counters', { timeout: 20000 }, async (t) => {
  const running = await startListener({ eventClass: StringIdEvent });
  t.after(() => running.close());
  const stream = await openStream(`${running.url}/poll/a`);
  t.after(() => stream.close());
  for (let i = 0; i < 3; i++) await post(`${running.url}/ping/a`, 'x');
  await stream.waitFor(3);
  const result = await httpRequest(`${running.url}/stats`);
  assert.equal(result.status, 200);
  assert.match(String(result.headers['content-type']), /^application\/json/);
  const stats = JSON.parse(result.body) as Record<string, unknown>;
  for (const key of [
    'streams',
    'tokens',
    'eventsAccepted',
    'eventsDelivered',
    'eventsDropped',
    'subscribersCutOff',
    'bytesBuffered',
    'uptimeSeconds',
  ]) {
    assert.equal(typeof stats[key], 'number', key);
  }
  assert.equal(stats.streams, 1);
  assert.equal(stats.tokens, 1);
  assert.equal(stats.eventsAccepted, 3);
  assert.equal(stats.eventsDelivered, 3);
  assert.equal(stats.eventsDropped, 0);
  assert.equal(stats.subscribersCutOff, 0);
  assert.equal(stats.bytesBuffered, 0);
});

test(
  '--prefix mounts every route under /<prefix>/ and nothing outside it',
  {
    timeout: 20000,
  },
  async (t) => {
    const running = await startListener({ prefix: 'api/v1/' });
    t.after(() => running.close());
    const base = `${running.url}/api/v1`;
    const stream = await openStream(`${base}/poll/42:42`);
    t.after(() => stream.close());
    assert.equal(stream.response.statusCode, 200);
    assert.equal((await post(`${base}/ping/42%3A42`, 'hi')).status, 200);
    await stream.waitFor(1);
    assert.equal((await httpRequest(`${base}/`)).status, 200);
    assert.equal((await httpRequest(`${base}`)).status, 200);
    assert.equal((await httpRequest(`${base}/stats`)).status, 200);
    const redirect = await httpRequest(`${base}/ping/x`);
    assert.equal(redirect.status, 301);
    assert.equal(redirect.headers.location, '/api/v1/');
    for (const [method, path] of [
      ['GET', '/poll/42:42'],
      ['POST', '/ping/42:42'],
      ['GET', '/'],
      ['GET', '/stats'],
      ['GET', '/api/poll/x'],
      ['GET', '/api/v1x/poll/x'],
    ] as const) {
      const result = await httpRequest(
        `${running.url}${path}`,
        method === 'POST' ? { method, body: 'x' } : {},
      );
      assert.equal(result.status, 404, `${method} ${path}`);
      assert.equal(result.body, 'Not found');
      assert.equal(result.headers['content-type'], TEXT);
    }
  },
);

test(
  'methods other than GET, POST and OPTIONS answer 405 with Allow',
  {
    timeout: 20000,
  },
  async (t) => {
    const running = await startListener();
    t.after(() => running.close());
    for (const [method, path, allow] of [
      ['PUT', '/ping/t', 'GET, POST, OPTIONS'],
      ['DELETE', '/poll/t', 'GET, POST, OPTIONS'],
      ['HEAD', '/poll/t', 'GET, POST, OPTIONS'],
      ['POST', '/stats', 'GET'],
      ['PUT', '/', 'GET'],
    ] as const) {
      const result = await httpRequest(`${running.url}${path}`, { method });
      assert.equal(result.status, 405, `${method} ${path}`);
      assert.equal(result.headers.allow, allow);
    }
  },
);
