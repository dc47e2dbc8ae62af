/**
 * The fast path of listen(): simple POSTs read by the front, everything else handed to node:http.
 * Raw sockets on 127.0.0.1; each answer is compared byte for byte (apart from `Date`) with what
 * the same listener answers with `fastPath: false`. Whether the front or node:http served a
 * request shows in the server's 'request' events: node:http emits one per request it parses.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { JSONEvent, StringEvent, StringIdEvent, type Event } from '../../src/events.js';
import type { Broker, PublishOutcome } from '../../src/listener/broker.js';
import {
  createListener,
  type InternalListenerOptions,
  type Listener,
} from '../../src/listener/listener.js';
import { MemoryBroker } from '../../src/listener/memory-broker.js';
import type { Subscriber } from '../../src/listener/subscriber.js';
import { openStream } from '../helpers/net.js';
import { post, sleep, waitUntil } from '../helpers/listener-helpers.js';
import { startListenerProcess } from '../helpers/process.js';

const timeout = 20000;
const AUTH = 'Host: x\r\nAuthorization: Bearer s3cret\r\n';
const ORIGIN = 'Origin: https://app.example\r\n';

interface Running {
  listener: Listener;
  port: number;
  /** 'request' events of the listener's http.Server so far: requests node:http parsed. */
  readonly nodeRequests: number;
}

async function start(t: TestContext, options: InternalListenerOptions = {}): Promise<Running> {
  const listener = createListener(options);
  t.after(() => listener.close());
  const url = await listener.listen(0, '127.0.0.1');
  let nodeRequests = 0;
  listener.server?.on('request', () => nodeRequests++);
  return {
    listener,
    port: Number(new URL(url).port),
    get nodeRequests() {
      return nodeRequests;
    },
  };
}

/** A raw connection that splits what it receives into HTTP responses. */
class Client {
  text = '';
  readonly closed: Promise<void>;
  isClosed = false;

  constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => (this.text += chunk.toString('latin1')));
    socket.on('error', () => {
      // A reset after a refusal is one of the outcomes compared.
    });
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.isClosed = true;
        resolve();
      }),
    );
  }

  static async connect(t: TestContext, port: number): Promise<Client> {
    const socket = net.connect(port, '127.0.0.1');
    t.after(() => socket.destroy());
    await once(socket, 'connect');
    return new Client(socket);
  }

  /** Complete responses received so far, with `Date` blanked. */
  get responses(): string[] {
    return splitResponses(this.text.replace(/\r\nDate: [^\r]*/g, '\r\nDate: -'));
  }

  /** Waits for `count` complete responses, or for the socket to close. */
  async read(count: number, timeoutMs = 5000): Promise<string[]> {
    await waitUntil(
      () => this.responses.length >= count || this.isClosed,
      `${count} responses, got ${JSON.stringify(this.text)}`,
      timeoutMs,
    );
    // A refusal with `Connection: close` may be followed by the close itself.
    if (this.isClosed) await this.closed;
    return this.responses;
  }
}

/** Splits raw response text into whole responses (Content-Length, chunked or bodiless). */
function splitResponses(text: string): string[] {
  const responses: string[] = [];
  let at = 0;
  while (at < text.length) {
    const headEnd = text.indexOf('\r\n\r\n', at);
    if (headEnd === -1) break;
    const head = text.slice(at, headEnd);
    const length = /\r\ncontent-length: (\d+)/i.exec(head);
    let end = headEnd + 4;
    if (length !== null) end += Number(length[1]);
    else if (/\r\ntransfer-encoding: chunked/i.test(head)) {
      const last = text.indexOf('0\r\n\r\n', end);
      if (last === -1) break;
      end = last + 5;
    }
    if (end > text.length) break;
    responses.push(text.slice(at, end));
    at = end;
  }
  return responses;
}

function simplePost(path: string, body: string, headers = AUTH): string {
  return `POST ${path} HTTP/1.1\r\n${headers}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

/**
 * Sends each step on one connection, waiting after each for the responses it expects (counted
 * from the start), to a listener with and without the fast path, each with a stream open on
 * token `sub`. Returns both sets of responses and node:http's request counts.
 */
async function compare(
  t: TestContext,
  steps: [input: string, responses: number][],
): Promise<{ fast: string[]; node: string[]; fastRequests: number; nodeRequests: number }> {
  const results = [];
  for (const fastPath of [true, false]) {
    const running = await start(t, {
      eventClass: JSONEvent,
      cors: 'https://app.example',
      publishSecret: 's3cret',
      maxBody: 64,
      fastPath,
    });
    const stream = await openStream(`http://127.0.0.1:${running.port}/poll/sub`);
    t.after(() => stream.close());
    const before = running.nodeRequests;
    const client = await Client.connect(t, running.port);
    let responses: string[] = [];
    for (const [input, count] of steps) {
      client.socket.write(input);
      responses = await client.read(count);
    }
    results.push({ responses, requests: running.nodeRequests - before });
    client.socket.destroy();
  }
  const [fast, node] = results as [(typeof results)[0], (typeof results)[0]];
  return {
    fast: fast.responses,
    node: node.responses,
    fastRequests: fast.requests,
    nodeRequests: node.requests,
  };
}

// [name, input, status line of the last response, responses]
const served: [string, string, string, number?][] = [
  ['200 with CORS', simplePost('/ping/sub', '"hi"', AUTH + ORIGIN), 'HTTP/1.1 200 OK'],
  [
    '202 once the stream was closed',
    simplePost('/close/sub', '') + simplePost('/ping/sub', '{"a":1}'),
    'HTTP/1.1 202 Accepted',
    2,
  ],
  ['404 unknown action', simplePost('/nope/sub', '"x"', AUTH + ORIGIN), 'HTTP/1.1 404 '],
  ['404 not connected (close)', simplePost('/close/nobody', ''), 'HTTP/1.1 404 '],
  ['401 without a secret', simplePost('/ping/sub', '"x"', 'Host: x\r\n'), 'HTTP/1.1 401 '],
  [
    '401 with a wrong secret and CORS',
    simplePost('/ping/sub', '"x"', `Host: x\r\nAuthorization: Bearer nope\r\n${ORIGIN}`),
    'HTTP/1.1 401 ',
  ],
  ['400 not JSON', simplePost('/ping/sub', 'not json'), 'HTTP/1.1 400 '],
  [
    '413 declared too large',
    `POST /ping/sub HTTP/1.1\r\n${AUTH}Content-Length: 65\r\n\r\n`,
    'HTTP/1.1 413 ',
  ],
  [
    'Connection: close',
    simplePost('/ping/sub', '"bye"', `${AUTH}Connection: close\r\n`),
    'HTTP/1.1 200 OK',
  ],
  [
    'odd spacing and case the front accepts',
    `POST /ping/sub HTTP/1.1\r\nhost:x\r\nauthorization: \tBearer s3cret \t\r\n` +
      `CONTENT-LENGTH:\t 4  \r\nconnection: Keep-Alive\t\r\n\r\n"ok"`,
    'HTTP/1.1 200 OK',
  ],
];

for (const [name, input, statusLine, count = 1] of served) {
  test(`fast path: ${name} is answered as node:http answers it`, { timeout }, async (t) => {
    const result = await compare(t, [[input, count]]);
    assert.equal(result.fastRequests, 0, 'the front served it, not node:http');
    assert.equal(result.nodeRequests, count);
    assert.equal(result.fast.length, count);
    assert.ok(result.fast[count - 1]?.startsWith(statusLine), result.fast[count - 1]);
    assert.deepEqual(result.fast, result.node);
  });
}

test(
  'a 413 closes the connection and a keep-alive refusal skips its body',
  { timeout },
  async (t) => {
    const running = await start(t, { publishSecret: 's3cret', maxBody: 8 });
    const tooLarge = await Client.connect(t, running.port);
    tooLarge.socket.write(`POST /ping/a HTTP/1.1\r\n${AUTH}Content-Length: 9\r\n\r\n`);
    await tooLarge.closed;
    assert.match(tooLarge.text, /^HTTP\/1\.1 413 [^]*\r\nConnection: close\r\n/);
    // 401 is sent at once; the body that follows is read and dropped, then the next request runs.
    const refused = await Client.connect(t, running.port);
    refused.socket.write(`POST /ping/a HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\n`);
    await refused.read(1);
    refused.socket.write(`"a":1}\n${simplePost('/nope/a', '')}`);
    const [first, second] = await refused.read(2);
    assert.match(first ?? '', /^HTTP\/1\.1 401 /);
    assert.match(
      second ?? '',
      /^HTTP\/1\.1 404 [^]*Unknown action requested \(this listener accepts: ping, close\)$/,
    );
    assert.equal(running.nodeRequests, 0);
  },
);

// [name, request, responses after the simple POST's]
const handedOff: [string, string, number?][] = [
  [
    'a chunked POST',
    `POST /ping/sub HTTP/1.1\r\n${AUTH}Transfer-Encoding: chunked\r\n\r\n4\r\n"ch"\r\n0\r\n\r\n`,
  ],
  [
    'Expect: 100-continue',
    `POST /ping/sub HTTP/1.1\r\n${AUTH}Expect: 100-continue\r\nContent-Length: 4\r\n\r\n"ex"`,
    2,
  ],
  [
    'a tab after the Content-Length digits',
    `POST /ping/sub HTTP/1.1\r\n${AUTH}Content-Length: 4\t\r\n\r\n"tb"`,
  ],
  [
    'a duplicate Content-Length',
    `POST /ping/sub HTTP/1.1\r\n${AUTH}Content-Length: 4\r\nContent-Length: 4\r\n\r\n"dd"`,
  ],
  [
    'Content-Length and Transfer-Encoding',
    `POST /ping/sub HTTP/1.1\r\n${AUTH}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n` +
      `4\r\n"te"\r\n0\r\n\r\n`,
  ],
  ['obs-fold', `POST /ping/sub HTTP/1.1\r\n${AUTH}X-A: b\r\n c\r\nContent-Length: 4\r\n\r\n"of"`],
  [
    'LF-only line ends',
    `POST /ping/sub HTTP/1.1\n${AUTH.replace(/\r/g, '')}Content-Length: 4\n\n"lf"`,
  ],
  [
    'a head over 16 KiB',
    `POST /ping/sub HTTP/1.1\r\n${AUTH}X-Big: ${'b'.repeat(17000)}\r\nContent-Length: 4\r\n\r\n"hh"`,
  ],
  [
    'no Host',
    `POST /ping/sub HTTP/1.1\r\nAuthorization: Bearer s3cret\r\nContent-Length: 4\r\n\r\n"nh"`,
  ],
  ['HTTP/1.0', `POST /ping/sub HTTP/1.0\r\n${AUTH}Content-Length: 4\r\n\r\n"10"`],
  ['a bad token encoding', simplePost('/ping/%zz', '"bt"')],
  ['a space before the colon', `POST /ping/sub HTTP/1.1\r\n${AUTH}Content-Length : 4\r\n\r\n"sp"`],
  ['OPTIONS', `OPTIONS /ping/sub HTTP/1.1\r\nHost: x\r\n${ORIGIN}\r\n`],
  ['GET /', 'GET / HTTP/1.1\r\nHost: x\r\n\r\n'],
  [
    'more input after Connection: close',
    `${simplePost('/ping/sub', '"c1"', `${AUTH}Connection: close\r\n`)}${simplePost('/ping/sub', '"c2"')}`,
  ],
];

for (const [name, request, count = 1] of handedOff) {
  test(
    `hand-off: ${name} after a simple POST goes to node:http and gets its answer`,
    { timeout },
    async (t) => {
      // A simple POST first, answered before the next request is sent (node:http drops the
      // answer to a request followed by a malformed one in the same read): the hand-off
      // happens mid-connection, with the bytes of the request unconsumed.
      const result = await compare(t, [
        [simplePost('/ping/sub', '"first"'), 1],
        [request, 1 + count],
      ]);
      assert.equal(result.fast.length, 1 + count, JSON.stringify(result.fast));
      assert.ok(result.fast[0]?.startsWith('HTTP/1.1 200 OK'), result.fast[0]);
      // Whatever node:http parsed after the first request, it parsed on the fast side too.
      assert.equal(result.fastRequests, result.nodeRequests - 1);
      assert.deepEqual(
        result.fast.map((r) => r.replace(/"uptimeSeconds":\d+/, '')),
        result.node.map((r) => r.replace(/"uptimeSeconds":\d+/, '')),
      );
    },
  );
}

test('several pipelined POSTs in one write are answered in order', { timeout }, async (t) => {
  const running = await start(t, { mode: 'multi' });
  const stream = await openStream(`http://127.0.0.1:${running.port}/poll/p`);
  t.after(() => stream.close());
  const client = await Client.connect(t, running.port);
  const bodies = ['one', 'two', 'three', 'four', 'five', 'six'];
  client.socket.write(
    bodies.map((body, i) => simplePost(i % 2 ? '/ping/p' : '/ping/nobody', body)).join(''),
  );
  const responses = await client.read(bodies.length);
  assert.deepEqual(
    responses.map((r) => r.slice(0, 12)),
    bodies.map((_, i) => (i % 2 ? 'HTTP/1.1 200' : 'HTTP/1.1 404')),
  );
  await stream.waitFor(3);
  assert.deepEqual(
    stream.events.map((e) => e.data),
    ['two', 'four', 'six'],
  );
  assert.equal(running.nodeRequests, 0, 'the front served the stream GET too');
});

test('a POST split byte by byte is read whole', { timeout }, async (t) => {
  const running = await start(t);
  const stream = await openStream(`http://127.0.0.1:${running.port}/poll/s`);
  t.after(() => stream.close());
  const client = await Client.connect(t, running.port);
  client.socket.setNoDelay(true);
  const bytes = Buffer.from(simplePost('/ping/s', 'h\u00e9llo \u20ac', 'Host: x\r\n'));
  for (let i = 0; i < bytes.length; i++) {
    client.socket.write(bytes.subarray(i, i + 1));
    await sleep(1);
  }
  const [response] = await client.read(1);
  assert.match(response ?? '', /^HTTP\/1\.1 200 OK\r\n/);
  await stream.waitFor(1);
  assert.equal(stream.events[0]?.data, 'h\u00e9llo \u20ac');
  assert.equal(running.nodeRequests, 0, 'the front served the stream GET too');
});

test('a keep-alive connection serves POST after POST', { timeout }, async (t) => {
  const running = await start(t);
  const stream = await openStream(`http://127.0.0.1:${running.port}/poll/k`);
  t.after(() => stream.close());
  const client = await Client.connect(t, running.port);
  for (let i = 1; i <= 4; i++) {
    client.socket.write(simplePost('/ping/k', String(i), 'Host: x\r\n'));
    const responses = await client.read(i);
    assert.match(responses[i - 1] ?? '', /^HTTP\/1\.1 200 [^]*Keep-Alive: timeout=5\r\n/);
    await stream.waitFor(i);
    assert.equal(stream.events[i - 1]?.data, String(i));
  }
  assert.equal(client.isClosed, false);
  assert.equal(running.nodeRequests, 0, 'the front served the stream GET too');
});

// [GET request, requests node:http parses]: a simple stream GET stays on the fast path, an
// unusual one (a length, HTTP/1.0) is handed to node:http with the connection.
const getsAfterPosts: [string, number][] = [
  ['GET /poll/h HTTP/1.1\r\nHost: x\r\n\r\n', 0],
  ['GET /poll/h HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n', 1],
  ['GET /poll/h HTTP/1.0\r\nHost: x\r\n\r\n', 1],
];

for (const [request, nodeRequests] of getsAfterPosts) {
  test(
    `POSTs then ${JSON.stringify(request)} on one socket: the stream works (${nodeRequests ? 'node:http' : 'the front'})`,
    { timeout },
    async (t) => {
      const running = await start(t, { mode: 'multi' });
      const client = await Client.connect(t, running.port);
      client.socket.write(
        simplePost('/ping/h', 'a', 'Host: x\r\n') +
          simplePost('/nope/h', 'b', 'Host: x\r\n') +
          request,
      );
      await waitUntil(() => client.text.includes('text/event-stream'), 'the stream head');
      assert.deepEqual(
        client.responses.slice(0, 2).map((r) => r.slice(0, 12)),
        ['HTTP/1.1 404', 'HTTP/1.1 404'],
      );
      assert.equal(running.nodeRequests, nodeRequests);
      await waitUntil(() => running.listener.stats().streams === 1, 'the stream');
      assert.equal((await post(`http://127.0.0.1:${running.port}/ping/h`, 'live')).status, 200);
      await waitUntil(() => client.text.includes('data: live\n\n'), 'the live event');
    },
  );
}

/** A MemoryBroker whose publish answers after a delay taken from `delays`. */
class SlowBroker implements Broker {
  readonly inner = new MemoryBroker({ mode: 'multi' });
  readonly delays: number[] = [];
  subscribe(subscriber: Subscriber, lastEventId: string | undefined) {
    return this.inner.subscribe(subscriber, lastEventId);
  }
  publish(event: Event): Promise<PublishOutcome> {
    const outcome = this.inner.publish(event);
    const delayMs = this.delays.shift() ?? 0;
    return new Promise((resolve) => setTimeout(() => resolve(outcome), delayMs));
  }
  finish(token: string) {
    return this.inner.finish(token);
  }
  presence(token: string) {
    return this.inner.presence(token);
  }
  retry(token: string, ms: number) {
    return this.inner.retry(token, ms);
  }
  stats() {
    return this.inner.stats();
  }
  close() {
    return this.inner.close();
  }
}

test(
  'with an async broker, pipelined POSTs are still answered in order',
  { timeout },
  async (t) => {
    const broker = new SlowBroker();
    // Later requests answer faster: handled at once, their replies would overtake.
    broker.delays.push(60, 40, 20, 0, 0);
    const running = await start(t, { broker, eventClass: StringIdEvent });
    const stream = await openStream(`http://127.0.0.1:${running.port}/poll/q`);
    t.after(() => stream.close());
    const client = await Client.connect(t, running.port);
    const bodies = ['1', '2', '3', '4', '5'];
    client.socket.write(bodies.map((body) => simplePost('/ping/q', body, 'Host: x\r\n')).join(''));
    const responses = await client.read(5);
    await stream.waitFor(5);
    assert.deepEqual(
      stream.events.map((e) => e.data),
      bodies,
    );
    // Each reply names its event's id: the replies came in the order of the events.
    assert.deepEqual(
      responses.map((r) => /"id":"([^"]+)"/.exec(r)?.[1]),
      stream.events.map((e) => e.id),
    );
    assert.equal(running.nodeRequests, 0, 'the front served the stream GET too');
  },
);

test(
  'an idle keep-alive connection is closed after the keep-alive timeout',
  { timeout },
  async (t) => {
    const running = await start(t, { keepAliveTimeoutMs: 300 });
    const client = await Client.connect(t, running.port);
    client.socket.write(simplePost('/ping/i', 'x', 'Host: x\r\n'));
    await client.read(1);
    const answeredAt = Date.now();
    await sleep(150);
    assert.equal(client.isClosed, false, 'closed before the timeout');
    await Promise.race([
      client.closed,
      sleep(2000).then(() => assert.fail('still open 2 s after the reply')),
    ]);
    // answeredAt is taken when the polling reader saw the reply, a few ms after it was sent.
    const idleMs = Date.now() - answeredAt;
    assert.ok(idleMs >= 250, `closed after ${idleMs} ms`);
    assert.equal(running.nodeRequests, 0, 'the front, not node:http, kept the connection');
  },
);

test(
  'a new connection waits for its first request longer than the keep-alive timeout, as in node',
  { timeout },
  async (t) => {
    // node:http gives a connection that has sent nothing yet its headersTimeout (60 s), not the
    // keep-alive timeout: a browser may open one ahead of its first request.
    const running = await start(t, { keepAliveTimeoutMs: 200 });
    const client = await Client.connect(t, running.port);
    await sleep(600);
    assert.equal(client.isClosed, false, 'closed before its first request');
    client.socket.write(simplePost('/ping/f', 'x', 'Host: x\r\n'));
    const [response] = await client.read(1);
    assert.match(response ?? '', /^HTTP\/1\.1 404 /);
    assert.equal(running.nodeRequests, 0);
  },
);

test(
  'a head begun in one read and handed to node:http keeps its headersTimeout from its first byte',
  { timeout },
  async (t) => {
    // node:http starts its header clock when it is given the socket. A head trickled in ("P", a
    // pause, then the rest of a PUT slowly) would otherwise get up to twice the time; node itself
    // only looks every connectionsCheckingInterval (30 s), so without the front's own deadline
    // this connection would still be open at the end of the test.
    const running = await start(t, { keepAliveTimeoutMs: 200 });
    (running.listener.server as http.Server).headersTimeout = 1500;
    const client = await Client.connect(t, running.port);
    const started = Date.now();
    client.socket.write('P');
    await sleep(600);
    client.socket.write('UT /ping/slow HTTP/1.1\r\nHost: x\r\nX-Slow: ');
    const trickle = setInterval(() => client.socket.write('a'), 100);
    t.after(() => clearInterval(trickle));
    await Promise.race([
      client.closed,
      sleep(4000).then(() => assert.fail('still open 4 s after the first byte')),
    ]);
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 1450 && elapsed < 2500, `closed after ${elapsed} ms`);
    assert.match(client.text, /^HTTP\/1\.1 408 Request Timeout\r\n/);
    assert.equal(running.nodeRequests, 0);
  },
);

test('close() ends idle and busy fast-path connections promptly', { timeout }, async (t) => {
  const broker = new SlowBroker();
  broker.delays.push(0, 150);
  const listener = createListener({ broker });
  t.after(() => listener.close());
  const port = Number(new URL(await listener.listen(0, '127.0.0.1')).port);
  const idle = await Client.connect(t, port);
  idle.socket.write(simplePost('/ping/a', 'x', 'Host: x\r\n'));
  await idle.read(1);
  const midBody = await Client.connect(t, port);
  midBody.socket.write(`POST /ping/b HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc`);
  const waiting = await Client.connect(t, port);
  waiting.socket.write(simplePost('/ping/c', 'x', 'Host: x\r\n'));
  await sleep(50);
  const started = Date.now();
  const closing = listener.close();
  await idle.closed;
  assert.ok(Date.now() - started < 300, `the idle connection took ${Date.now() - started} ms`);
  // The pending answer still goes out, with `Connection: close`, then the connection ends.
  const [answer] = await waiting.read(1);
  assert.match(answer ?? '', /^HTTP\/1\.1 404 [^]*\r\nConnection: close\r\n/);
  await waiting.closed;
  await midBody.closed;
  assert.equal(midBody.text, '', 'the request cut short got no answer');
  await closing;
  assert.ok(Date.now() - started < 1500, `close() took ${Date.now() - started} ms`);
});

test(
  'eventsource-listener --no-fast-path leaves every request to node:http',
  { timeout },
  async (t) => {
    // node:http drops the answer to a request followed by a malformed one in the same read; the
    // front answers it before handing the connection over. That shows who read the POST.
    const input = `${simplePost('/ping/a', 'x', 'Host: x\r\n')}POST /ping/a HTTP/1.1\n\n`;
    for (const [args, statusLines] of [
      [[], ['HTTP/1.1 404', 'HTTP/1.1 400']],
      [['--no-fast-path'], ['HTTP/1.1 400']],
    ] as const) {
      const listener = await startListenerProcess([...args]);
      t.after(() => listener.stop());
      assert.match(listener.child.output.stderr, args.length > 0 ? /; no fast path\)/ : /Event\)/);
      const client = await Client.connect(t, listener.port);
      client.socket.write(input);
      await client.closed;
      assert.deepEqual(
        client.responses.map((r) => r.slice(0, 12)),
        statusLines,
      );
    }
  },
);

test(
  'a client that does not read its replies stops the reading of its requests',
  { timeout },
  async (t) => {
    class CountingBroker extends MemoryBroker {
      published = 0;
      override publish(event: Event): PublishOutcome {
        this.published++;
        return super.publish(event);
      }
    }
    const broker = new CountingBroker();
    const running = await start(t, { broker });
    const client = await Client.connect(t, running.port);
    client.socket.pause();
    // Far more replies (~15 MB) than the socket buffers of both sides hold.
    const count = 100000;
    const request = simplePost('/ping/x', 'x', 'Host: x\r\n');
    client.socket.write(request.repeat(count));
    let last = -1;
    while (broker.published !== last) {
      last = broker.published;
      await sleep(300);
    }
    assert.ok(broker.published < count, `all ${count} requests were read`);
    client.socket.resume();
    await waitUntil(() => broker.published === count, 'every request', 15000);
    await waitUntil(
      () => client.text.split('HTTP/1.1 404 ').length - 1 === count,
      `${count} replies`,
      15000,
    );
    assert.equal(running.nodeRequests, 0);
  },
);

test(
  "node:http settings changed on listener.server after listen() apply to the fast path's connections",
  { timeout },
  async (t) => {
    const running = await start(t, { keepAliveTimeoutMs: 200 });
    // Over plain HTTP the listener's server is node:http's.
    const server = running.listener.server as http.Server | undefined;
    assert.ok(server);
    // Raised after listen(), as one does to outlast a load balancer's idle timeout.
    server.keepAliveTimeout = 1500;
    const client = await Client.connect(t, running.port);
    client.socket.write(simplePost('/ping/k', 'x', 'Host: x\r\n'));
    const [response] = await client.read(1);
    assert.match(response ?? '', /\r\nKeep-Alive: timeout=1\r\n/);
    await sleep(700);
    assert.equal(client.isClosed, false, 'closed at the keep-alive timeout given to listen()');
    await client.closed;

    // server.closeIdleConnections() reaches the fast path's idle connections too.
    const idle = await Client.connect(t, running.port);
    idle.socket.write(simplePost('/ping/k', 'x', 'Host: x\r\n'));
    await idle.read(1);
    server.closeIdleConnections();
    await idle.closed;
  },
);

test(
  'with maxRequestsPerSocket or a socket timeout set, node:http serves every request',
  { timeout },
  async (t) => {
    for (const setting of ['maxRequestsPerSocket', 'timeout'] as const) {
      const running = await start(t);
      const server = running.listener.server as http.Server | undefined;
      assert.ok(server);
      // A connection that the front already served, then the setting.
      const client = await Client.connect(t, running.port);
      client.socket.write(simplePost('/ping/m', 'x', 'Host: x\r\n'));
      await client.read(1);
      server[setting] = setting === 'timeout' ? 60000 : 2;
      client.socket.write(simplePost('/ping/m', 'x', 'Host: x\r\n'));
      await client.read(2);
      const fresh = await Client.connect(t, running.port);
      fresh.socket.write(simplePost('/ping/m', 'x', 'Host: x\r\n'));
      const [answer] = await fresh.read(1);
      assert.equal(running.nodeRequests, 2, setting);
      if (setting === 'maxRequestsPerSocket') {
        assert.match(answer ?? '', /\r\nKeep-Alive: timeout=5, max=2\r\n/);
      }
    }
  },
);

/**
 * Writes `input` on one connection to a listener with a stream open on token `sub`, waits for the
 * listener to close the connection, and returns the status lines it answered and the data of the
 * events the stream got (a marker published afterwards shows that every earlier event is in).
 */
async function exchange(
  t: TestContext,
  options: InternalListenerOptions,
  input: string,
): Promise<{ statusLines: string[]; delivered: string[] }> {
  const running = await start(t, { eventClass: StringEvent, mode: 'multi', ...options });
  const stream = await openStream(`http://127.0.0.1:${running.port}/poll/sub`);
  t.after(() => stream.close());
  const client = await Client.connect(t, running.port);
  client.socket.write(input);
  await Promise.race([
    client.closed,
    sleep(3000).then(() => assert.fail(`still open, got ${JSON.stringify(client.text)}`)),
  ]);
  await running.listener.publish('sub', 'ping', 'marker');
  await waitUntil(() => stream.events.some((e) => e.data === 'marker'), 'the marker');
  return {
    statusLines: client.responses.map((r) => r.slice(0, r.indexOf('\r\n'))),
    delivered: stream.events.map((e) => e.data).filter((data) => data !== 'marker'),
  };
}

// [name, listener options, input, node:http's status lines, whether the fast path answers alike]
const acknowledged: [string, InternalListenerOptions, string, string[], boolean][] = [
  [
    'a POST read together with bytes node:http refuses',
    {},
    `${simplePost('/ping/sub', 'hello', 'Host: x\r\n')}garbage\r\n\r\n`,
    ['HTTP/1.1 400 Bad Request'],
    false,
  ],
  [
    'a POST pipelined after a 413 that closes the connection',
    { maxBody: 10 },
    simplePost('/ping/sub', 'eleven byte', 'Host: x\r\n') +
      simplePost('/ping/sub', 'second', 'Host: x\r\n'),
    ['HTTP/1.1 413 Payload Too Large'],
    true,
  ],
  [
    'a POST pipelined after a POST without Host',
    {},
    simplePost('/ping/sub', 'no host', '') + simplePost('/ping/sub', 'second', 'Host: x\r\n'),
    ['HTTP/1.1 400 Bad Request'],
    true,
  ],
  [
    'a POST pipelined after one with Proxy-Connection: close',
    {},
    simplePost('/ping/sub', 'first', 'Host: x\r\nProxy-Connection: close\r\n') +
      simplePost('/ping/sub', 'second', 'Host: x\r\n'),
    ['HTTP/1.1 400 Bad Request'],
    true,
  ],
];

for (const [name, options, input, nodeStatusLines, isAlike] of acknowledged) {
  test(
    `an event is published only if its POST is answered 2xx: ${name}`,
    { timeout },
    async (t) => {
      const node = await exchange(t, { ...options, fastPath: false }, input);
      assert.deepEqual(node.statusLines, nodeStatusLines);
      assert.deepEqual(node.delivered, []);
      const fast = await exchange(t, options, input);
      const answered = fast.statusLines.filter((line) => / 2\d\d /.test(line)).length;
      assert.ok(fast.delivered.length <= answered, JSON.stringify(fast));
      if (isAlike) assert.deepEqual(fast, node);
    },
  );
}

/**
 * Writes each piece (waiting a little after each, so that each is a read of its own), then ends
 * the connection (FIN), to a listener with and without the fast path; returns both sets of
 * responses once the listener has closed the connection.
 */
async function compareEnded(
  t: TestContext,
  pieces: string[],
  options: InternalListenerOptions = {},
): Promise<{ fast: string[]; node: string[]; fastRequests: number }> {
  const results: { responses: string[]; requests: number }[] = [];
  for (const fastPath of [true, false]) {
    const running = await start(t, { publishSecret: 's3cret', ...options, fastPath });
    const client = await Client.connect(t, running.port);
    for (const piece of pieces) {
      client.socket.write(piece);
      await sleep(20);
    }
    client.socket.end();
    await Promise.race([
      client.closed,
      sleep(3000).then(() => assert.fail(`still open, got ${JSON.stringify(client.text)}`)),
    ]);
    results.push({ responses: client.responses, requests: running.nodeRequests });
  }
  const [fast, node] = results as [(typeof results)[0], (typeof results)[0]];
  return { fast: fast.responses, node: node.responses, fastRequests: fast.requests };
}

const BAD_REQUEST = 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n';
// [name, pieces before the FIN, node:http's last response]
const cutShort: [string, string[], string][] = [
  ['part of a request line', ['POST /pi'], BAD_REQUEST],
  ['a head without its end', [`POST /ping/a HTTP/1.1\r\n${AUTH}`], BAD_REQUEST],
  [
    'a body without its end',
    [`POST /ping/a HTTP/1.1\r\n${AUTH}Content-Length: 9\r\n\r\nabc`],
    BAD_REQUEST,
  ],
  [
    'the body of a refused POST without its end',
    [`POST /ping/a HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nabc`],
    BAD_REQUEST,
  ],
  [
    'a head after an answered POST',
    [simplePost('/ping/a', 'x'), 'POST /ping/a HTTP/1.1\r\n'],
    BAD_REQUEST,
  ],
  [
    'a head in the same read as a POST',
    [simplePost('/ping/a', 'x') + 'POST /ping/a HTTP/'],
    BAD_REQUEST,
  ],
  ['nothing after an answered POST', [simplePost('/ping/a', 'x')], 'HTTP/1.1 404 '],
];

for (const [name, pieces, last] of cutShort) {
  test(
    `fast path: the client's FIN after ${name} is answered as node:http answers it`,
    { timeout },
    async (t) => {
      const result = await compareEnded(t, pieces);
      assert.ok(result.node.at(-1)?.startsWith(last), JSON.stringify(result.node));
      assert.deepEqual(result.fast, result.node);
      assert.equal(result.fastRequests, 0, 'the front read it all');
    },
  );
}

test(
  'a POST head trickled into the front is closed at headersTimeout from its first byte',
  { timeout },
  async (t) => {
    // The slowloris hold, once per connection: the front keeps node's headersTimeout for a head
    // it reads. A POST head handed to node:http mid-way gets node's answer at once (a bare line
    // end: 400; past the head limit: 431); a head handed over at its first bytes keeps its first
    // deadline too (Front.watchHead, tested above with a PUT).
    const running = await start(t, { keepAliveTimeoutMs: 200 });
    (running.listener.server as http.Server).headersTimeout = 1500;
    const client = await Client.connect(t, running.port);
    const started = Date.now();
    client.socket.write('POST /ping/slow HTTP/1.1\r\nHost: x\r\n');
    const trickle = setInterval(() => client.socket.write('X-Slow: a\r\n'), 100);
    t.after(() => clearInterval(trickle));
    await Promise.race([
      client.closed,
      sleep(4000).then(() => assert.fail('still open 4 s after the first byte')),
    ]);
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 1450 && elapsed < 2500, `closed after ${elapsed} ms`);
    assert.match(client.text, /^HTTP\/1\.1 408 Request Timeout\r\n/);
    assert.equal(running.nodeRequests, 0);
  },
);

/** A simple POST whose head is exactly `size` bytes long (request line to the empty line). */
function postWithHead(size: number, path = '/ping/sub', body = '"x"'): string {
  const start = `POST ${path} HTTP/1.1\r\n${AUTH}Content-Length: ${body.length}\r\nX-Pad: `;
  return `${start}${'p'.repeat(size - start.length - 4)}\r\n\r\n${body}`;
}

test(
  "the front's head limit is node's: the server's maxHeaderSize when set",
  { timeout },
  async (t) => {
    // [server.maxHeaderSize, head size, whether the front serves it]
    const cases: [number, number, boolean][] = [
      [32768, 20000, true],
      [32768, 32768, true],
      [1024, 1024, true],
      [1024, 1025, false],
      [1024, 2048, false],
    ];
    for (const [maxHeaderSize, size, isServed] of cases) {
      const results = [];
      for (const fastPath of [true, false]) {
        const running = await start(t, {
          eventClass: JSONEvent,
          publishSecret: 's3cret',
          fastPath,
        });
        // node reads it for each new connection; so does the front.
        (running.listener.server as http.Server & { maxHeaderSize: number }).maxHeaderSize =
          maxHeaderSize;
        const client = await Client.connect(t, running.port);
        client.socket.write(postWithHead(size));
        results.push({ responses: await client.read(1), requests: running.nodeRequests });
      }
      const [fast, node] = results as [(typeof results)[0], (typeof results)[0]];
      const what = `${size} bytes with maxHeaderSize ${maxHeaderSize}`;
      assert.deepEqual(fast.responses, node.responses, what);
      assert.equal(fast.requests, isServed ? 0 : node.requests, what);
    }
  },
);

test("the front's head limit follows node's --max-http-header-size", { timeout }, async (t) => {
  // The front answers a simple POST before handing a malformed request after it (in the same
  // write) to node:http, which alone would answer only 400: the first status line shows who
  // read the POST with its 20 000-byte head.
  const input = `${postWithHead(20000, '/ping/a', 'x').replace(AUTH, 'Host: x\r\n')}POST /ping/a HTTP/1.1\n\n`;
  for (const [env, statusLines] of [
    [{}, ['HTTP/1.1 431']],
    [{ NODE_OPTIONS: '--max-http-header-size=32768' }, ['HTTP/1.1 404', 'HTTP/1.1 400']],
  ] as const) {
    const listener = await startListenerProcess([], env);
    t.after(() => listener.stop());
    const client = await Client.connect(t, listener.port);
    client.socket.write(input);
    await client.closed;
    assert.deepEqual(
      client.responses.map((r) => r.slice(0, 12)),
      statusLines,
      JSON.stringify(env),
    );
  }
});

// Event streams on the fast path: simple `GET /poll/<token>` requests are served by the front,
// their heads and bodies byte for byte what node:http writes.

const JWT_SECRET = 'a-test-secret-that-is-long-enough-32';
const streamGet = (path: string, headers = ''): string =>
  `GET ${path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n${headers}\r\n`;

/** What one listener wrote on a connection, with `Date` blanked, and what node:http parsed. */
interface StreamRun {
  text: string;
  nodeRequests: number;
}

/**
 * Runs `script` against a listener with and without the fast path (same options), on a raw
 * connection opened after `setup`, and returns what each wrote there.
 */
async function compareRuns(
  t: TestContext,
  options: InternalListenerOptions,
  script: (running: Running, client: Client) => Promise<void>,
  setup: (running: Running) => Promise<void> = async () => {},
): Promise<{ fast: StreamRun; node: StreamRun }> {
  const runs: StreamRun[] = [];
  for (const fastPath of [true, false]) {
    const running = await start(t, { ...options, fastPath });
    await setup(running);
    const before = running.nodeRequests;
    const client = await Client.connect(t, running.port);
    await script(running, client);
    runs.push({
      text: client.text.replace(/\r\nDate: [^\r]*/g, '\r\nDate: -'),
      nodeRequests: running.nodeRequests - before,
    });
    client.socket.destroy();
  }
  const [fast, node] = runs as [StreamRun, StreamRun];
  return { fast, node };
}

/** Waits until `client` has read `text`. */
function readUntil(client: Client, text: string): Promise<void> {
  return waitUntil(() => client.text.includes(text), JSON.stringify(text));
}

// [name, options, request, what to wait for, token to publish to once it is there, setup]
const streamCases: [
  string,
  InternalListenerOptions,
  string,
  string,
  (string | undefined)?,
  ((running: Running) => Promise<void>)?,
][] = [
  ['a stream and a live event', { mode: 'multi' }, streamGet('/poll/a'), 'data: live', 'a'],
  [
    'a stream with CORS and Connection: close',
    { cors: 'https://app.example' },
    streamGet('/poll/a', `${ORIGIN}Connection: close\r\n`),
    'data: live',
    'a',
  ],
  [
    '423 for a token already subscribed',
    {},
    streamGet('/poll/taken'),
    'Target is already connected',
    undefined,
    async (running) => {
      const first = await openStream(`http://127.0.0.1:${running.port}/poll/taken`);
      running.listener.server?.once('close', () => first.close());
      await waitUntil(() => running.listener.stats().streams === 1, 'the first stream');
    },
  ],
  [
    '503 past maxConnections',
    { maxConnections: 1, mode: 'multi' },
    streamGet('/poll/m', ORIGIN),
    'Too many connections',
    undefined,
    async (running) => {
      const first = await openStream(`http://127.0.0.1:${running.port}/poll/m`);
      running.listener.server?.once('close', () => first.close());
      await waitUntil(() => running.listener.stats().streams === 1, 'the first stream');
    },
  ],
  ['401 without a JWT', { jwt: { secret: JWT_SECRET } }, streamGet('/poll/j'), 'Unauthorized'],
];

for (const [name, options, request, until, publishTo, setup] of streamCases) {
  test(`fast path: ${name} is written as node:http writes it`, { timeout }, async (t) => {
    const { fast, node } = await compareRuns(
      t,
      options,
      async (running, client) => {
        client.socket.write(request);
        await readUntil(client, '\r\n\r\n');
        if (publishTo !== undefined) await running.listener.publish(publishTo, 'ping', 'live');
        await readUntil(client, until);
      },
      setup,
    );
    assert.equal(fast.nodeRequests, 0, 'the front served it, not node:http');
    assert.equal(node.nodeRequests, 1);
    assert.equal(fast.text, node.text);
  });
}

test(
  'fast path: 403 and 200 with JWTs are written as node:http writes them',
  { timeout },
  async (t) => {
    const { signAccessToken } = await import('../../src/listener/auth.js');
    const other = await signAccessToken({ subscribe: ['other'] }, JWT_SECRET);
    const mine = await signAccessToken({ subscribe: ['mine'] }, JWT_SECRET);
    const { fast, node } = await compareRuns(
      t,
      { jwt: { secret: JWT_SECRET } },
      async (_, client) => {
        client.socket.write(streamGet('/poll/mine', `Authorization: Bearer ${other}\r\n`));
        await readUntil(client, 'Forbidden');
        client.socket.write(streamGet(`/poll/mine?access_token=${mine}`));
        await readUntil(client, 'text/event-stream');
      },
    );
    assert.match(fast.text, /^HTTP\/1\.1 403 [^]*\r\n\r\nForbidden[^]*HTTP\/1\.1 200 OK\r\n/);
    assert.equal(fast.nodeRequests, 0);
    assert.equal(fast.text, node.text);
  },
);

for (const [where, resume] of [
  ['Last-Event-ID', (id: string) => streamGet('/poll/r', `Last-Event-ID: ${id}\r\n`)],
  ['?lastEventId=', (id: string) => streamGet(`/poll/r?lastEventId=${encodeURIComponent(id)}`)],
] as const) {
  test(
    `fast path: a replay after ${where} is written as node:http writes it`,
    { timeout },
    async (t) => {
      let firstId = '';
      const { fast, node } = await compareRuns(
        t,
        { eventClass: StringIdEvent },
        async (_, client) => {
          client.socket.write(resume(firstId));
          await readUntil(client, 'data: three');
        },
        async (running) => {
          // Three events kept in the token's history after its first stream went away.
          const first = await openStream(`http://127.0.0.1:${running.port}/poll/r`);
          for (const data of ['one', 'two', 'three'])
            await running.listener.publish('r', 'ping', data);
          await first.waitFor(3);
          firstId = first.events[0]?.id ?? '';
          first.close();
          await waitUntil(() => running.listener.stats().streams === 0, 'the first stream closed');
        },
      );
      assert.doesNotMatch(fast.text, /data: one/);
      assert.match(fast.text, /data: two[^]*data: three/);
      assert.equal(fast.nodeRequests, 0);
      // The ids are the time of publishing: the two listeners published at different times.
      const blankIds = (text: string): string => text.replace(/\nid: \d+\n/g, '\nid: -\n');
      assert.equal(blankIds(fast.text), blankIds(node.text));
    },
  );
}

test(
  'a front stream ends with its last chunk, then its connection serves the next request',
  { timeout },
  async (t) => {
    const { fast, node } = await compareRuns(
      t,
      { publishSecret: 's3cret' },
      async (running, client) => {
        client.socket.write(streamGet('/poll/e'));
        await readUntil(client, 'text/event-stream');
        // Pipelined behind the stream: it waits for the stream's end, as on node:http.
        client.socket.write(simplePost('/nope/e', 'x'));
        await sleep(50);
        assert.equal(client.responses.length, 0);
        await running.listener.publish('e', 'close');
        await client.read(2);
        client.socket.write(simplePost('/ping/e', 'after'));
        await client.read(3);
        assert.equal(client.isClosed, false);
      },
    );
    assert.match(fast.text, /\r\n0\r\n\r\nHTTP\/1\.1 404 [^]*HTTP\/1\.1 202 /);
    assert.equal(fast.nodeRequests, 0);
    assert.equal(fast.text, node.text);
  },
);

test(
  "a front stream outlives node's headers, request and keep-alive timeouts, as on node:http",
  { timeout },
  async (t) => {
    const { fast, node } = await compareRuns(t, { mode: 'multi' }, async (running, client) => {
      const server = running.listener.server as http.Server;
      server.keepAliveTimeout = 100;
      server.headersTimeout = 150;
      server.requestTimeout = 150;
      client.socket.write(streamGet('/poll/l'));
      await readUntil(client, 'text/event-stream');
      await sleep(700);
      await running.listener.publish('l', 'ping', 'still here');
      await readUntil(client, 'data: still here');
      assert.equal(client.isClosed, false);
    });
    assert.equal(fast.nodeRequests, 0);
    assert.equal(fast.text, node.text);
  },
);

test('a client that ends its side ends its front stream and connection', { timeout }, async (t) => {
  for (const fastPath of [true, false]) {
    const running = await start(t, { fastPath });
    const client = await Client.connect(t, running.port);
    client.socket.write(streamGet('/poll/f'));
    await readUntil(client, 'text/event-stream');
    assert.equal(running.listener.stats().streams, 1);
    client.socket.end();
    await client.closed;
    await waitUntil(() => running.listener.stats().streams === 0, 'the stream closed');
    assert.equal(running.nodeRequests, fastPath ? 0 : 1);
  }
});

test(
  'a stream GET with input pipelined in the same read goes to node:http',
  { timeout },
  async (t) => {
    const { fast, node } = await compareRuns(t, {}, async (_, client) => {
      client.socket.write(streamGet('/poll/g') + simplePost('/nope/g', 'x', 'Host: x\r\n'));
      await readUntil(client, 'text/event-stream');
      await sleep(50);
    });
    assert.equal(fast.nodeRequests, 2);
    assert.equal(fast.text, node.text);
  },
);

test(
  'a stream GET pipelined behind another stream ends when the connection closes',
  { timeout },
  async (t) => {
    // node:http subscribes it at once, its response queued behind the first: that response emits
    // no 'close' of its own when the connection closes first, and its stream stayed subscribed.
    for (const fastPath of [true, false]) {
      const running = await start(t, { mode: 'multi', fastPath });
      const client = await Client.connect(t, running.port);
      client.socket.write(streamGet('/poll/first') + streamGet('/poll/queued'));
      await waitUntil(() => running.listener.stats().streams === 2, 'both streams');
      client.socket.end();
      await client.closed;
      await waitUntil(() => running.listener.stats().streams === 0, 'no stream left');
    }
  },
);

test(
  'a front stream whose reader stops is cut off past maxBuffer, as on node:http',
  { timeout },
  async (t) => {
    for (const fastPath of [true, false]) {
      const running = await start(t, { fastPath, maxBuffer: 64 * 1024 });
      const client = await Client.connect(t, running.port);
      client.socket.write(streamGet('/poll/slow'));
      await readUntil(client, 'text/event-stream');
      client.socket.pause();
      const big = 'x'.repeat(32 * 1024);
      // The kernel's buffers take some megabytes first; then the listener's own buffer fills.
      for (let i = 0; i < 4000 && running.listener.stats().subscribersCutOff === 0; i++) {
        await running.listener.publish('slow', 'ping', big);
      }
      assert.equal(running.listener.stats().subscribersCutOff, 1);
      await client.closed;
      assert.equal(running.nodeRequests, fastPath ? 0 : 1);
    }
  },
);

// [name, options, request, whether the bodies are the same on both paths]: the operator routes are
// answered by the front too, so that a scrape does not run node:http's request code in a process
// whose hot paths only saw the front's.
const operatorCases: [string, InternalListenerOptions, string, boolean][] = [
  ['presence of a token', {}, streamGet('/stats/a'), true],
  ['presence with Connection: close', {}, streamGet('/stats/a', 'Connection: close\r\n'), true],
  ['/stats without the publish secret', { publishSecret: 's3cr3t' }, streamGet('/stats'), true],
  ['/stats', {}, streamGet('/stats'), false],
  ['/metrics', { metrics: true }, streamGet('/metrics'), false],
];

for (const [name, options, request, isSameBody] of operatorCases) {
  test(`fast path: ${name} is answered as node:http answers it`, { timeout }, async (t) => {
    const { fast, node } = await compareRuns(t, options, async (_running, client) => {
      client.socket.write(request);
      await waitUntil(() => client.responses.length === 1, 'the answer');
    });
    assert.equal(fast.nodeRequests, 0, 'the front served it, not node:http');
    assert.equal(node.nodeRequests, 1);
    if (isSameBody) {
      assert.equal(fast.text, node.text);
    } else {
      // Uptime, memory and CPU figures differ between two listeners: the heads must not.
      const head = (text: string) =>
        text.slice(0, text.indexOf('\r\n\r\n')).replace(/\r\nContent-Length: \d+/, '');
      assert.equal(head(fast.text), head(node.text));
      assert.match(fast.text, /^HTTP\/1\.1 200 OK\r\n/);
      assert.match(fast.text, /"streams":0|eventsource_streams 0/);
    }
  });
}

test('a scrape on a keep-alive connection leaves it on the fast path', { timeout }, async (t) => {
  const running = await start(t, { metrics: true, mode: 'multi' });
  const client = await Client.connect(t, running.port);
  client.socket.write(streamGet('/metrics'));
  await waitUntil(() => client.responses.length === 1, 'the scrape');
  client.socket.write(simplePost('/ping/k', 'a', 'Host: x\r\n'));
  await waitUntil(() => client.responses.length === 2, 'the POST');
  assert.match(client.responses[0] ?? '', /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(client.responses[1] ?? '', /^HTTP\/1\.1 404 /);
  assert.equal(running.nodeRequests, 0);
});
