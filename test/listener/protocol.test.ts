import { test } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import {
  JSONEvent,
  JSONIdEvent,
  StringEvent,
  StringIdEvent,
  type EventClass,
} from '../../src/events.js';
import { createListener } from '../../src/listener/listener.js';
import { createParser, type ParsedEvent } from '../../src/wire/parser.js';
import { httpRequest, openStream } from '../helpers/net.js';
import {
  post,
  rawRequest,
  replyId,
  sleep,
  startListener,
  waitUntil,
} from '../helpers/listener-helpers.js';

const TEXT = 'text/plain; charset=utf-8';
const MiB = 1024 * 1024;

function fixture(name: string): Buffer {
  return readFileSync(new URL(`../../../test/fixtures/${name}`, import.meta.url));
}

test(
  'GET /poll/<token> answers 200 with the event-stream headers at once, never compressed',
  {
    timeout: 20000,
  },
  async (t) => {
    const running = await startListener();
    t.after(() => running.close());
    // openStream resolves on the response headers: nothing was published, so they went out at once.
    const stream = await openStream(`${running.url}/poll/t1`, { 'accept-encoding': 'gzip, br' });
    t.after(() => stream.close());
    const { response } = stream;
    assert.equal(response.statusCode, 200);
    assert.equal(response.headers['content-type'], 'text/event-stream');
    assert.equal(response.headers['cache-control'], 'no-cache, no-transform');
    assert.equal(response.headers['x-accel-buffering'], 'no');
    assert.equal(response.headers['content-encoding'], undefined);
    assert.equal(response.headers['content-length'], undefined);
  },
);

// The status table of the issue: each row sets up a listener and sends one request.
const statusTable: {
  name: string;
  options?: Parameters<typeof createListener>[0];
  subscribe?: string;
  method?: string;
  path: string;
  body?: string;
  headers?: Record<string, string>;
  status: number;
  text: string | RegExp;
  header?: [string, string | RegExp];
}[] = [
  {
    name: 'POST to an unknown action answers 404 "Unknown action requested", naming the actions',
    subscribe: 't',
    path: '/nope/t',
    body: 'x',
    status: 404,
    text: 'Unknown action requested (this listener accepts: ping, close)',
  },
  {
    name: 'POST retry under a class without ids answers 404 "Unknown action requested"',
    subscribe: 't',
    path: '/retry/t',
    body: '100',
    status: 404,
    text: 'Unknown action requested (this listener accepts: ping, close)',
  },
  {
    name: 'POST to a token never subscribed answers 404 "Target is not connected"',
    path: '/ping/never',
    body: 'x',
    status: 404,
    text: 'Target is not connected',
  },
  {
    name: 'POST close to a token never subscribed answers 404 "Target is not connected"',
    path: '/close/never',
    status: 404,
    text: 'Target is not connected',
  },
  {
    name: 'a second GET on a token answers 423 "Target is already connected", naming --multi and --takeover',
    subscribe: 't',
    method: 'GET',
    path: '/poll/t',
    status: 423,
    text: "Target is already connected (--multi lets several subscribers share a token, --takeover lets the newest replace it; mode 'multi' or 'takeover' in the library)",
  },
  {
    name: 'invalid JSON under JSONEvent answers 400 "Data is not properly formatted: ..."',
    options: { eventClass: JSONEvent },
    subscribe: 't',
    path: '/ping/t',
    body: '{"a":',
    status: 400,
    text: /^Data is not properly formatted: .+/,
  },
  {
    name: 'an empty body under JSONIdEvent ping answers 400',
    options: { eventClass: JSONIdEvent },
    subscribe: 't',
    path: '/ping/t',
    body: '',
    status: 400,
    text: /^Data is not properly formatted: /,
  },
  ...['-1', '1.5', 'abc', '', '1e3', '99999999999999999999'].map((body) => ({
    name: `retry ${JSON.stringify(body)} answers 400 "Data is not properly formatted: ..."`,
    options: { eventClass: StringIdEvent },
    subscribe: 't',
    path: '/retry/t',
    body,
    status: 400,
    text: /^Data is not properly formatted: retry must be a non-negative integer/,
  })),
  {
    name: 'a body over --max-body answers 413 "Request body is larger than N bytes"',
    options: { maxBody: 10 },
    subscribe: 't',
    path: '/ping/t',
    body: '12345678901',
    status: 413,
    text: 'Request body is larger than 10 bytes',
  },
  {
    name: 'POST without the bearer secret answers 401 with WWW-Authenticate: Bearer',
    options: { publishSecret: 's3cret' },
    subscribe: 't',
    path: '/ping/t',
    body: 'x',
    status: 401,
    text: /^Unauthorized/,
    header: ['www-authenticate', 'Bearer realm="eventsource"'],
  },
  {
    name: 'POST with a wrong bearer secret answers 401',
    options: { publishSecret: 's3cret' },
    subscribe: 't',
    path: '/ping/t',
    body: 'x',
    headers: { authorization: 'Bearer s3cre' },
    status: 401,
    text: /^Unauthorized/,
    header: ['www-authenticate', 'Bearer realm="eventsource"'],
  },
  {
    name: 'GET past --max-connections answers 503 "Too many connections" with Retry-After',
    options: { maxConnections: 1 },
    subscribe: 't',
    method: 'GET',
    path: '/poll/other',
    status: 503,
    text: 'Too many connections',
    header: ['retry-after', /^\d+$/],
  },
  {
    name: 'an unknown path answers 404 "Not found"',
    method: 'GET',
    path: '/a/b/c',
    status: 404,
    text: 'Not found',
  },
  {
    name: 'GET with another action answers 301 to /',
    method: 'GET',
    path: '/ping/t',
    status: 301,
    text: /.*/,
    header: ['location', '/'],
  },
  ...['PUT', 'DELETE', 'PATCH'].map((method) => ({
    name: `${method} answers 405`,
    method,
    path: '/ping/t',
    body: 'x',
    status: 405,
    text: /.+/,
    header: ['allow', /GET, POST/] as [string, RegExp],
  })),
  {
    name: 'POST / answers 405',
    path: '/',
    body: 'x',
    status: 405,
    text: /.+/,
  },
];

for (const row of statusTable) {
  test(row.name, { timeout: 20000 }, async (t) => {
    const running = await startListener(row.options);
    t.after(() => running.close());
    if (row.subscribe !== undefined) {
      const stream = await openStream(`${running.url}/poll/${row.subscribe}`);
      t.after(() => stream.close());
      assert.equal(stream.response.statusCode, 200);
    }
    const result = await httpRequest(`${running.url}${row.path}`, {
      method: row.method ?? 'POST',
      ...(row.body === undefined ? {} : { body: row.body }),
      headers: row.headers ?? {},
    });
    assert.equal(result.status, row.status);
    assert.equal(result.headers['content-type'], TEXT);
    if (typeof row.text === 'string') assert.equal(result.body, row.text);
    else assert.match(result.body, row.text);
    if (row.header !== undefined) {
      const [name, expected] = row.header;
      const value = String(result.headers[name]);
      if (typeof expected === 'string') assert.equal(value, expected);
      else assert.match(value, expected);
    }
    assert.equal(running.listener.stats().eventsAccepted, 0, 'nothing was accepted');
  });
}

test(
  '2xx replies are JSON {"token","action","id","subscribers"}: 200 live, id null without ids',
  {
    timeout: 20000,
  },
  async (t) => {
    const running = await startListener();
    t.after(() => running.close());
    const stream = await openStream(`${running.url}/poll/t`);
    t.after(() => stream.close());
    const result = await post(`${running.url}/ping/t`, 'hello');
    assert.equal(result.status, 200);
    assert.match(String(result.headers['content-type']), /^application\/json/);
    assert.deepEqual(JSON.parse(result.body), {
      token: 't',
      action: 'ping',
      id: null,
      subscribers: 1,
    });
    assert.deepEqual(Object.keys(JSON.parse(result.body) as object), [
      'token',
      'action',
      'id',
      'subscribers',
    ]);
    await stream.waitFor(1);
    assert.deepEqual(stream.events, [{ event: 'ping', data: 'hello', id: '' }]);
    assert.doesNotMatch(stream.raw, /^id:/m, 'classes without ids write no id: line');
  },
);

test(
  'POST close ends the stream cleanly and answers 200; close again answers 404',
  {
    timeout: 20000,
  },
  async (t) => {
    const running = await startListener({ eventClass: JSONEvent });
    t.after(() => running.close());
    const stream = await openStream(`${running.url}/poll/t`);
    t.after(() => stream.close());
    // An empty body is fine for close, even under the JSON classes.
    const result = await post(`${running.url}/close/t`, '');
    assert.equal(result.status, 200);
    assert.deepEqual(JSON.parse(result.body), {
      token: 't',
      action: 'close',
      id: null,
      subscribers: 1,
    });
    await stream.ended;
    assert.equal(stream.response.complete, true, 'the stream ended with its last chunk');
    assert.deepEqual(stream.events, []);
    const again = await post(`${running.url}/close/t`, '');
    assert.equal(again.status, 404);
    assert.equal(again.body, 'Target is not connected');
  },
);

const dataCases: { name: string; body: string; data: string; wire: string }[] = [
  { name: 'one line', body: 'hello', data: 'hello', wire: 'data: hello\n' },
  {
    name: 'LF, CRLF and CR lines',
    body: 'a\nb\r\nc\rd',
    data: 'a\nb\nc\nd',
    wire: 'data: a\ndata: b\ndata: c\ndata: d\n',
  },
  { name: 'CR-only lines', body: 'x\ry\r', data: 'x\ny\n', wire: 'data: x\ndata: y\ndata: \n' },
  { name: 'an empty body', body: '', data: '', wire: 'data: \n' },
  { name: 'a trailing newline', body: 'a\n', data: 'a\n', wire: 'data: a\ndata: \n' },
  {
    name: 'an attempt to inject fields',
    body: 'x\n\nid: 666\nevent: evil\nretry: 1\n\ndata: y',
    data: 'x\n\nid: 666\nevent: evil\nretry: 1\n\ndata: y',
    wire: 'data: x\ndata: \ndata: id: 666\ndata: event: evil\ndata: retry: 1\ndata: \ndata: data: y\n',
  },
  {
    name: 'UTF-8',
    body: 'héllo → 世界 🎉',
    data: 'héllo → 世界 🎉',
    wire: 'data: héllo → 世界 🎉\n',
  },
];

for (const item of dataCases) {
  test(
    `StringEvent sends ${item.name} as one data: line per line`,
    { timeout: 20000 },
    async (t) => {
      const running = await startListener();
      t.after(() => running.close());
      const stream = await openStream(`${running.url}/poll/t`);
      t.after(() => stream.close());
      assert.equal((await post(`${running.url}/ping/t`, item.body)).status, 200);
      await stream.waitFor(1);
      assert.equal(stream.raw, `event: ping\n${item.wire}\n`);
      assert.deepEqual(stream.events, [{ event: 'ping', data: item.data, id: '' }]);
    },
  );
}

test(
  'StringIdEvent ids are increasing integers from the clock, matching the replies',
  {
    timeout: 20000,
  },
  async (t) => {
    const before = Date.now() * 1000;
    const running = await startListener({ eventClass: StringIdEvent });
    t.after(() => running.close());
    const stream = await openStream(`${running.url}/poll/t`);
    t.after(() => stream.close());
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push(replyId(await post(`${running.url}/ping/t`, `e${i}`)));
    const events = await stream.waitFor(20);
    assert.deepEqual(
      events.map((e) => e.id),
      ids,
    );
    assert.deepEqual(
      events.map((e) => e.data),
      ids.map((_, i) => `e${i}`),
    );
    for (const [i, id] of ids.entries()) {
      assert.match(id, /^\d+$/);
      assert.ok(Number(id) >= before, 'ids start from the clock (microseconds)');
      if (i > 0) assert.ok(BigInt(id) > BigInt(ids[i - 1] as string), 'ids increase');
    }
    assert.match(stream.raw, new RegExp(`^id: ${ids[0]}\nevent: ping\ndata: e0\n\n`));
  },
);

test(
  'ids of a new listener are above those of a previous one (a restart)',
  {
    timeout: 20000,
  },
  async (t) => {
    const seen: bigint[] = [];
    for (let round = 0; round < 2; round++) {
      const running = await startListener({ eventClass: StringIdEvent });
      t.after(() => running.close());
      const stream = await openStream(`${running.url}/poll/t`);
      t.after(() => stream.close());
      for (let i = 0; i < 50; i++) {
        seen.push(BigInt(replyId(await post(`${running.url}/ping/t`, 'x'))));
      }
      await running.close();
      await sleep(2);
    }
    for (let i = 1; i < seen.length; i++) assert.ok((seen[i] as bigint) > (seen[i - 1] as bigint));
  },
);

test(
  'JSON classes re-encode the body as compact single-line JSON',
  { timeout: 20000 },
  async (t) => {
    const running = await startListener({ eventClass: JSONIdEvent });
    t.after(() => running.close());
    const stream = await openStream(`${running.url}/poll/t`);
    t.after(() => stream.close());
    const bodies = [
      '{\n  "a" : [1, 2,\r\n 3],\n  "b": "line1\\nline2",\n  "c": null\n}',
      '  42  ',
      '"a string"',
      '[]',
      'true',
    ];
    const ids: string[] = [];
    for (const body of bodies) ids.push(replyId(await post(`${running.url}/ping/t`, body)));
    const events = await stream.waitFor(bodies.length);
    assert.deepEqual(
      events.map((e) => e.data),
      ['{"a":[1,2,3],"b":"line1\\nline2","c":null}', '42', '"a string"', '[]', 'true'],
    );
    assert.deepEqual(
      events.map((e) => e.id),
      ids,
    );
    assert.equal(stream.raw.match(/^data:/gm)?.length, bodies.length, 'one data: line each');
    // Invalid JSON is refused and nothing is sent.
    assert.equal((await post(`${running.url}/ping/t`, '{oops')).status, 400);
    assert.equal((await post(`${running.url}/ping/t`, '"after"')).status, 200);
    const more = await stream.waitFor(bodies.length + 1);
    assert.equal(more.at(-1)?.data, '"after"');
    assert.equal(more.length, bodies.length + 1);
  },
);

test('retry writes "retry: <ms>" at once and the stream goes on', { timeout: 20000 }, async (t) => {
  const running = await startListener({ eventClass: StringIdEvent });
  t.after(() => running.close());
  const stream = await openStream(`${running.url}/poll/t`);
  t.after(() => stream.close());
  const retries: number[] = [];
  const parser = createParser({ onEvent: () => {}, onRetry: (ms) => retries.push(ms) });
  const result = await post(`${running.url}/retry/t`, '5000');
  assert.equal(result.status, 200);
  assert.deepEqual(JSON.parse(result.body), {
    token: 't',
    action: 'retry',
    id: null,
    subscribers: 1,
  });
  await waitUntil(() => stream.raw.includes('retry: 5000\n\n'), 'retry line');
  assert.equal(stream.raw, 'retry: 5000\n\n');
  parser.feed(stream.raw);
  assert.deepEqual(retries, [5000]);
  assert.equal((await post(`${running.url}/retry/t`, ' 0\n')).status, 200);
  assert.equal((await post(`${running.url}/ping/t`, 'still here')).status, 200);
  await stream.waitFor(1);
  assert.equal(stream.events[0]?.data, 'still here');
  assert.match(stream.raw, /retry: 0\n\nid: \d+\nevent: ping\ndata: still here\n\n$/);
});

test(
  'retry with no live subscriber during the grace period answers 202 and reaches the next one',
  {
    timeout: 20000,
  },
  async (t) => {
    const running = await startListener({ eventClass: StringIdEvent, graceMs: 5000 });
    t.after(() => running.close());
    const first = await openStream(`${running.url}/poll/t`);
    first.close();
    await waitUntil(() => running.listener.stats().streams === 0, 'first stream to close');
    const result = await post(`${running.url}/retry/t`, '1234');
    assert.equal(result.status, 202);
    assert.equal(JSON.parse(result.body).subscribers, 0);
    const close = await post(`${running.url}/close/t`, '');
    assert.equal(close.status, 404, 'close without a live subscriber');
    assert.equal(close.body, 'Target is not connected');
    const second = await openStream(`${running.url}/poll/t`);
    t.after(() => second.close());
    await waitUntil(() => second.raw.includes('retry: 1234\n\n'), 'retry line');
    assert.equal((await post(`${running.url}/retry/never`, '1')).status, 404);
  },
);

test(
  'keepalive writes ":" on idle streams every interval, and not on busy ones',
  {
    timeout: 20000,
  },
  async (t) => {
    const running = await startListener({ keepalive: 150 });
    t.after(() => running.close());
    const idle = await openStream(`${running.url}/poll/idle`);
    t.after(() => idle.close());
    const busy = await openStream(`${running.url}/poll/busy`);
    t.after(() => busy.close());
    const arrivals: number[] = [];
    idle.response.on('data', () => arrivals.push(Date.now()));
    const started = Date.now();
    // Keep the busy stream written every 40 ms for about a second.
    let sent = 0;
    while (Date.now() - started < 1000 && sent < 100) {
      assert.equal((await post(`${running.url}/ping/busy`, String(sent++))).status, 200);
      await sleep(40);
    }
    await busy.waitFor(sent);
    assert.doesNotMatch(busy.raw, /^:/m, 'a busy stream gets no keepalive');
    assert.match(idle.raw, /^(:\n\n)+$/, 'only keepalive comments on the idle stream');
    const count = idle.raw.length / 3;
    // ~1 s at 150 ms: the first tick may be skipped (the stream just opened), so 4 to 8.
    assert.ok(count >= 4 && count <= 8, `${count} keepalives in ~1 s at 150 ms`);
    for (let i = 1; i < arrivals.length; i++) {
      const gap = (arrivals[i] as number) - (arrivals[i - 1] as number);
      assert.ok(gap >= 60 && gap <= 600, `keepalive gap ${gap} ms`);
    }
  },
);

test('keepalive 0 sends no comments', { timeout: 20000 }, async (t) => {
  const running = await startListener({ keepalive: 0 });
  t.after(() => running.close());
  const stream = await openStream(`${running.url}/poll/t`);
  t.after(() => stream.close());
  await sleep(400);
  assert.equal(stream.raw, '');
});

const tokenCases: { name: string; subscribe: string; publish: string; token: string }[] = [
  {
    name: 'a MAC address with ":"',
    subscribe: '42:42:42:42:42:42',
    publish: '42:42:42:42:42:42',
    token: '42:42:42:42:42:42',
  },
  {
    name: 'a %-encoded ":" matches the raw one',
    subscribe: '42%3A42%3a42',
    publish: '42:42:42',
    token: '42:42:42',
  },
  {
    name: 'a %-encoded "/" stays one segment',
    subscribe: 'a%2Fb',
    publish: 'a%2fb',
    token: 'a/b',
  },
  {
    name: 'spaces and UTF-8',
    subscribe: 'caf%C3%A9%20au%20lait',
    publish: 'caf%C3%A9%20au%20lait',
    token: 'café au lait',
  },
];

for (const item of tokenCases) {
  test(`tokens: ${item.name}`, { timeout: 20000 }, async (t) => {
    const running = await startListener();
    t.after(() => running.close());
    const stream = await openStream(`${running.url}/poll/${item.subscribe}`);
    t.after(() => stream.close());
    assert.equal(stream.response.statusCode, 200);
    const result = await post(`${running.url}/ping/${item.publish}`, 'hi');
    assert.equal(result.status, 200);
    assert.equal(JSON.parse(result.body).token, item.token);
    await stream.waitFor(1);
  });
}

test('a token with broken %-encoding answers 400', { timeout: 20000 }, async (t) => {
  const running = await startListener();
  t.after(() => running.close());
  const result = await httpRequest(`${running.url}/poll/%E0%A4%A`);
  assert.equal(result.status, 400);
  assert.equal(result.headers['content-type'], TEXT);
});

test(
  'CORS: preflight, stream and POST carry the headers for an allowed origin only',
  {
    timeout: 20000,
  },
  async (t) => {
    const running = await startListener({ cors: ['https://app.example'] });
    t.after(() => running.close());
    const origin = 'https://app.example';
    const preflight = await httpRequest(`${running.url}/ping/t`, {
      method: 'OPTIONS',
      headers: {
        origin,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization, content-type',
      },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers['access-control-allow-origin'], origin);
    assert.match(String(preflight.headers['access-control-allow-methods']), /POST/);
    assert.match(String(preflight.headers['access-control-allow-headers']), /authorization/i);
    const stream = await openStream(`${running.url}/poll/t`, { origin });
    t.after(() => stream.close());
    assert.equal(stream.response.headers['access-control-allow-origin'], origin);
    assert.equal(stream.response.headers['content-type'], 'text/event-stream');
    const posted = await post(`${running.url}/ping/t`, 'x', { headers: { origin } });
    assert.equal(posted.status, 200);
    assert.equal(posted.headers['access-control-allow-origin'], origin);
    const refusedPost = await post(`${running.url}/nope/t`, 'x', { headers: { origin } });
    assert.equal(refusedPost.headers['access-control-allow-origin'], origin, 'errors too');
    const other = await httpRequest(`${running.url}/ping/t`, {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
    });
    assert.equal(other.headers['access-control-allow-origin'], undefined);
    const otherPost = await post(`${running.url}/ping/t`, 'x', {
      headers: { origin: 'https://evil.example' },
    });
    assert.equal(otherPost.headers['access-control-allow-origin'], undefined);
  },
);

test('CORS "*" allows any origin', { timeout: 20000 }, async (t) => {
  const running = await startListener({ cors: '*' });
  t.after(() => running.close());
  const preflight = await httpRequest(`${running.url}/poll/t`, {
    method: 'OPTIONS',
    headers: { origin: 'http://x.example', 'access-control-request-method': 'GET' },
  });
  assert.equal(preflight.status, 204);
  assert.ok(preflight.headers['access-control-allow-origin'] !== undefined);
  const stream = await openStream(`${running.url}/poll/t`, { origin: 'http://y.example' });
  t.after(() => stream.close());
  assert.ok(stream.response.headers['access-control-allow-origin'] !== undefined);
});

test(
  '401: only the right bearer secret may publish; subscribing needs none',
  {
    timeout: 20000,
  },
  async (t) => {
    const running = await startListener({ publishSecret: 's3cret' });
    t.after(() => running.close());
    const stream = await openStream(`${running.url}/poll/t`);
    t.after(() => stream.close());
    assert.equal(stream.response.statusCode, 200);
    for (const authorization of [
      '',
      'Bearer',
      'Bearer s3cre',
      'Bearer s3crett',
      'Basic s3cret',
      'bearer x',
    ]) {
      const result = await post(`${running.url}/ping/t`, 'x', { headers: { authorization } });
      assert.equal(result.status, 401, authorization);
      assert.equal(result.headers['www-authenticate'], 'Bearer realm="eventsource"');
    }
    const ok = await post(`${running.url}/ping/t`, 'ok', {
      headers: { authorization: 'Bearer s3cret' },
    });
    assert.equal(ok.status, 200);
    await stream.waitFor(1);
    assert.deepEqual(
      stream.events.map((e) => e.data),
      ['ok'],
    );
  },
);

test(
  '413: exactly --max-body (1 MiB) is accepted, one byte more is refused and not sent',
  {
    timeout: 30000,
  },
  async (t) => {
    const running = await startListener();
    t.after(() => running.close());
    const stream = await openStream(`${running.url}/poll/t`);
    t.after(() => stream.close());
    const exact = Buffer.alloc(MiB, 'a');
    assert.equal((await post(`${running.url}/ping/t`, exact)).status, 200);
    const tooLarge = await post(`${running.url}/ping/t`, Buffer.alloc(MiB + 1, 'b'));
    assert.equal(tooLarge.status, 413);
    assert.equal(tooLarge.body, `Request body is larger than ${MiB} bytes`);
    assert.equal(tooLarge.headers['content-type'], TEXT);
    // Without Content-Length (chunked upload) the limit holds too.
    const chunked = await post(`${running.url}/ping/t`, Buffer.alloc(MiB + 1, 'c'), {
      headers: { 'transfer-encoding': 'chunked' },
    });
    assert.equal(chunked.status, 413);
    assert.equal((await post(`${running.url}/ping/t`, 'end')).status, 200);
    await stream.waitFor(2);
    assert.equal(stream.events.length, 2);
    assert.equal(stream.events[0]?.data.length, MiB);
    assert.equal(stream.events[1]?.data, 'end');
  },
);

test(
  '503: --max-connections refuses streams past the limit until one closes',
  {
    timeout: 20000,
  },
  async (t) => {
    const running = await startListener({ maxConnections: 2 });
    t.after(() => running.close());
    const a = await openStream(`${running.url}/poll/a`);
    t.after(() => a.close());
    const b = await openStream(`${running.url}/poll/b`);
    t.after(() => b.close());
    const refused = await httpRequest(`${running.url}/poll/c`);
    assert.equal(refused.status, 503);
    assert.equal(refused.body, 'Too many connections');
    assert.match(String(refused.headers['retry-after']), /^\d+$/);
    // POSTs are not streams and still work.
    assert.equal((await post(`${running.url}/ping/a`, 'x')).status, 200);
    a.close();
    await waitUntil(() => running.listener.stats().streams === 1, 'a to close');
    const c = await openStream(`${running.url}/poll/c`);
    t.after(() => c.close());
    assert.equal(c.response.statusCode, 200);
  },
);

test('HTTP/1.0 subscribers get the events without chunk framing', { timeout: 20000 }, async (t) => {
  const running = await startListener({ eventClass: StringIdEvent });
  t.after(() => running.close());
  const conn = await rawRequest(running.port, 'GET /poll/old HTTP/1.0\r\n\r\n');
  t.after(() => conn.socket.destroy());
  await conn.waitFor('\r\n\r\n');
  assert.match(conn.text, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(conn.text, /content-type: text\/event-stream\r\n/i);
  assert.doesNotMatch(conn.text, /transfer-encoding/i);
  const id = replyId(await post(`${running.url}/ping/old`, 'one\ntwo'));
  await conn.waitFor('two\n\n');
  const body = conn.text.slice(conn.text.indexOf('\r\n\r\n') + 4);
  assert.equal(body, `id: ${id}\nevent: ping\ndata: one\ndata: two\n\n`);
  assert.equal((await post(`${running.url}/close/old`, '')).status, 200);
  await conn.closed;
  assert.equal(conn.text.slice(conn.text.indexOf('\r\n\r\n') + 4), body, 'nothing after');
});

test('HTTP/1.1 subscribers get each event as one HTTP chunk', { timeout: 20000 }, async (t) => {
  const running = await startListener();
  t.after(() => running.close());
  const conn = await rawRequest(running.port, 'GET /poll/new HTTP/1.1\r\nHost: x\r\n\r\n');
  t.after(() => conn.socket.destroy());
  await conn.waitFor('\r\n\r\n');
  assert.match(conn.text, /transfer-encoding: chunked\r\n/i);
  assert.equal((await post(`${running.url}/ping/new`, 'héllo')).status, 200);
  const block = 'event: ping\ndata: héllo\n\n';
  const length = Buffer.byteLength(block).toString(16);
  const expected = `${length}\r\n${Buffer.from(block).toString('latin1')}\r\n`;
  await conn.waitFor(expected);
  assert.equal((await post(`${running.url}/close/new`, '')).status, 200);
  await conn.waitFor(`${expected}0\r\n\r\n`);
});

test('TLS: listen() serves HTTPS with the fixture certificate', { timeout: 20000 }, async (t) => {
  const listener = createListener({
    eventClass: StringIdEvent,
    tls: { key: fixture('key.pem'), cert: fixture('cert.pem') },
  });
  t.after(() => listener.close());
  const url = (await listener.listen(0, '127.0.0.1')).replace(/\/$/, '');
  assert.match(url, /^https:\/\/127\.0\.0\.1:\d+$/);
  const ca = fixture('ca.pem');
  const request = https.get(`${url}/poll/secure`, { ca });
  const [response] = (await once(request, 'response')) as [import('node:http').IncomingMessage];
  t.after(() => request.destroy());
  assert.equal(response.statusCode, 200);
  assert.equal(response.headers['content-type'], 'text/event-stream');
  const events: ParsedEvent[] = [];
  const parser = createParser({ onEvent: (event) => events.push(event) });
  response.on('data', (chunk: Buffer) => parser.feed(chunk));
  const reply = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = https.request(`${url}/ping/secure`, { method: 'POST', ca }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (s: string) => (body += s));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end('over tls');
  });
  assert.equal(reply.status, 200);
  await waitUntil(() => events.length === 1, 'the event over TLS');
  assert.equal(events[0]?.data, 'over tls');
  assert.equal(events[0]?.id, JSON.parse(reply.body).id);
});

test('every class maps the table of actions', { timeout: 20000 }, async (t) => {
  const table: [EventClass, string[], string[]][] = [
    [StringEvent, ['ping', 'close'], ['retry']],
    [StringIdEvent, ['ping', 'close', 'retry'], []],
    [JSONEvent, ['ping', 'close'], ['retry']],
    [JSONIdEvent, ['ping', 'close', 'retry'], []],
  ];
  for (const [eventClass, allowed, refused] of table) {
    const running = await startListener({ eventClass });
    t.after(() => running.close());
    for (const action of allowed) {
      // A token never subscribed: a known action gets past the action check to 404 "not connected".
      const result = await post(`${running.url}/${action}/nobody`, action === 'ping' ? '1' : '5');
      assert.equal(result.body, 'Target is not connected', `${eventClass.name} ${action}`);
    }
    for (const action of [...refused, 'poll', 'other']) {
      const result = await post(`${running.url}/${action}/nobody`, '1');
      assert.equal(
        result.body,
        `Unknown action requested (this listener accepts: ${allowed.join(', ')})`,
        `${eventClass.name} ${action}`,
      );
    }
  }
});

test(
  'a stream requested behind a pipelined request still gets its events in order',
  {
    timeout: 20000,
  },
  async (t) => {
    const running = await startListener({ eventClass: StringIdEvent });
    t.after(() => running.close());
    // Both requests in one write: the stream's response waits for the first one to finish.
    const conn = await rawRequest(
      running.port,
      'GET /stats HTTP/1.1\r\nHost: x\r\n\r\nGET /poll/piped HTTP/1.1\r\nHost: x\r\n\r\n',
    );
    t.after(() => conn.socket.destroy());
    await conn.waitFor('text/event-stream');
    await waitUntil(() => running.listener.stats().streams === 1, 'the stream');
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(replyId(await post(`${running.url}/ping/piped`, `p${i}`)));
    assert.equal((await post(`${running.url}/close/piped`)).status, 200);
    await conn.waitFor('\r\n0\r\n\r\n');
    const text = conn.text;
    const body = text.slice(text.indexOf('\r\n\r\n', text.indexOf('text/event-stream')) + 4);
    // Undo the chunk framing and parse.
    const events: ParsedEvent[] = [];
    const parser = createParser({ onEvent: (event) => events.push(event) });
    let rest = body;
    for (let guard = 0; guard < 100 && rest.length > 0; guard++) {
      const lineEnd = rest.indexOf('\r\n');
      const size = parseInt(rest.slice(0, lineEnd), 16);
      if (size === 0) break;
      parser.feed(Buffer.from(rest.slice(lineEnd + 2, lineEnd + 2 + size), 'latin1'));
      rest = rest.slice(lineEnd + 2 + size + 2);
    }
    assert.deepEqual(
      events.map((e) => [e.id, e.data]),
      ids.map((id, i) => [id, `p${i}`]),
    );
  },
);
