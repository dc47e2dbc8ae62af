/**
 * Several listener processes on one Redis behave as one listener (issue 9): each test starts its own
 * redis-server and real `eventsource-listener --redis` processes, and talks to them over sockets.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { httpRequest, openStream, type SseStream } from '../helpers/net.js';
import { startListenerProcess, spawnBin, waitExit, waitForOutput } from '../helpers/process.js';
import { redisSkipReason, startRedis, type RedisServer } from '../helpers/redis.js';

const skip = redisSkipReason();

type ListenerProcess = Awaited<ReturnType<typeof startListenerProcess>>;

async function setup(
  t: TestContext,
  count: number,
  args: string[],
): Promise<{ redis: RedisServer; listeners: ListenerProcess[] }> {
  const redis = await startRedis();
  t.after(() => redis.close());
  const listeners = await Promise.all(
    Array.from({ length: count }, () =>
      startListenerProcess(['--redis', redis.url, '-k', '0', ...args], {}),
    ),
  );
  for (const listener of listeners) t.after(() => listener.stop());
  return { redis, listeners };
}

async function stream(
  t: TestContext,
  url: string,
  headers: http.OutgoingHttpHeaders = {},
): Promise<SseStream> {
  const opened = await openStream(url, headers);
  t.after(() => opened.close());
  return opened;
}

function post(
  url: string,
  body: string,
  agent?: http.Agent,
): Promise<{ status: number; body: string }> {
  return httpRequest(url, { method: 'POST', body, ...(agent ? { agent } : {}) });
}

/** Retries `check` until it returns true, or fails after `timeoutMs`. */
async function eventually(check: () => Promise<boolean>, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test(
  'a POST to process A reaches a subscriber on process B; subscribers counts every process',
  {
    skip,
    timeout: 20000,
  },
  async (t) => {
    const {
      listeners: [a, b],
    } = await setup(t, 2, ['-i', '--multi']);
    assert.ok(a && b);
    const onB = await stream(t, `${b.url}/poll/dev:1`);
    assert.equal(onB.response.statusCode, 200);
    let reply = await post(`${a.url}/ping/dev:1`, 'hello');
    assert.equal(reply.status, 200);
    assert.equal(JSON.parse(reply.body).subscribers, 1);
    const [event] = await onB.waitFor(1);
    assert.deepEqual(event, { event: 'ping', data: 'hello', id: JSON.parse(reply.body).id });

    const onA = await stream(t, `${a.url}/poll/dev:1`);
    reply = await post(`${b.url}/ping/dev:1`, 'line 1\nline 2');
    assert.equal(JSON.parse(reply.body).subscribers, 2);
    await onA.waitFor(1);
    await onB.waitFor(2);
    assert.equal(onA.events[0]?.data, 'line 1\nline 2');
    assert.equal(onB.events[1]?.data, 'line 1\nline 2');

    const unknown = await post(`${b.url}/ping/nobody`, 'x');
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body, 'Target is not connected');
    const stats = JSON.parse((await httpRequest(`${a.url}/stats`)).body);
    assert.equal(stats.redis, 'ready');
    assert.equal(stats.streams, 1);
  },
);

test(
  '10 000 events to one token from both processes at once arrive in one order with increasing ids',
  {
    skip,
    timeout: 60000,
  },
  async (t) => {
    const {
      listeners: [a, b],
    } = await setup(t, 2, ['-i', '--multi']);
    assert.ok(a && b);
    const onA = await stream(t, `${a.url}/poll/burst`);
    const onB = await stream(t, `${b.url}/poll/burst`);
    const agentA = new http.Agent({ keepAlive: true, maxSockets: 32 });
    const agentB = new http.Agent({ keepAlive: true, maxSockets: 32 });
    t.after(() => {
      agentA.destroy();
      agentB.destroy();
    });
    const count = 10000;
    const replies = await Promise.all(
      Array.from({ length: count }, (_, i) =>
        post(
          `${(i % 2 === 0 ? a : b).url}/ping/burst`,
          `event ${i}`,
          i % 2 === 0 ? agentA : agentB,
        ),
      ),
    );
    const acceptedIds = new Set<string>();
    for (const reply of replies) {
      assert.equal(reply.status, 200, reply.body);
      acceptedIds.add(JSON.parse(reply.body).id);
    }
    assert.equal(acceptedIds.size, count);
    await onA.waitFor(count, 30000);
    await onB.waitFor(count, 30000);
    const idsA = onA.events.map((event) => event.id);
    const idsB = onB.events.map((event) => event.id);
    assert.deepEqual(idsA, idsB, 'both processes deliver one order');
    for (let i = 1; i < idsA.length; i++) {
      assert.ok(BigInt(idsA[i] as string) > BigInt(idsA[i - 1] as string), `id ${i} increases`);
    }
    assert.deepEqual(new Set(idsA), acceptedIds);
    assert.deepEqual(
      onA.events.map((event) => event.data),
      onB.events.map((event) => event.data),
    );
  },
);

async function statsOf(listener: ListenerProcess): Promise<Record<string, unknown>> {
  return JSON.parse((await httpRequest(`${listener.url}/stats`)).body) as Record<string, unknown>;
}

test(
  'a process holding every subscriber of a token delivers its own POSTs without a pub/sub round trip',
  { skip, timeout: 30000 },
  async (t) => {
    const {
      listeners: [a],
    } = await setup(t, 1, ['-i']);
    assert.ok(a);
    const onA = await stream(t, `${a.url}/poll/solo`);
    const count = 500;
    for (let i = 0; i < count; i++) {
      assert.equal((await post(`${a.url}/ping/solo`, `event ${i}`)).status, 200);
    }
    await onA.waitFor(count, 10000);
    assert.deepEqual(
      onA.events.map((event) => event.data),
      Array.from({ length: count }, (_, i) => `event ${i}`),
    );
    assert.equal((await statsOf(a)).redisLocalDeliveries, count);
  },
);

test(
  'events delivered locally and events from another process interleave in one order, none lost',
  { skip, timeout: 60000 },
  async (t) => {
    const {
      listeners: [a, b],
    } = await setup(t, 2, ['-i']);
    assert.ok(a && b);
    // The only subscriber is on A: A's own POSTs may be delivered from the script's reply while
    // B's come through the channel, so a late channel message must not be passed over.
    const onA = await stream(t, `${a.url}/poll/mixed`);
    const agentA = new http.Agent({ keepAlive: true, maxSockets: 16 });
    const agentB = new http.Agent({ keepAlive: true, maxSockets: 16 });
    t.after(() => {
      agentA.destroy();
      agentB.destroy();
    });
    const count = 6000;
    let next = 0;
    const ids: string[] = [];
    const loop = async (agent: http.Agent, url: string): Promise<void> => {
      while (next < count) {
        const i = next++;
        const reply = await post(`${url}/ping/mixed`, `event ${i}`, agent);
        assert.equal(reply.status, 200, reply.body);
        ids.push(JSON.parse(reply.body).id as string);
      }
    };
    await Promise.all(
      Array.from({ length: 16 }, (_, i) =>
        loop(i % 2 === 0 ? agentA : agentB, (i % 2 === 0 ? a : b).url),
      ),
    );
    await onA.waitFor(count, 30000);
    const received = onA.events.map((event) => event.id as string);
    for (let i = 1; i < received.length; i++) {
      assert.ok(
        BigInt(received[i] as string) > BigInt(received[i - 1] as string),
        `id ${i} increases`,
      );
    }
    assert.deepEqual(new Set(received), new Set(ids), 'every accepted event arrived once');
    assert.equal(received.length, count);
    const local = (await statsOf(a)).redisLocalDeliveries as number;
    t.diagnostic(`${local} of ${count / 2} events from A delivered locally`);
    assert.ok(local > 0, "some of A's events took the local path");
  },
);

test(
  '423 "Target is already connected" holds across processes, and the token frees when the stream ends',
  {
    skip,
    timeout: 20000,
  },
  async (t) => {
    const {
      listeners: [a, b],
    } = await setup(t, 2, []);
    assert.ok(a && b);
    const first = await openStream(`${a.url}/poll/single`);
    const second = await httpRequest(`${b.url}/poll/single`);
    assert.equal(second.status, 423);
    assert.match(second.body, /^Target is already connected \(--multi /);
    first.close();
    // The unsubscribe reaches Redis shortly after the socket closes.
    await eventually(
      async () => {
        const replacement = await openStream(`${b.url}/poll/single`);
        const ok = replacement.response.statusCode === 200;
        if (ok) t.after(() => replacement.close());
        else replacement.close();
        return ok;
      },
      5000,
      'the token to be free',
    );
  },
);

test(
  '--takeover across processes: the newest subscriber wins and the old stream ends',
  {
    skip,
    timeout: 20000,
  },
  async (t) => {
    const {
      listeners: [a, b],
    } = await setup(t, 2, ['-i', '--takeover']);
    assert.ok(a && b);
    const old = await stream(t, `${a.url}/poll/device`);
    await post(`${a.url}/ping/device`, 'before');
    await old.waitFor(1);
    const newer = await stream(t, `${b.url}/poll/device`);
    assert.equal(newer.response.statusCode, 200);
    await old.ended;
    const reply = await post(`${a.url}/ping/device`, 'after');
    assert.equal(reply.status, 200);
    assert.equal(JSON.parse(reply.body).subscribers, 1);
    const [event] = await newer.waitFor(1);
    assert.equal(event?.data, 'after');
    assert.equal(old.events.length, 1);
  },
);

test(
  'a subscriber that moves from A to B gets the events after its Last-Event-ID, then the live ones',
  {
    skip,
    timeout: 20000,
  },
  async (t) => {
    const {
      listeners: [a, b],
    } = await setup(t, 2, ['-i']);
    assert.ok(a && b);
    const onA = await openStream(`${a.url}/poll/mover`);
    for (const data of ['1', '2', '3'])
      assert.equal((await post(`${a.url}/ping/mover`, data)).status, 200);
    const seen = await onA.waitFor(3);
    onA.close();
    await onA.ended;
    // Kept while it reconnects (202), whichever process takes the POST. Until A has told Redis
    // that its stream is gone, a POST still gets 200; it is stored all the same, so each accepted
    // attempt is one more '4' in the replay.
    let fours = 0;
    await eventually(
      async () => {
        const { status } = await post(`${b.url}/ping/mover`, '4');
        if (status === 200 || status === 202) fours++;
        return status === 202;
      },
      5000,
      'a 202 while the subscriber is away',
    );
    assert.equal((await post(`${a.url}/ping/mover`, '5')).status, 202);
    const onB = await stream(t, `${b.url}/poll/mover`, { 'Last-Event-ID': seen[1]?.id ?? '' });
    await onB.waitFor(2 + fours);
    assert.deepEqual(
      onB.events.map((event) => event.data),
      ['3', ...Array.from({ length: fours }, () => '4'), '5'],
    );
    assert.equal((await post(`${a.url}/ping/mover`, '6')).status, 200);
    await onB.waitFor(3 + fours);
    assert.equal(onB.events[2 + fours]?.data, '6');
    assert.equal(new Set(onB.events.map((event) => event.id)).size, 3 + fours);

    // An id that is no longer kept is said in-band, then everything kept follows.
    const gap = await stream(t, `${a.url}/poll/other`, { 'Last-Event-ID': '12' });
    assert.equal(gap.response.statusCode, 200);
  },
);

test(
  'a listener killed with SIGKILL frees its tokens after the heartbeat expiry',
  {
    skip,
    timeout: 30000,
  },
  async (t) => {
    const {
      listeners: [a, b],
    } = await setup(t, 2, ['-i']);
    assert.ok(a && b);
    const onA = await stream(t, `${a.url}/poll/crash`);
    assert.equal(onA.response.statusCode, 200);
    assert.equal((await httpRequest(`${b.url}/poll/crash`)).status, 423);
    const killedAt = Date.now();
    a.child.kill('SIGKILL');
    await waitExit(a.child, 5000);
    await eventually(
      async () => {
        const attempt = await openStream(`${b.url}/poll/crash`);
        if (attempt.response.statusCode === 200) {
          t.after(() => attempt.close());
          return true;
        }
        attempt.close();
        return false;
      },
      12000,
      'the token to be freed',
    );
    const elapsed = Date.now() - killedAt;
    assert.ok(elapsed < 10000, `freed after ${elapsed} ms`);
  },
);

test(
  'Redis stopped for 5 s under load: POSTs get 503, no 2xx is lost, everything works after',
  {
    skip,
    timeout: 60000,
  },
  async (t) => {
    const {
      redis,
      listeners: [a, b],
    } = await setup(t, 2, ['-i', '--multi']);
    assert.ok(a && b);
    const onA = await stream(t, `${a.url}/poll/outage`);
    const onB = await stream(t, `${b.url}/poll/outage`);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    t.after(() => agent.destroy());
    const accepted: string[] = [];
    // When each accepted POST was sent: one sent before Redis exited may be answered after (Redis
    // serves what it already read until it has shut down), and its 200 is right.
    const sentAt: number[] = [];
    const statuses = new Map<number, number>();
    const bodies503 = new Set<string>();
    let isRunning = true;
    let n = 0;
    const poster = async (target: ListenerProcess) => {
      while (isRunning) {
        const sent = Date.now();
        const reply = await post(`${target.url}/ping/outage`, `n${n++}`, agent);
        statuses.set(reply.status, (statuses.get(reply.status) ?? 0) + 1);
        if (reply.status === 200) {
          accepted.push(JSON.parse(reply.body).id);
          sentAt.push(sent);
        } else if (reply.status === 503) bodies503.add(reply.body);
        else assert.ok(reply.status === 404, `unexpected ${reply.status}: ${reply.body}`);
        if (reply.status !== 200) await new Promise((resolve) => setTimeout(resolve, 10));
      }
    };
    const posters = [a, b, a, b].map((target) => poster(target));
    await new Promise((resolve) => setTimeout(resolve, 500));
    const beforeStop = accepted.length;
    await redis.stop();
    const stoppedAt = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 5000));
    const restartedAt = Date.now();
    await redis.restart();
    await eventually(
      async () => JSON.parse((await httpRequest(`${a.url}/stats`)).body).redis === 'ready',
      10000,
      'A to reconnect',
    );
    const afterRestart = accepted.length;
    await eventually(
      async () => accepted.length > afterRestart + 50,
      15000,
      'POSTs to succeed again',
    );
    isRunning = false;
    await Promise.all(posters);

    assert.ok(beforeStop > 0, 'POSTs were accepted before the stop');
    const duringStop = sentAt.filter((time) => time >= stoppedAt && time < restartedAt).length;
    assert.equal(duringStop, 0, 'no POST sent while Redis was down was accepted');
    assert.ok((statuses.get(503) ?? 0) > 0, 'POSTs got 503 while Redis was down');
    for (const body of bodies503) assert.match(body, /^Event store unavailable: /);
    // Every accepted event reached both streams, which stayed open throughout.
    await onA.waitFor(accepted.length, 15000);
    await onB.waitFor(accepted.length, 15000);
    assert.deepEqual(new Set(onA.events.map((event) => event.id)), new Set(accepted));
    assert.deepEqual(
      onA.events.map((event) => event.id),
      onB.events.map((event) => event.id),
    );
    const stats = JSON.parse((await httpRequest(`${b.url}/stats`)).body);
    assert.equal(stats.redis, 'ready');
    assert.ok(stats.redisErrors > 0);
  },
);

test(
  '--workers 2: the primary prints one line, both workers serve the port, SIGTERM exits 0',
  {
    skip,
    timeout: 30000,
  },
  async (t) => {
    const redis = await startRedis();
    t.after(() => redis.close());
    const child = spawnBin('eventsource-listener', [
      '-H',
      '127.0.0.1',
      '-P',
      '0',
      '-i',
      '--multi',
      '--redis',
      redis.url,
      '--workers',
      '2',
    ]);
    t.after(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    const match = await waitForOutput(child, /listening on (http:\/\/\S+)\//, 'stderr', 15000);
    const url = match[1] as string;
    assert.match(child.output.stderr, /workers 2/);
    // Connections are spread over the workers: several streams end up on both processes.
    const streams = await Promise.all(
      Array.from({ length: 6 }, () => stream(t, `${url}/poll/shared`)),
    );
    const processIds = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const stats = JSON.parse(
        (await httpRequest(`${url}/stats`, { headers: { connection: 'close' } })).body,
      );
      processIds.add(stats.workerPid);
    }
    assert.equal(processIds.size, 2, 'both workers answer');
    const reply = await post(`${url}/ping/shared`, 'to all');
    assert.equal(JSON.parse(reply.body).subscribers, 6);
    for (const opened of streams) await opened.waitFor(1);
    assert.equal(child.output.stderr.match(/listening on/g)?.length, 1);
    child.kill('SIGTERM');
    const result = await waitExit(child, 10000);
    assert.equal(result.code, 0, result.stderr);
  },
);

test('--workers without --redis is a usage error', { skip, timeout: 10000 }, async () => {
  const child = spawnBin('eventsource-listener', ['-P', '0', '--workers', '2']);
  const result = await waitExit(child, 5000);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /--workers needs --redis/);
});
