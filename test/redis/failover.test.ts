/**
 * The hub survives losing its Redis primary (issue 20): a primary, two replicas and three Sentinels
 * (real redis-server and redis-sentinel processes on free ports), two `eventsource-listener` processes
 * on a `redis+sentinel://` URL, a publisher sending steadily, and the primary killed with SIGKILL.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { Redis } from 'ioredis';
import { httpRequest, openStream, type SseStream } from '../helpers/net.js';
import { startListenerProcess } from '../helpers/process.js';
import { sentinelSkipReason, startSentinelGroup } from '../helpers/redis.js';

const skip = sentinelSkipReason();

type ListenerProcess = Awaited<ReturnType<typeof startListenerProcess>>;

/** One POST's answer, as the publisher saw it. */
interface Reply {
  listener: number;
  sentAt: number;
  answeredAt: number;
  status: number;
  /** The id from a 2xx body, or from a 503 "Event not acknowledged: id N" body. */
  id: string | undefined;
  retryAfter: string | undefined;
  body: string;
}

async function stream(t: TestContext, url: string, headers: http.OutgoingHttpHeaders = {}) {
  const opened = await openStream(url, headers);
  t.after(() => opened.close());
  assert.equal(opened.response.statusCode, 200);
  return opened;
}

async function statsOf(listener: ListenerProcess): Promise<Record<string, unknown>> {
  return JSON.parse((await httpRequest(`${listener.url}/stats`)).body) as Record<string, unknown>;
}

function assertIncreasing(events: SseStream['events'], what: string): void {
  for (let i = 1; i < events.length; i++) {
    assert.ok(
      BigInt(events[i]?.id as string) > BigInt(events[i - 1]?.id as string),
      `${what}: id ${events[i]?.id} after ${events[i - 1]?.id}`,
    );
  }
}

/**
 * Runs the scenario and checks what holds whatever `--redis-wait-replicas` is; returns what the
 * caller checks or reports: the acknowledged ids missing from the new primary's history.
 */
async function failover(t: TestContext, waitReplicas: number) {
  const group = await startSentinelGroup({ downAfterMs: 1000, failoverTimeoutMs: 3000 });
  t.after(() => group.close());
  const args = ['--redis', group.url, '-k', '0', '-i', '--multi', '--history', '100000'];
  args.push('--redis-wait-replicas', String(waitReplicas), '--redis-wait-timeout', '1000');
  const listeners = await Promise.all([startListenerProcess(args), startListenerProcess(args)]);
  for (const listener of listeners) t.after(() => listener.stop());
  const streams = [
    await stream(t, `${listeners[0]?.url}/poll/fo`),
    await stream(t, `${listeners[1]?.url}/poll/fo`),
  ];

  // When the Sentinels announce the new primary.
  const watcher = new Redis(group.sentinels[0]?.port as number, '127.0.0.1', {
    retryStrategy: () => null,
  });
  // The sentinels stop before this connection does (t.after runs in order): not a failure.
  watcher.on('error', (error: Error) => t.diagnostic(`sentinel watcher: ${error.message}`));
  t.after(() => watcher.disconnect());
  let switchedAt = 0;
  watcher.on('message', () => (switchedAt ||= Date.now()));
  await watcher.subscribe('+switch-master');

  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  t.after(() => agent.destroy());
  const replies: Reply[] = [];
  let isRunning = true;
  let n = 0;
  const publisher = async (index: number): Promise<void> => {
    const url = `${listeners[index]?.url}/ping/fo`;
    while (isRunning) {
      const sentAt = Date.now();
      let answer;
      try {
        answer = await httpRequest(url, { method: 'POST', body: `n${n++}`, agent });
      } catch (error) {
        assert.fail(`POST to listener ${index} failed: ${String(error)}`);
      }
      const { status, body, headers } = answer;
      const id =
        status < 300
          ? (JSON.parse(body) as { id: string }).id
          : /^Event not acknowledged: id (\d+)/.exec(body)?.[1];
      const retryAfter = headers['retry-after'] as string | undefined;
      replies.push({
        listener: index,
        sentAt,
        answeredAt: Date.now(),
        status,
        id,
        retryAfter,
        body,
      });
      await new Promise((resolve) => setTimeout(resolve, status < 300 ? 5 : 20));
    }
  };
  const publishers = [publisher(0), publisher(1)];
  await new Promise((resolve) => setTimeout(resolve, 700));
  const killedAt = Date.now();
  group.primary.signal('SIGKILL');

  // Publishing resumes on both listeners; then a second more of it.
  const resumedAt = [0, 0];
  const deadline = killedAt + 20000;
  while (resumedAt.some((at) => at === 0)) {
    assert.ok(Date.now() < deadline, 'both listeners answer 2xx again within 20 s of the kill');
    for (const index of [0, 1]) {
      const firstRefusal = replies.find((r) => r.listener === index && r.status === 503);
      if (firstRefusal === undefined || resumedAt[index] !== 0) continue;
      const resumed = replies.find(
        (r) => r.listener === index && r.status < 300 && r.sentAt > firstRefusal.answeredAt,
      );
      if (resumed !== undefined) resumedAt[index] = resumed.answeredAt;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await new Promise((resolve) => setTimeout(resolve, 1000));
  isRunning = false;
  await Promise.all(publishers);

  for (const reply of replies) {
    assert.ok([200, 503].includes(reply.status), `${reply.status}: ${reply.body}`);
    if (reply.status === 503) {
      assert.equal(reply.retryAfter, '1', 'a 503 says when to retry');
      assert.match(reply.body, /^(Event store unavailable|Event not acknowledged): /);
    }
  }
  const accepted = replies.filter((r) => r.status < 300).map((r) => r.id as string);
  // Ids are never given twice, 503s included, and those given after the failover are above all.
  const given = replies.filter((r) => r.id !== undefined).map((r) => r.id as string);
  assert.equal(new Set(given).size, given.length, 'no id was given twice');
  const before = replies.filter((r) => r.id !== undefined && r.answeredAt <= killedAt);
  const after = replies.filter((r) => r.id !== undefined && r.sentAt >= Math.max(...resumedAt));
  const highestBefore = before.reduce(
    (max, r) => (BigInt(r.id as string) > max ? BigInt(r.id as string) : max),
    0n,
  );
  for (const reply of after) assert.ok(BigInt(reply.id as string) > highestBefore);

  // The open streams stayed open and carry the events in increasing id order.
  for (const [index, opened] of streams.entries()) {
    await opened.waitFor(1, 1000);
    assertIncreasing(opened.events, `stream on listener ${index}`);
    assert.ok(
      opened.events.some((event) => BigInt(event.id as string) > highestBefore),
      `stream on listener ${index} carries events published after the failover`,
    );
  }
  // What the new primary kept: a subscriber replaying from the first acknowledged event.
  const replay = await stream(t, `${listeners[1]?.url}/poll/fo`, {
    'Last-Event-ID': accepted[0] as string,
  });
  const laterAccepted = accepted.filter((id) => BigInt(id) > BigInt(accepted[0] as string));
  // The replay is written at once, before any live event: wait until the stream is quiet.
  let count = -1;
  while (count !== replay.events.length) {
    count = replay.events.length;
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  assertIncreasing(replay.events, 'replay');
  const kept = new Set(replay.events.map((event) => event.id as string));
  const lostFromRedis = laterAccepted.filter((id) => !kept.has(id));
  const received = new Set(streams.flatMap((s) => s.events.map((event) => event.id as string)));
  const neverReceived = accepted.filter((id) => !received.has(id));

  for (const listener of listeners) {
    const lines = listener.child.output.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `the listener's stderr is its one line: ${lines.join('\n')}`);
  }
  const stats = await Promise.all(listeners.map((listener) => statsOf(listener)));
  for (const s of stats) {
    assert.equal(s.redisMode, 'sentinel');
    assert.equal(s.redisRole, 'master');
    assert.equal(s.redisFailovers, 1);
    assert.equal(s.redisWaitReplicas, waitReplicas);
  }
  assert.ok(switchedAt > 0, 'the Sentinels announced a new primary');
  const window = (index: number): string => {
    const first = replies.find((r) => r.listener === index && r.status === 503);
    return `${(first?.answeredAt ?? killedAt) - killedAt}..${(resumedAt[index] ?? 0) - killedAt} ms`;
  };
  t.diagnostic(
    `wait-replicas ${waitReplicas}: killed at 0 ms, +switch-master at ${switchedAt - killedAt} ms; ` +
      `503 window on A ${window(0)}, on B ${window(1)}; redisLastFailoverMs ${stats.map((s) => s.redisLastFailoverMs).join(', ')}; ` +
      `${accepted.length} acknowledged, ${replies.length - accepted.length} refused (${stats.map((s) => s.redisNotAcknowledged).join(' + ')} not acknowledged); ` +
      `acknowledged but not in the new primary's history: ${lostFromRedis.length}; never reached a subscriber: ${neverReceived.length}`,
  );
  return { switchedAt, resumedAt, lostFromRedis, neverReceived, accepted, streams, killedAt };
}

test(
  'with --redis-wait-replicas 1, SIGKILL of the primary loses no acknowledged event and publishing resumes within the failover time plus a second',
  { skip, timeout: 30000 },
  async (t) => {
    const { switchedAt, resumedAt, lostFromRedis, neverReceived, accepted, streams } =
      await failover(t, 1);
    assert.deepEqual(lostFromRedis, [], 'every acknowledged event is in the new primary');
    assert.deepEqual(neverReceived, [], 'every acknowledged event reached the subscribers');
    for (const opened of streams) {
      const ids = new Set(opened.events.map((event) => event.id as string));
      for (const id of accepted) assert.ok(ids.has(id), `event ${id} reached every stream`);
    }
    // The bar is a second after the Sentinels announce the new primary; 500 ms on top for a busy
    // 2-core machine, reported above as measured.
    for (const at of resumedAt)
      assert.ok(at - switchedAt <= 1500, `resumed ${at - switchedAt} ms after the switch`);
  },
);

test(
  'with --redis-wait-replicas 0, SIGKILL of the primary: how many acknowledged events were lost (reported, not asserted)',
  { skip, timeout: 30000 },
  async (t) => {
    const { switchedAt, resumedAt } = await failover(t, 0);
    for (const at of resumedAt)
      assert.ok(at - switchedAt <= 1500, `resumed ${at - switchedAt} ms after the switch`);
  },
);
