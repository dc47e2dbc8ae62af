import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import {
  EventSourceClient,
  type ClientEvent,
  type EventSourceErrorEvent,
  type EventSourceMessageEvent,
} from '../src/client.js';
import {
  ContentTypeError,
  EventTooLargeError,
  HttpStatusError,
  ReadTimeoutError,
} from '../src/errors.js';
import { fixture, reply, startScriptedServer, stream } from './helpers/sse-server.js';

const timeout = 15000;

async function collect(client: EventSourceClient): Promise<ClientEvent[]> {
  const events: ClientEvent[] = [];
  for await (const event of client) events.push(event);
  return events;
}

test(
  'delivers message and named events to the iterator, onEvent and listeners',
  { timeout },
  async (t) => {
    const server = await startScriptedServer([
      stream(['data: one\n\nid: 7\nevent: update\ndata: two\ndata: lines\n\n', 'data: three\n\n']),
    ]);
    t.after(() => server.close());
    const fromCallback: ClientEvent[] = [];
    const client = new EventSourceClient(`${server.url}/s`, {
      reconnect: false,
      onEvent: (event) => fromCallback.push(event),
    });
    t.after(() => client.close());
    const messages: EventSourceMessageEvent[] = [];
    const updates: EventSourceMessageEvent[] = [];
    let openCount = 0;
    client.addEventListener('message', (event) => messages.push(event as EventSourceMessageEvent));
    client.addEventListener('update', (event) => updates.push(event as EventSourceMessageEvent));
    client.onopen = () => openCount++;
    const events = await collect(client);
    const expected: ClientEvent[] = [
      { id: null, event: 'message', data: 'one', lastEventId: '' },
      { id: '7', event: 'update', data: 'two\nlines', lastEventId: '7' },
      { id: '7', event: 'message', data: 'three', lastEventId: '7' },
    ];
    assert.deepEqual(events, expected);
    assert.deepEqual(fromCallback, expected);
    assert.deepEqual(
      messages.map((e) => [e.type, e.data, e.lastEventId, e.origin]),
      [
        ['message', 'one', '', server.url],
        ['message', 'three', '7', server.url],
      ],
    );
    assert.deepEqual(
      updates.map((e) => [e.type, e.data, e.id]),
      [['update', 'two\nlines', '7']],
    );
    assert.equal(openCount, 1);
    assert.equal(client.readyState, EventSourceClient.CLOSED);
    assert.equal(client.lastEventId, '7');
  },
);

test('sends Accept, Cache-Control, custom headers and basic auth', { timeout }, async (t) => {
  const server = await startScriptedServer([stream(['data: x\n\n'])]);
  t.after(() => server.close());
  const client = new EventSourceClient(`${server.url}/s`, {
    reconnect: false,
    headers: { 'X-Custom': 'yes' },
    username: 'ann',
    password: 'sécret',
  });
  t.after(() => client.close());
  await collect(client);
  const [request] = server.requests;
  assert.equal(request?.headers.accept, 'text/event-stream');
  assert.equal(request?.headers['cache-control'], 'no-cache');
  assert.equal(request?.headers['x-custom'], 'yes');
  assert.equal(
    request?.headers.authorization,
    `Basic ${Buffer.from('ann:sécret').toString('base64')}`,
  );
  assert.equal(request?.headers['last-event-id'], undefined);
});

test('takes basic auth from the URL user info', { timeout }, async (t) => {
  const server = await startScriptedServer([stream(['data: x\n\n'])]);
  t.after(() => server.close());
  const client = new EventSourceClient(`http://bob:p%40ss@127.0.0.1:${server.port}/s`, {
    reconnect: false,
  });
  t.after(() => client.close());
  await collect(client);
  assert.equal(
    server.requests[0]?.headers.authorization,
    `Basic ${Buffer.from('bob:p@ss').toString('base64')}`,
  );
  assert.equal(client.url, `http://127.0.0.1:${server.port}/s`);
});

test(
  'reconnects after the retry: delay, sending Last-Event-ID, and stops on 204',
  { timeout },
  async (t) => {
    const server = await startScriptedServer([
      stream(['retry: 150\nid: a1\ndata: first\n\n', 'id: a2\ndata: second\n\n']),
      stream(['data: third\n\n', 'id: a3\ndata: fourth']), // the last event is incomplete
      reply(204),
    ]);
    t.after(() => server.close());
    // Without the server's retry: the default 60 s would make this test time out.
    const client = new EventSourceClient(`${server.url}/s`, { retryMs: 60000 });
    t.after(() => client.close());
    const errors: EventSourceErrorEvent[] = [];
    client.addEventListener('error', (event) => errors.push(event as EventSourceErrorEvent));
    const events = await collect(client);
    assert.deepEqual(
      events.map((e) => [e.data, e.id]),
      [
        ['first', 'a1'],
        ['second', 'a2'],
        ['third', 'a2'],
      ],
    );
    assert.equal(server.requests.length, 3);
    assert.equal(server.requests[0]?.headers['last-event-id'], undefined);
    assert.equal(server.requests[1]?.headers['last-event-id'], 'a2');
    // The id of the incomplete event was never dispatched, so it is not sent.
    assert.equal(server.requests[2]?.headers['last-event-id'], 'a2');
    assert.equal(client.retryMs, 150);
    const gap = (server.requests[1]?.at ?? 0) - (server.requests[0]?.at ?? 0);
    assert.ok(gap >= 145, `reconnected after ${gap} ms`);
    assert.deepEqual(
      errors.map((e) => [e.willReconnect, e.delayMs, e.error?.constructor.name]),
      [
        [true, 150, undefined],
        [true, 150, undefined],
        [false, undefined, 'HttpStatusError'],
      ],
    );
    assert.equal(client.readyState, EventSourceClient.CLOSED);
    await client.closed;
  },
);

test('sends the lastEventId option on the first connection', { timeout }, async (t) => {
  const server = await startScriptedServer([stream(['data: x\n\n'])]);
  t.after(() => server.close());
  const client = new EventSourceClient(`${server.url}/s`, { reconnect: false, lastEventId: '41' });
  t.after(() => client.close());
  const events = await collect(client);
  assert.equal(server.requests[0]?.headers['last-event-id'], '41');
  assert.deepEqual(events, [{ id: '41', event: 'message', data: 'x', lastEventId: '41' }]);
  assert.throws(() => new EventSourceClient(server.url, { lastEventId: 'a\nb' }), TypeError);
  // Kept exactly (a leading space too), and not counted against maxEventLength.
  const other = new EventSourceClient(`${server.url}/s`, {
    reconnect: false,
    lastEventId: ' 41',
    maxEventLength: 1,
  });
  other.close();
  assert.equal(other.lastEventId, ' 41');
});

test('a 404 stops with HttpStatusError carrying the status and body', { timeout }, async (t) => {
  const server = await startScriptedServer([reply(404, 'Target is not connected')]);
  t.after(() => server.close());
  const client = new EventSourceClient(`${server.url}/s`);
  t.after(() => client.close());
  await assert.rejects(collect(client), (error: unknown) => {
    assert.ok(error instanceof HttpStatusError);
    assert.equal(error.status, 404);
    assert.equal(error.body, 'Target is not connected');
    assert.equal(error.url, `${server.url}/s`);
    assert.equal(error.code, 'ERR_EVENTSOURCE_HTTP_STATUS');
    return true;
  });
  await assert.rejects(client.closed, HttpStatusError);
  assert.equal(server.requests.length, 1);
  assert.equal(client.readyState, EventSourceClient.CLOSED);
});

test('a 404 is retried with keepReconnecting', { timeout }, async (t) => {
  const server = await startScriptedServer([
    reply(404),
    reply(404),
    stream(['data: ok\n\n']),
    reply(204),
  ]);
  t.after(() => server.close());
  const client = new EventSourceClient(`${server.url}/s`, { keepReconnecting: true, retryMs: 10 });
  t.after(() => client.close());
  const events = await collect(client);
  assert.deepEqual(
    events.map((e) => e.data),
    ['ok'],
  );
  assert.equal(server.requests.length, 4);
});

for (const status of [500, 502, 503, 504]) {
  test(`a ${status} is passing trouble: reconnects with backoff`, { timeout }, async (t) => {
    const server = await startScriptedServer([
      reply(status),
      reply(status),
      stream(['data: ok\n\n']),
      reply(204),
    ]);
    t.after(() => server.close());
    const client = new EventSourceClient(`${server.url}/s`, { retryMs: 20 });
    t.after(() => client.close());
    const delays: (number | undefined)[] = [];
    client.addEventListener('error', (e) => delays.push((e as EventSourceErrorEvent).delayMs));
    const events = await collect(client);
    assert.deepEqual(
      events.map((e) => e.data),
      ['ok'],
    );
    // Backoff starts at max(retry, 100 ms) and doubles, with jitter between half and all of it.
    const [first, second] = delays;
    assert.ok(first !== undefined && first >= 50 && first <= 100, `first delay ${first}`);
    assert.ok(second !== undefined && second >= 100 && second <= 200, `second delay ${second}`);
  });
}

test('a 503 with reconnection off stops with the error', { timeout }, async (t) => {
  const server = await startScriptedServer([reply(503, 'busy')]);
  t.after(() => server.close());
  const client = new EventSourceClient(`${server.url}/s`, { reconnect: false });
  t.after(() => client.close());
  await assert.rejects(client.closed, { status: 503, body: 'busy' });
});

test('Retry-After sets the delay after a 503', { timeout }, async (t) => {
  const server = await startScriptedServer([reply(503, '', { 'retry-after': '1' }), reply(204)]);
  t.after(() => server.close());
  const client = new EventSourceClient(`${server.url}/s`, { retryMs: 10 });
  t.after(() => client.close());
  const [event] = (await once(client, 'error')) as [EventSourceErrorEvent];
  assert.equal(event.delayMs, 1000);
  await client.closed;
  const gap = (server.requests[1]?.at ?? 0) - (server.requests[0]?.at ?? 0);
  assert.ok(gap >= 950, `reconnected after ${gap} ms`);
});

test('a 200 that is not text/event-stream fails with ContentTypeError', { timeout }, async (t) => {
  const server = await startScriptedServer([
    reply(200, '{}', { 'content-type': 'application/json' }),
  ]);
  t.after(() => server.close());
  const client = new EventSourceClient(`${server.url}/s`);
  t.after(() => client.close());
  await assert.rejects(client.closed, ContentTypeError);
});

test(
  'a wrong Content-Type is retried with keepReconnecting, without an abort error escaping',
  { timeout },
  async (t) => {
    // The client drops the unread body; undici then emits an abort error on it, which must not
    // escape as an uncaught exception.
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown): number => uncaught.push(error);
    process.on('uncaughtException', onUncaught);
    t.after(() => process.off('uncaughtException', onUncaught));
    const server = await startScriptedServer([
      reply(200, '<html>hi</html>', { 'content-type': 'text/html' }),
      reply(200, '<html>hi</html>', { 'content-type': 'text/html' }),
      stream(['data: ok\n\n']),
      reply(204),
    ]);
    t.after(() => server.close());
    const client = new EventSourceClient(`${server.url}/s`, {
      keepReconnecting: true,
      retryMs: 10,
    });
    t.after(() => client.close());
    const events = await collect(client);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(
      events.map((e) => e.data),
      ['ok'],
    );
    assert.equal(server.requests.length, 4);
    assert.deepEqual(uncaught, []);
  },
);

test('an unreachable server fails the first connection', { timeout }, async (t) => {
  const server = await startScriptedServer([reply(204)]);
  const url = `${server.url}/s`;
  await server.close();
  const client = new EventSourceClient(url);
  t.after(() => client.close());
  await assert.rejects(client.closed, /ECONNREFUSED/);
});

test('a silent stream times out and reconnects', { timeout }, async (t) => {
  const server = await startScriptedServer([
    stream(['data: a\n\n'], { keepOpen: true }),
    stream([':keepalive\n\n', ':keepalive\n\n', 'data: b\n\n'], { gapMs: 80, keepOpen: true }),
    reply(204),
  ]);
  t.after(() => server.close());
  const client = new EventSourceClient(`${server.url}/s`, { readTimeoutMs: 150, retryMs: 10 });
  t.after(() => client.close());
  const errors: EventSourceErrorEvent[] = [];
  client.addEventListener('error', (e) => errors.push(e as EventSourceErrorEvent));
  const events = await collect(client);
  assert.deepEqual(
    events.map((e) => e.data),
    ['a', 'b'],
  );
  assert.ok(errors[0]?.error instanceof ReadTimeoutError);
  assert.equal(errors[0]?.willReconnect, true);
  assert.equal(server.requests.length, 3);
});

test('follows redirects, and reconnects to the URL given', { timeout }, async (t) => {
  const server = await startScriptedServer([
    reply(302, '', { location: '/target' }),
    stream(['retry: 5\ndata: one\n\n']),
    reply(307, '', { location: '/target' }),
    reply(204),
  ]);
  t.after(() => server.close());
  const client = new EventSourceClient(`${server.url}/start`);
  t.after(() => client.close());
  const events = await collect(client);
  assert.deepEqual(
    events.map((e) => e.data),
    ['one'],
  );
  assert.deepEqual(
    server.requests.map((r) => r.url),
    ['/start', '/target', '/start', '/target'],
  );
});

test(
  'close() ends the iterator at once and drops the rest of the chunk',
  { timeout },
  async (t) => {
    const server = await startScriptedServer([
      stream(['data: 1\n\ndata: 2\n\ndata: 3\n\n'], { keepOpen: true }),
    ]);
    t.after(() => server.close());
    const client = new EventSourceClient(`${server.url}/s`, {
      onEvent: (event) => {
        if (event.data === '2') client.close();
      },
    });
    t.after(() => client.close());
    const events = await collect(client);
    assert.deepEqual(
      events.map((e) => e.data),
      ['1', '2'],
    );
    await client.closed;
  },
);

test(
  'leaving a for-await loop closes the client; an AbortSignal closes it too',
  { timeout },
  async (t) => {
    const server = await startScriptedServer([
      stream(['data: 1\n\ndata: 2\n\n'], { keepOpen: true }),
    ]);
    t.after(() => server.close());
    const client = new EventSourceClient(`${server.url}/s`);
    t.after(() => client.close());
    for await (const event of client) {
      assert.equal(event.data, '1');
      break;
    }
    assert.equal(client.readyState, EventSourceClient.CLOSED);

    const controller = new AbortController();
    const second = new EventSourceClient(`${server.url}/s`, { signal: controller.signal });
    t.after(() => second.close());
    await once(second, 'open');
    controller.abort();
    await second.closed;
    assert.equal(second.readyState, EventSourceClient.CLOSED);
  },
);

test(
  'an event over maxEventLength is discarded with EventTooLargeError',
  { timeout },
  async (t) => {
    const big = `data: ${'x'.repeat(5000)}\n`;
    const server = await startScriptedServer([
      stream(['data: small\n\n', big, big, '\ndata: after\n\n']),
    ]);
    t.after(() => server.close());
    const client = new EventSourceClient(`${server.url}/s`, {
      reconnect: false,
      maxEventLength: 1000,
    });
    t.after(() => client.close());
    const errors: unknown[] = [];
    client.addEventListener('error', (e) => errors.push((e as EventSourceErrorEvent).error));
    const events = await collect(client);
    assert.deepEqual(
      events.map((e) => e.data),
      ['small', 'after'],
    );
    assert.ok(errors[0] instanceof EventTooLargeError);
    // The limit is on what the event holds in memory, not on its data's characters: say so.
    assert.equal(
      errors[0].message,
      'an event held more than 1000 UTF-16 code units in memory (maxEventLength counts its lines from the first data line on, field names and line ends included)',
    );
  },
);

test(
  'HTTPS: refuses an unknown CA by default, accepts it with ca or rejectUnauthorized: false',
  { timeout },
  async (t) => {
    const server = await startScriptedServer([stream(['data: secure\n\n'])], { tls: true });
    t.after(() => server.close());
    const refused = new EventSourceClient(`${server.url}/s`, { reconnect: false });
    t.after(() => refused.close());
    await assert.rejects(refused.closed, /certificate/);

    for (const options of [{ ca: fixture('ca.pem') }, { rejectUnauthorized: false }]) {
      const client = new EventSourceClient(`${server.url}/s`, { reconnect: false, ...options });
      t.after(() => client.close());
      assert.deepEqual(
        (await collect(client)).map((e) => e.data),
        ['secure'],
      );
    }
  },
);

test('rejects bad options with TypeError or RangeError', () => {
  assert.throws(() => new EventSourceClient('ftp://example.com/'), TypeError);
  assert.throws(() => new EventSourceClient('not a url'), TypeError);
  assert.throws(() => new EventSourceClient('http://127.0.0.1:1/', { retryMs: -1 }), RangeError);
  assert.throws(
    () => new EventSourceClient('http://127.0.0.1:1/', { maxEventLength: 0 }),
    RangeError,
  );
});

test(
  'backpressure: a slow iterator pauses reading and still gets every event',
  { timeout },
  async (t) => {
    const total = 10000;
    let body = '';
    for (let i = 0; i < total; i++) body += `data: ${i}\n\n`;
    const server = await startScriptedServer([stream([body])]);
    t.after(() => server.close());
    const client = new EventSourceClient(`${server.url}/s`, { reconnect: false });
    t.after(() => client.close());
    let expected = 0;
    for await (const event of client) {
      assert.equal(event.data, String(expected++));
      if (expected % 1000 === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assert.equal(expected, total);
  },
);

test(
  'listeners: once, signal, removeEventListener, handleEvent, stopImmediatePropagation',
  { timeout },
  async (t) => {
    const server = await startScriptedServer([
      stream(['data: 1\n\ndata: 2\n\nevent: error\ndata: 3\n\n']),
    ]);
    t.after(() => server.close());
    const client = new EventSourceClient(`${server.url}/s`, { reconnect: false });
    t.after(() => client.close());
    const seen: string[] = [];
    const controller = new AbortController();
    client.addEventListener('message', (e) => seen.push(`once:${e.data}`), { once: true });
    client.addEventListener('message', (e) => seen.push(`signal:${e.data}`), {
      signal: controller.signal,
    });
    controller.abort();
    const removed = (e: EventSourceMessageEvent): void => void seen.push(`removed:${e.data}`);
    client.addEventListener('message', removed);
    client.removeEventListener('message', removed);
    const object = { handleEvent: (e: EventSourceMessageEvent) => seen.push(`object:${e.data}`) };
    client.addEventListener('message', object);
    client.addEventListener('message', object); // a duplicate is ignored, as on any EventTarget
    client.addEventListener('message', (e) => {
      seen.push(`stop:${e.data}`);
      e.stopImmediatePropagation();
    });
    client.addEventListener('message', (e) => seen.push(`never:${e.data}`));
    client.onmessage = (e) => seen.push(`onmessage:${e.data}`);
    // A server event typed `error` reaches error listeners with its data, as in browsers.
    const errorData: unknown[] = [];
    client.addEventListener('error', (e) => errorData.push((e as Event & { data?: string }).data));
    await client.closed;
    assert.deepEqual(seen, ['once:1', 'object:1', 'stop:1', 'object:2', 'stop:2']);
    assert.deepEqual(errorData, ['3', undefined]);
    assert.equal(typeof client.onmessage, 'function');
  },
);
