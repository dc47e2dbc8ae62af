import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent } from 'undici';
import { EventSourceClient, type ClientEvent } from '../src/client.js';
import { startHttp2Server } from './helpers/http2-server.js';
import { fixture } from './helpers/sse-server.js';

const timeout = 15000;

/** The first `count` events of the client, which is then closed. */
async function take(client: EventSourceClient, count: number): Promise<ClientEvent[]> {
  const events: ClientEvent[] = [];
  for await (const event of client) {
    events.push(event);
    if (events.length === count) break;
  }
  return events;
}

test(
  'http2: true reaches an HTTP/2 server over h2 and reconnects with Last-Event-ID on the same session',
  { timeout },
  async (t) => {
    const server = await startHttp2Server();
    t.after(() => server.close());
    const client = new EventSourceClient(`${server.url}/poll/tok`, {
      ca: fixture('ca.pem'),
      http2: true,
    });
    t.after(() => client.close());
    const events = await take(client, 3);
    assert.deepEqual(
      events.map(({ id, data }) => ({ id, data })),
      [
        { id: '1', data: 'event 1 over 2.0' },
        { id: '2', data: 'event 2 over 2.0' },
        { id: '3', data: 'event 3 over 2.0' },
      ],
    );
    const [first, second, third] = server.requests;
    assert.deepEqual(
      server.requests.slice(0, 3).map((r) => [r.method, r.url, r.httpVersion, r.lastEventId]),
      [
        ['GET', '/poll/tok', '2.0', undefined],
        ['GET', '/poll/tok', '2.0', '1'],
        ['GET', '/poll/tok', '2.0', '2'],
      ],
    );
    // Reconnections are new streams of the one session, not new connections.
    assert.deepEqual([first?.streamId, second?.streamId, third?.streamId], [1, 3, 5]);
    assert.equal(second?.remotePort, first?.remotePort);
    assert.equal(third?.remotePort, first?.remotePort);
  },
);

test('without http2 the client speaks HTTP/1.1 to the same server', { timeout }, async (t) => {
  const server = await startHttp2Server();
  t.after(() => server.close());
  const client = new EventSourceClient(`${server.url}/poll/tok`, {
    ca: fixture('ca.pem'),
    reconnect: false,
  });
  t.after(() => client.close());
  await client.closed;
  assert.equal(server.requests.length, 1);
  assert.equal(server.requests[0]?.httpVersion, '1.1');
});

test('http2 together with dispatcher is a TypeError naming both options', () => {
  const dispatcher = new Agent();
  try {
    assert.throws(
      () => new EventSourceClient('https://127.0.0.1:1/', { dispatcher, http2: true }),
      (error: unknown) =>
        error instanceof TypeError &&
        /`http2`/.test(error.message) &&
        /`dispatcher`/.test(error.message),
    );
    // http2: false is the default, and says nothing the dispatcher could contradict.
    new EventSourceClient('https://127.0.0.1:1/', { dispatcher, http2: false }).close();
    assert.throws(
      () => new EventSourceClient('https://127.0.0.1:1/', { http2: 'yes' as unknown as boolean }),
      TypeError,
    );
  } finally {
    void dispatcher.destroy();
  }
});
