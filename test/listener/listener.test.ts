import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { PublishError, WireFormatError } from '../../src/errors.js';
import { JSONIdEvent, StringEvent, StringIdEvent } from '../../src/events.js';
import { createListener, type ListenerOptions } from '../../src/listener/listener.js';
import { listen, openStream } from '../helpers/net.js';
import { post, rawRequest, sleep, startListener, waitUntil } from '../helpers/listener-helpers.js';

test(
  'publish() and bufferEvent() deliver from code, as a POST would',
  {
    timeout: 20000,
  },
  async (t) => {
    const running = await startListener({ eventClass: JSONIdEvent });
    t.after(() => running.close());
    const { listener } = running;
    assert.equal(listener.bufferEvent, listener.publish);
    assert.equal(listener.eventClass, JSONIdEvent);
    const stream = await openStream(`${running.url}/poll/dev`);
    t.after(() => stream.close());
    const first = await listener.publish('dev', 'ping', { a: [1, 2], b: 'x\ny' });
    assert.equal(first.status, 200);
    assert.equal(first.subscribers, 1);
    assert.match(first.id ?? '', /^\d+$/);
    const second = await listener.bufferEvent('dev', 'ping', '{"raw" : true}');
    await stream.waitFor(2);
    assert.deepEqual(stream.events, [
      { event: 'ping', data: '{"a":[1,2],"b":"x\\ny"}', id: first.id },
      { event: 'ping', data: '{"raw":true}', id: second.id },
    ]);
    await assert.rejects(listener.publish('nobody', 'ping', 1), (error: unknown) => {
      assert.ok(error instanceof PublishError);
      assert.equal(error.status, 404);
      assert.equal(error.message, 'Target is not connected');
      assert.equal(error.code, 'ERR_EVENTSOURCE_PUBLISH');
      return true;
    });
    await assert.rejects(listener.publish('dev', 'nope', 1), {
      status: 404,
      message: 'Unknown action requested (this listener accepts: ping, close, retry)',
    });
    await assert.rejects(listener.publish('dev', 'ping', '{bad'), (error: unknown) => {
      assert.ok(error instanceof PublishError);
      assert.equal(error.status, 400);
      assert.match(error.message, /^Data is not properly formatted: /);
      return true;
    });
    await assert.rejects(listener.publish('dev', 'retry', -1), { status: 400 });
    assert.equal((await listener.publish('dev', 'retry', 250)).status, 200);
    assert.equal((await listener.publish('dev', 'close')).status, 200);
    await stream.ended;
    assert.match(stream.raw, /retry: 250\n\n$/);
  },
);

test(
  'ids are one sequence for the whole listener, across tokens',
  { timeout: 20000 },
  async (t) => {
    const running = await startListener({ eventClass: StringIdEvent, mode: 'multi' });
    t.after(() => running.close());
    const a = await openStream(`${running.url}/poll/a`);
    t.after(() => a.close());
    const b = await openStream(`${running.url}/poll/b`);
    t.after(() => b.close());
    const ids: bigint[] = [];
    for (let i = 0; i < 10; i++) {
      ids.push(BigInt((await running.listener.publish(i % 2 ? 'a' : 'b', 'ping', 'x')).id ?? ''));
    }
    for (let i = 1; i < ids.length; i++) assert.equal(ids[i], (ids[i - 1] as bigint) + 1n);
  },
);

test(
  'listen() serves the handler and returns the URL with the real port; close() ends it all',
  {
    timeout: 20000,
  },
  async (t) => {
    const listener = createListener({ prefix: '/hub', maxBuffer: 1024 });
    t.after(() => listener.close());
    const url = await listener.listen(0, '127.0.0.1');
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/hub\/$/);
    assert.ok(listener.server instanceof http.Server);
    const port = Number(new URL(url).port);
    assert.notEqual(port, 0);
    const stream = await openStream(`${url}poll/a`);
    t.after(() => stream.close());
    // A subscriber that never reads, with events waiting, must not hold the shutdown up.
    const stuck = await rawRequest(port, 'GET /hub/poll/b HTTP/1.1\r\nHost: x\r\n\r\n', {
      isReading: false,
    });
    t.after(() => stuck.socket.destroy());
    await waitUntil(() => listener.stats().streams === 2, 'both streams');
    // An idle keep-alive POST connection must not hold it up either.
    const agent = new http.Agent({ keepAlive: true });
    t.after(() => agent.destroy());
    assert.equal((await post(`${url}ping/a`, 'x', { agent })).status, 200);
    const started = Date.now();
    await listener.close();
    assert.ok(Date.now() - started < 1000, `close() took ${Date.now() - started} ms`);
    await stream.ended;
    assert.equal(stream.response.complete, true, 'the stream ended cleanly');
    stuck.socket.resume();
    await stuck.closed;
    const socket = net.connect(port, '127.0.0.1');
    const [error] = (await once(socket, 'error')) as [NodeJS.ErrnoException];
    assert.equal(error.code, 'ECONNREFUSED');
    await listener.close();
  },
);

test(
  'the handler works as Connect/Express middleware: next() for paths it does not own',
  {
    timeout: 20000,
  },
  async (t) => {
    const listener = createListener({ prefix: '/sse' });
    t.after(() => listener.close());
    const server = await listen((req, res) =>
      listener.handler(req, res, () => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('app');
      }),
    );
    t.after(() => server.close());
    const app = await post(`${server.url}/other/thing`, '');
    assert.equal(app.body, 'app');
    const stream = await openStream(`${server.url}/sse/poll/t`);
    t.after(() => stream.close());
    assert.equal(stream.response.statusCode, 200);
    assert.equal((await post(`${server.url}/sse/ping/t`, 'x')).status, 200);
    await stream.waitFor(1);
  },
);

const badOptions: [string, ListenerOptions, RegExp][] = [
  ['keepalive -5', { keepalive: -5 }, /`keepalive` must be a non-negative integer.*got -5/],
  ['keepalive 1.5', { keepalive: 1.5 }, /`keepalive`/],
  ['maxBody NaN', { maxBody: Number.NaN }, /`maxBody`/],
  ['maxBuffer -1', { maxBuffer: -1 }, /`maxBuffer`/],
  ['maxConnections 0', { maxConnections: 0 }, /`maxConnections`/],
  ['history -1', { history: -1 }, /`history`/],
  ['historyBytes 0.5', { historyBytes: 0.5 }, /`historyBytes`/],
  ['graceMs -1', { graceMs: -1 }, /`graceMs`/],
];

for (const [name, options, message] of badOptions) {
  test(`createListener refuses ${name} with a RangeError`, () => {
    assert.throws(
      () => createListener(options),
      (error: unknown) => {
        assert.ok(error instanceof RangeError);
        assert.match(error.message, message);
        return true;
      },
    );
  });
}

test('createListener refuses a gapEvent that would break the wire format', () => {
  assert.throws(() => createListener({ gapEvent: 'gap\ndata: x' }), WireFormatError);
});

test(
  '/stats counts events, not keepalive comments or retry lines',
  { timeout: 20000 },
  async (t) => {
    const running = await startListener({ eventClass: StringIdEvent, keepalive: 30 });
    t.after(() => running.close());
    const stream = await openStream(`${running.url}/poll/a`);
    t.after(() => stream.close());
    await waitUntil(() => stream.raw.includes(':\n\n:\n\n'), 'two keepalives');
    assert.equal((await post(`${running.url}/retry/a`, '100')).status, 200);
    for (let i = 0; i < 3; i++)
      assert.equal((await post(`${running.url}/ping/a`, 'x')).status, 200);
    await stream.waitFor(3);
    const stats = running.listener.stats();
    assert.equal(stats.eventsAccepted, 3);
    assert.equal(stats.eventsDelivered, 3);
  },
);

test(
  'an event published right after close is kept for the reconnection, not lost',
  {
    timeout: 20000,
  },
  async (t) => {
    const running = await startListener({ eventClass: StringEvent, graceMs: 5000 });
    t.after(() => running.close());
    const first = await openStream(`${running.url}/poll/t`);
    t.after(() => first.close());
    const { listener } = running;
    // Both in the same tick: the first stream is ending, and cannot take the event any more.
    const [closed, published] = await Promise.all([
      listener.publish('t', 'close'),
      listener.publish('t', 'ping', 'after close'),
    ]);
    assert.equal(closed.status, 200);
    await first.ended;
    assert.deepEqual(first.events, []);
    assert.equal(published.status, 202, 'kept for the next subscriber');
    const second = await openStream(`${running.url}/poll/t`);
    t.after(() => second.close());
    await second.waitFor(1);
    assert.deepEqual(
      second.events.map((e) => e.data),
      ['after close'],
    );
  },
);

test(
  'a subscriber that hangs up before the headers leaves no stream behind',
  {
    timeout: 20000,
  },
  async (t) => {
    const running = await startListener();
    t.after(() => running.close());
    for (let i = 0; i < 20; i++) {
      const conn = await rawRequest(running.port, `GET /poll/t${i} HTTP/1.1\r\nHost: x\r\n\r\n`);
      conn.socket.destroy();
    }
    await sleep(50);
    await waitUntil(() => running.listener.stats().streams === 0, 'no streams');
    // Every token is still usable.
    const stream = await openStream(`${running.url}/poll/t0`);
    t.after(() => stream.close());
    assert.equal(stream.response.statusCode, 200);
  },
);
