/**
 * `--redis-wait-replicas` (issue 20): a POST is answered 2xx only once replicas confirmed its event
 * (Redis `WAIT`, one per turn of the event loop); one they do not confirm in time is answered `503`
 * with `Retry-After`, is kept and delivered, and says so. Also: ids stay above every id given out,
 * 503s included, after the broker reconnects to a server whose counter is older.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { createListener } from '../../src/listener/listener.js';
import { StringIdEvent } from '../../src/events.js';
import { createRedisBroker } from '../../src/listener/redis/broker.js';
import { httpRequest, openStream, type SseStream } from '../helpers/net.js';
import { startListenerProcess } from '../helpers/process.js';
import { askRedis, redisSkipReason, startRedis, type RedisServer } from '../helpers/redis.js';

const skip = redisSkipReason();

/** A primary and `count` replicas in sync with it. */
async function replicated(
  t: TestContext,
  count: number,
): Promise<{ primary: RedisServer; replicas: RedisServer[] }> {
  const primary = await startRedis();
  t.after(() => primary.close());
  const replicas: RedisServer[] = [];
  for (let i = 0; i < count; i++) {
    const replica = await startRedis({ replicaOf: primary.port });
    t.after(() => replica.close());
    replicas.push(replica);
  }
  const deadline = Date.now() + 10000;
  for (;;) {
    const info = await askRedis(primary.port, 'INFO', 'replication');
    if ((info.match(/state=online/g) ?? []).length === count) break;
    assert.ok(Date.now() < deadline, 'the replicas are in sync within 10 s');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { primary, replicas };
}

async function stream(t: TestContext, url: string): Promise<SseStream> {
  const opened = await openStream(url);
  t.after(() => opened.close());
  assert.equal(opened.response.statusCode, 200);
  return opened;
}

/** Calls of one command Redis counted (`INFO commandstats`). */
async function calls(redis: Redis, command: string): Promise<number> {
  const info = await redis.info('commandstats');
  let total = 0;
  for (const [, n] of info.matchAll(new RegExp(`cmdstat_${command}:calls=(\\d+)`, 'g'))) {
    total += Number(n);
  }
  return total;
}

test(
  'publishes made together wait for their replicas with one WAIT, and the replica has each event once they are answered',
  { skip, timeout: 20000 },
  async (t) => {
    const {
      primary,
      replicas: [replica],
    } = await replicated(t, 1);
    assert.ok(replica);
    const broker = await createRedisBroker(primary.url, { mode: 'multi', waitReplicas: 1 });
    const listener = createListener({ broker, eventClass: StringIdEvent, keepalive: 0 });
    const url = await listener.listen(0, '127.0.0.1');
    t.after(() => listener.close());
    const onPrimary = new Redis(primary.url);
    const onReplica = new Redis(replica.url);
    t.after(() => {
      onPrimary.disconnect();
      onReplica.disconnect();
    });
    await stream(t, `${url}poll/a`);
    const waitsBefore = await calls(onPrimary, 'wait');
    const outcomes = await Promise.all(
      Array.from({ length: 150 }, (_, i) => listener.publish('a', 'ping', `${i}`)),
    );
    // The three script calls (64 + 64 + 22) answer in one or a few turns: as many WAITs at most.
    const waits = (await calls(onPrimary, 'wait')) - waitsBefore;
    assert.ok(waits >= 1 && waits <= 3, `${waits} WAIT(s) for 150 publishes`);
    assert.ok(outcomes.every((outcome) => outcome.status === 200));
    const kept = (await onReplica.xrange('eventsource:h:a', '-', '+')) as [string, string[]][];
    const keptIds = kept.map(([, fields]) => fields[fields.indexOf('i') + 1]);
    assert.deepEqual(
      keptIds,
      outcomes.map((outcome) => outcome.id),
    );
    const stats = listener.stats();
    assert.equal(stats.redisWaitReplicas, 1);
    assert.equal(stats.redisNotAcknowledged, 0);
    assert.equal(stats.redisMode, 'standalone');
    assert.equal(stats.redisRole, 'master');
  },
);

test(
  'a stalled replica (SIGSTOP) makes POSTs answer 503 "Event not acknowledged" after the wait timeout; the event is delivered and keeps its id; after SIGCONT POSTs answer 2xx',
  { skip, timeout: 30000 },
  async (t) => {
    const {
      primary,
      replicas: [replica],
    } = await replicated(t, 1);
    assert.ok(replica);
    const listener = await startListenerProcess([
      '--redis',
      primary.url,
      '-k',
      '0',
      '-i',
      '--redis-wait-replicas',
      '1',
      '--redis-wait-timeout',
      '500',
    ]);
    t.after(() => listener.stop());
    assert.match(listener.child.output.stderr, /redis-wait-replicas 1 \(500 ms\)/);
    const onListener = await stream(t, `${listener.url}/poll/stall`);
    const post = (body: string) =>
      httpRequest(`${listener.url}/ping/stall`, { method: 'POST', body });
    // The replica may still be catching up on a busy machine: POST until one is confirmed (the
    // events of the 503s before it are delivered too, which the check below allows for).
    let beforeCount = 0;
    const ready = Date.now() + 10000;
    for (;;) {
      beforeCount++;
      const first = await post('before');
      if (first.status === 200) break;
      assert.equal(first.status, 503, first.body);
      assert.ok(Date.now() < ready, 'a POST is confirmed within 10 s');
    }

    replica.signal('SIGSTOP');
    const startedAt = Date.now();
    const refused = await post('stalled');
    const elapsed = Date.now() - startedAt;
    assert.equal(refused.status, 503, refused.body);
    assert.equal(refused.headers['retry-after'], '1');
    const match =
      /^Event not acknowledged: id (\d+) was stored, but 0 of 1 replica\(s\) confirmed it within 500 ms; it may have been delivered, and may be lost if the Redis primary fails$/.exec(
        refused.body,
      );
    assert.ok(match, refused.body);
    // Not hanging: the wait timeout, plus a margin for a busy machine.
    assert.ok(elapsed >= 450 && elapsed < 3000, `answered after ${elapsed} ms`);
    // Decided: the event is not taken back. The subscriber has it, with the id the 503 names.
    const events = (await onListener.waitFor(beforeCount + 1)).slice(beforeCount - 1);
    assert.deepEqual(
      events.map((event) => [event.data, event.id]),
      [
        ['before', events[0]?.id],
        ['stalled', match[1]],
      ],
    );

    replica.signal('SIGCONT');
    const deadline = Date.now() + 10000;
    let resumed;
    do {
      assert.ok(Date.now() < deadline, 'POSTs answer 2xx within 10 s of SIGCONT');
      resumed = await post('after');
    } while (resumed.status !== 200);
    const stats = JSON.parse((await httpRequest(`${listener.url}/stats`)).body);
    assert.ok(stats.redisNotAcknowledged >= 1);
    const all = onListener.events;
    for (let i = 1; i < all.length; i++) {
      assert.ok(BigInt(all[i]?.id as string) > BigInt(all[i - 1]?.id as string));
    }
  },
);

test(
  'after a reconnect to a server whose id counter is older, ids stay above every id given out, 503s included',
  { skip, timeout: 20000 },
  async (t) => {
    // No replica at all: every POST waits for one in vain and is answered 503 with its id.
    const server = await startRedis();
    t.after(() => server.close());
    const broker = await createRedisBroker(server.url, { waitReplicas: 1, waitTimeoutMs: 100 });
    const listener = createListener({ broker, eventClass: StringIdEvent, keepalive: 0 });
    const url = await listener.listen(0, '127.0.0.1');
    t.after(() => listener.close());
    await stream(t, `${url}poll/floor`);
    const idOf = async (): Promise<bigint> => {
      const reply = await httpRequest(`${url}ping/floor`, { method: 'POST', body: 'x' });
      assert.equal(reply.status, 503);
      return BigInt(/id (\d+)/.exec(reply.body)?.[1] ?? '0');
    };
    const first = await idOf();
    // As a replica promoted before it received the last writes would: the counter goes back.
    const admin = new Redis(server.url);
    t.after(() => admin.disconnect());
    await admin.set('eventsource:seq', String(first - 1000n));
    await admin.call('CLIENT', 'KILL', 'TYPE', 'normal');
    const deadline = Date.now() + 10000;
    // Reconnected when both connections are back (the killed ones are gone once KILL answers).
    const connected = async () =>
      ((await admin.client('LIST')) as string).match(/name=eventsource-listener /g)?.length ?? 0;
    while ((await connected()) < 2 || listener.stats().redis !== 'ready') {
      assert.ok(Date.now() < deadline, 'the broker reconnects within 10 s');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.ok((await idOf()) > first);
  },
);
