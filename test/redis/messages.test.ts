/**
 * The Redis broker's channel messages keep their bytes (`e<seq>\n<block>`, `r<seq>\n<ms>`,
 * `f<seq>\n`, `t<seq>\n<owner>`): processes sharing one Redis must read each other's messages.
 * Read off a real redis-server by a plain pub/sub client, and decoded by `decodeMessage`.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { StringIdEvent } from '../../src/events.js';
import { createListener, type Listener } from '../../src/listener/listener.js';
import { createRedisBroker, type RedisBroker } from '../../src/listener/redis/broker.js';
import { decodeMessage, MessageKind } from '../../src/listener/redis/messages.js';
import { openStream, type SseStream } from '../helpers/net.js';
import { redisSkipReason, startRedis } from '../helpers/redis.js';

const skip = redisSkipReason();

/** A listener process of its own, in this process: its own broker and connections. */
async function start(
  t: TestContext,
  redisUrl: string,
  mode: 'multi' | 'takeover',
): Promise<{ url: string; listener: Listener; broker: RedisBroker }> {
  const broker = await createRedisBroker(redisUrl, { mode });
  const listener = createListener({ broker, keepalive: 0, eventClass: StringIdEvent });
  const url = await listener.listen(0, '127.0.0.1');
  t.after(() => listener.close());
  return { url, listener, broker };
}

async function stream(t: TestContext, url: string): Promise<SseStream> {
  const opened = await openStream(url);
  t.after(() => opened.close());
  assert.equal(opened.response.statusCode, 200);
  return opened;
}

/** Every message published on a token channel, as published. */
async function watchChannels(t: TestContext, redisUrl: string): Promise<string[]> {
  const watcher = new Redis(redisUrl);
  t.after(() => watcher.disconnect());
  const messages: string[] = [];
  watcher.on('pmessage', (_pattern: string, _channel: string, message: string) =>
    messages.push(message),
  );
  await watcher.psubscribe('eventsource:c:*');
  return messages;
}

async function waitForCount(messages: string[], n: number): Promise<void> {
  const deadline = Date.now() + 10000;
  while (messages.length < n) {
    if (Date.now() > deadline) throw new Error(`timed out with ${JSON.stringify(messages)}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

test('decodeMessage reads the kind letter, the sequence number and the payload', () => {
  const cases: [string, MessageKind, string][] = [
    [
      'e1796532320888365\nid: 1796532320888365\nevent: ping\ndata: a\n\n',
      MessageKind.Event,
      'id: 1796532320888365\nevent: ping\ndata: a\n\n',
    ],
    ['f1796532320888369\n', MessageKind.Finish, ''],
    ['r1796532320888368\n5000', MessageKind.Retry, '5000'],
    ['t1796532320888370\nAbCdEfGh:3', MessageKind.Takeover, 'AbCdEfGh:3'],
  ];
  for (const [text, kind, payload] of cases) {
    const message = decodeMessage(text);
    assert.equal(message.kind, kind);
    assert.equal(message.seq, Number(text.slice(1, text.indexOf('\n'))));
    assert.equal(message.payload, payload);
    assert.equal(message.chunk, undefined);
  }
});

test(
  'events, retry, close and takeover go over the channel as e/r/f/t messages with increasing numbers',
  { skip, timeout: 20000 },
  async (t) => {
    const server = await startRedis();
    t.after(() => server.close());
    const messages = await watchChannels(t, server.url);
    const a = await start(t, server.url, 'multi');
    const b = await start(t, server.url, 'multi');
    // The subscriber is on A and the POSTs go to B, so B's script publishes every one of them.
    const onA = await stream(t, `${a.url}poll/a`);
    assert.equal((await b.listener.publish('a', 'ping', 'hello\nworld')).status, 200);
    assert.equal((await b.listener.publish('a', 'retry', '5000')).status, 200);
    assert.equal((await b.listener.publish('a', 'close')).status, 200);
    await onA.ended;

    const c = await start(t, server.url, 'takeover');
    const d = await start(t, server.url, 'takeover');
    const onC = await stream(t, `${c.url}poll/t`);
    await stream(t, `${d.url}poll/t`);
    await onC.ended;

    await waitForCount(messages, 4);
    const [event, retry, finish, takeover] = messages as [string, string, string, string];
    assert.match(event, /^e(\d+)\nid: \1\nevent: ping\ndata: hello\ndata: world\n\n$/);
    assert.match(retry, /^r\d+\n5000$/);
    assert.match(finish, /^f\d+\n$/);
    assert.match(takeover, new RegExp(`^t\\d+\\n${d.broker.processId}:\\d+$`));
    const seqs = messages.map((message) => decodeMessage(message).seq);
    assert.deepEqual(
      seqs,
      [...seqs].sort((x, y) => x - y),
    );
    assert.deepEqual(
      onA.events.map((e) => e.data),
      ['hello\nworld'],
    );
  },
);
