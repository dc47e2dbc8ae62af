/**
 * The Redis broker sends the publishes of one turn of the event loop as one script call: checked
 * in-process against a real redis-server, with Redis's own command statistics as the witness.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { StringIdEvent } from '../../src/events.js';
import { createListener, type Listener } from '../../src/listener/listener.js';
import { createRedisBroker } from '../../src/listener/redis/broker.js';
import { openStream, type SseStream } from '../helpers/net.js';
import { redisSkipReason, startRedis } from '../helpers/redis.js';

const skip = redisSkipReason();

async function setup(t: TestContext): Promise<{ url: string; listener: Listener; redis: Redis }> {
  const server = await startRedis();
  t.after(() => server.close());
  const broker = await createRedisBroker(server.url, { mode: 'multi' });
  const listener = createListener({ broker, keepalive: 0 });
  const url = await listener.listen(0, '127.0.0.1');
  t.after(() => listener.close());
  const redis = new Redis(server.url);
  t.after(() => redis.disconnect());
  return { url, listener, redis };
}

async function stream(t: TestContext, url: string): Promise<SseStream> {
  const opened = await openStream(url);
  t.after(() => opened.close());
  assert.equal(opened.response.statusCode, 200);
  return opened;
}

/** How many scripts Redis ran (each publish batch is one; the first on a connection is an EVAL). */
async function scriptCalls(redis: Redis): Promise<number> {
  const info = await redis.info('commandstats');
  let calls = 0;
  for (const [, n] of info.matchAll(/cmdstat_eval(?:sha)?:calls=(\d+)/g)) calls += Number(n);
  return calls;
}

test(
  'publishes made together reach Redis as one script call per 64, in order',
  { skip, timeout: 20000 },
  async (t) => {
    const { url, listener, redis } = await setup(t);
    const onA = await stream(t, `${url}poll/a`);
    const onB = await stream(t, `${url}poll/b`);
    const before = await scriptCalls(redis);
    const outcomes = await Promise.all(
      Array.from({ length: 150 }, (_, i) =>
        listener.publish(i % 3 === 0 ? 'b' : 'a', 'ping', `${i}`),
      ),
    );
    assert.equal(await scriptCalls(redis), before + 3);
    assert.ok(outcomes.every((outcome) => outcome.status === 200));
    const expectedA = outcomes.map((_, i) => `${i}`).filter((_, i) => i % 3 !== 0);
    const expectedB = outcomes.map((_, i) => `${i}`).filter((_, i) => i % 3 === 0);
    assert.deepEqual(
      (await onA.waitFor(100)).map((event) => event.data),
      expectedA,
    );
    assert.deepEqual(
      (await onB.waitFor(50)).map((event) => event.data),
      expectedB,
    );
    // Redis allocated the ids in the order the publishes were made.
    const ids = outcomes.map((outcome) => Number(outcome.id));
    assert.deepEqual(
      ids,
      [...ids].sort((x, y) => x - y),
    );
  },
);

test(
  'an event that fails after Redis numbered it leaves the ids of the rest of its batch right',
  { skip, timeout: 20000 },
  async (t) => {
    const server = await startRedis();
    t.after(() => server.close());
    const broker = await createRedisBroker(server.url, { mode: 'multi' });
    const listener = createListener({ broker, keepalive: 0, eventClass: StringIdEvent });
    const url = await listener.listen(0, '127.0.0.1');
    t.after(() => listener.close());
    const redis = new Redis(server.url);
    t.after(() => redis.disconnect());
    const good = await stream(t, `${url}poll/good`);
    await stream(t, `${url}poll/broken`);
    // A history key of the wrong type: the script takes the event's number, then fails to keep it.
    await redis.set('eventsource:h:broken', 'not a stream');
    const outcomes = await Promise.allSettled([
      listener.publish('good', 'ping', 'first'),
      listener.publish('broken', 'ping', 'lost'),
      listener.publish('good', 'ping', 'second'),
      listener.publish('good', 'ping', 'third'),
    ]);
    assert.deepEqual(
      outcomes.map((outcome) => outcome.status),
      ['fulfilled', 'rejected', 'fulfilled', 'fulfilled'],
    );
    assert.match((outcomes[1] as PromiseRejectedResult).reason.message, /WRONGTYPE/);
    const ids = [0, 2, 3].map(
      (i) => (outcomes[i] as PromiseFulfilledResult<{ id: string }>).value.id,
    );
    // The lost event's number is skipped, not given to the next event.
    assert.equal(Number(ids[1]), Number(ids[0]) + 2);
    assert.equal(Number(ids[2]), Number(ids[1]) + 1);
    assert.deepEqual(
      (await good.waitFor(3)).map((event) => [event.id, event.data]),
      [
        [ids[0], 'first'],
        [ids[1], 'second'],
        [ids[2], 'third'],
      ],
    );
  },
);

test('a close made after publishes still comes after them', { skip, timeout: 20000 }, async (t) => {
  const { url, listener } = await setup(t);
  const subscriber = await stream(t, `${url}poll/c`);
  const made = [1, 2, 3].map((i) => listener.publish('c', 'ping', `${i}`));
  // Finishing does not wait for the batch's turn: it sends the batch first.
  made.push(listener.publish('c', 'close'));
  await Promise.all(made);
  await subscriber.ended;
  assert.deepEqual(
    subscriber.events.map((event) => event.data),
    ['1', '2', '3'],
  );
});

test(
  'an event whose commands fail answers alone; the rest of its batch is stored',
  { skip, timeout: 20000 },
  async (t) => {
    const { url, listener, redis } = await setup(t);
    const good = await stream(t, `${url}poll/good`);
    // A token hash of the wrong type makes every command on it fail inside the script.
    await redis.set('eventsource:m:broken', 'not a hash');
    const [first, broken, last] = await Promise.allSettled([
      listener.publish('good', 'ping', 'first'),
      listener.publish('broken', 'ping', 'lost'),
      listener.publish('good', 'ping', 'last'),
    ]);
    assert.equal(first.status, 'fulfilled');
    assert.equal(last.status, 'fulfilled');
    assert.equal(broken.status, 'rejected');
    assert.equal((broken as PromiseRejectedResult).reason.status, 503);
    assert.match((broken as PromiseRejectedResult).reason.message, /WRONGTYPE/);
    assert.deepEqual(
      (await good.waitFor(2)).map((event) => event.data),
      ['first', 'last'],
    );
  },
);
