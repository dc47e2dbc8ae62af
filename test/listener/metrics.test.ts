/**
 * Operations: the Prometheus scrape (read back with a parser of the text format), presence
 * (`/stats/<token>`), and the join/leave feed of `--presence-token`, on one process and across
 * processes sharing Redis.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import net from 'node:net';
import { once } from 'node:events';
import { StringIdEvent } from '../../src/events.js';
import {
  createListener,
  type Listener,
  type ListenerOptions,
} from '../../src/listener/listener.js';
import { signAccessToken } from '../../src/listener/auth.js';
import { openStream, type SseStream } from '../helpers/net.js';
import { sleep, waitUntil } from '../helpers/listener-helpers.js';
import { spawnBin, startListenerProcess, waitForOutput } from '../helpers/process.js';
import { redisSkipReason, startRedis } from '../helpers/redis.js';

const timeout = 30000;

interface ParsedFamily {
  name: string;
  type: string;
  metrics: {
    value?: string;
    labels?: Record<string, string>;
    count?: string;
    buckets?: Record<string, string>;
  }[];
}
const parsePrometheus = createRequire(import.meta.url)('parse-prometheus-text-format') as (
  text: string,
) => ParsedFamily[];

/** The scrape at `url`, parsed: family name → its samples. */
async function scrape(
  url: string,
  headers: Record<string, string> = {},
): Promise<Map<string, ParsedFamily>> {
  const response = await fetch(url, { headers });
  assert.equal(response.status, 200, await response.clone().text());
  assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return new Map(parsePrometheus(await response.text()).map((family) => [family.name, family]));
}

function value(
  families: Map<string, ParsedFamily>,
  name: string,
  labels: Record<string, string> = {},
): number {
  const family = families.get(name);
  assert.ok(family, `${name} is in the scrape`);
  const sample = family.metrics.find((metric) =>
    Object.entries(labels).every(([key, wanted]) => metric.labels?.[key] === wanted),
  );
  return Number(sample?.value ?? sample?.count ?? NaN);
}

async function start(
  t: TestContext,
  options: ListenerOptions = {},
): Promise<{ listener: Listener; url: string }> {
  const listener = createListener({
    keepalive: 0,
    metrics: true,
    eventClass: StringIdEvent,
    ...options,
  });
  const url = (await listener.listen(0, '127.0.0.1')).replace(/\/$/, '');
  t.after(() => listener.close());
  return { listener, url };
}

async function stream(
  t: TestContext,
  url: string,
  headers: Record<string, string> = {},
): Promise<SseStream> {
  const opened = await openStream(url, headers);
  t.after(() => opened.close());
  return opened;
}

const post = (url: string, body = 'x', headers: Record<string, string> = {}): Promise<Response> =>
  fetch(url, { method: 'POST', body, headers });

test(
  'every metric moves as it should: streams, events, deliveries, refusals by status, replay, a slow reader, history, durations',
  { timeout },
  async (t) => {
    const { url, listener } = await start(t, {
      maxBuffer: 32 * 1024,
      prefix: 'hub',
      maxBody: 128 * 1024,
    });
    const base = `${url}`;
    const streams = await Promise.all(
      ['a', 'b', 'c'].map((token) => stream(t, `${base}/poll/${token}`)),
    );
    let families = await scrape(`${base}/metrics`);
    assert.equal(value(families, 'eventsource_streams'), 3);
    assert.equal(value(families, 'eventsource_tokens'), 3);
    for (let i = 0; i < 7; i++)
      assert.equal((await post(`${base}/ping/${'abc'[i % 3]}`, `e${i}`)).status, 200);
    await Promise.all(streams.map((opened, i) => opened.waitFor(i === 0 ? 3 : 2)));
    assert.equal((await post(`${base}/ping/nobody`)).status, 404);
    assert.equal((await fetch(`${base}/poll/a`)).status, 423);
    // A replay: b reconnects after its first event.
    const firstOfB = streams[1]?.events[0]?.id ?? '';
    streams[1]?.close();
    await sleep(50);
    const again = await stream(t, `${base}/poll/b`, { 'last-event-id': firstOfB });
    await again.waitFor(1);
    // A slow reader: a raw socket that never reads, given more than maxBuffer.
    const socket = net.connect(Number(new URL(url).port), '127.0.0.1');
    t.after(() => socket.destroy());
    await once(socket, 'connect');
    socket.write('GET /hub/poll/slow HTTP/1.1\r\nHost: x\r\n\r\n');
    socket.pause();
    await sleep(100);
    // The kernel's socket buffers take a few MiB first; the listener cuts the stream after that.
    const block = 'y'.repeat(64 * 1024);
    for (let i = 0; i < 400 && listener.stats().subscribersCutOff === 0; i++) {
      await post(`${base}/ping/slow`, block);
    }
    families = await scrape(`${base}/metrics`);
    assert.ok(value(families, 'eventsource_events_total') >= 7 + 1);
    assert.ok(url.endsWith('/hub'), '/metrics is under the prefix');
    assert.ok(value(families, 'eventsource_deliveries_total') >= 7);
    assert.equal(value(families, 'eventsource_rejected_requests_total', { status: '404' }), 1);
    assert.equal(value(families, 'eventsource_rejected_requests_total', { status: '423' }), 1);
    assert.equal(value(families, 'eventsource_replayed_events_total'), 1);
    assert.equal(
      value(families, 'eventsource_dropped_subscribers_total', { reason: 'slow_reader' }),
      1,
      JSON.stringify(listener.stats()),
    );
    assert.ok(value(families, 'eventsource_history_bytes') > 0);
    assert.ok(value(families, 'eventsource_publish_duration_seconds') >= 9, 'a duration per POST');
    for (const name of [
      'process_cpu_seconds_total',
      'nodejs_eventloop_lag_seconds',
      'nodejs_heap_size_used_bytes',
    ]) {
      assert.ok(families.has(name), name);
    }
    assert.equal(families.get('eventsource_streams')?.metrics.length, 1, 'no per-token label');
  },
);

test(
  '/metrics is 404 without metrics, and needs the publish secret or an admin grant like /stats',
  { timeout },
  async (t) => {
    const off = await start(t, { metrics: false });
    const off404 = await fetch(`${off.url}/metrics`);
    assert.equal(off404.status, 404);
    assert.match(await off404.text(), /--metrics/);
    const secret = await start(t, { publishSecret: 's3cret' });
    assert.equal((await fetch(`${secret.url}/metrics`)).status, 401);
    assert.equal((await fetch(`${secret.url}/stats/x`)).status, 401);
    await scrape(`${secret.url}/metrics`, { authorization: 'Bearer s3cret' });
    const jwtSecret = 'metrics-test-secret-of-32-bytes!!';
    const jwt = await start(t, { jwt: { secret: jwtSecret } });
    const admin = await signAccessToken({ admin: true }, jwtSecret);
    const user = await signAccessToken({ subscribe: ['*'] }, jwtSecret);
    assert.equal(
      (await fetch(`${jwt.url}/metrics`, { headers: { authorization: `Bearer ${user}` } })).status,
      403,
    );
    await scrape(`${jwt.url}/metrics`, { authorization: `Bearer ${admin}` });
    const presence = await fetch(`${jwt.url}/stats/x`, {
      headers: { authorization: `Bearer ${admin}` },
    });
    assert.equal(presence.status, 200);
  },
);

test(
  'presence: /stats/<token> and listener.presence() say who is connected and the last event id',
  { timeout },
  async (t) => {
    const { url, listener } = await start(t, { mode: 'multi' });
    const nobody = await (await fetch(`${url}/stats/dev-1`)).json();
    assert.deepEqual(nobody, {
      token: 'dev-1',
      subscribers: 0,
      connected: false,
      lastEventId: null,
    });
    const first = await stream(t, `${url}/poll/dev-1`);
    await stream(t, `${url}/poll/dev-1`);
    const reply = (await (await post(`${url}/ping/dev-1`)).json()) as { id: string };
    assert.deepEqual(await (await fetch(`${url}/stats/dev-1`)).json(), {
      token: 'dev-1',
      subscribers: 2,
      connected: true,
      lastEventId: reply.id,
    });
    first.close();
    await waitUntil(() => listener.stats().streams === 1, 'one stream to close', 2000);
    assert.deepEqual(await listener.presence('dev-1'), {
      token: 'dev-1',
      subscribers: 1,
      connected: true,
      lastEventId: reply.id,
    });
    assert.equal((await fetch(`${url}/stats/a%E0`)).status, 400);
  },
);

/** The join/leave feed as "join dev-1 1" lines. */
function feed(opened: SseStream): string[] {
  return opened.events.map((event) => {
    const data = JSON.parse(event.data) as { token: string; subscribers: number };
    return `${event.event} ${data.token} ${data.subscribers}`;
  });
}

test(
  '--presence-token: join and leave, in order, for open, close, finish and takeover; nothing about itself',
  { timeout },
  async (t) => {
    const { url } = await start(t, { mode: 'takeover', presenceToken: 'presence' });
    const watcher = await stream(t, `${url}/poll/presence`);
    const a = await stream(t, `${url}/poll/dev-1`);
    await watcher.waitFor(1);
    a.close();
    await watcher.waitFor(2);
    await stream(t, `${url}/poll/dev-2`);
    await watcher.waitFor(3);
    // Takeover: the new stream joins (2: the old one is still leaving), then the old one leaves.
    await stream(t, `${url}/poll/dev-2`);
    await watcher.waitFor(5);
    assert.equal((await post(`${url}/close/dev-2`, '')).status, 200);
    await watcher.waitFor(6);
    await sleep(100);
    assert.deepEqual(feed(watcher), [
      'join dev-1 1',
      'leave dev-1 0',
      'join dev-2 1',
      'join dev-2 1',
      'leave dev-2 1',
      'leave dev-2 0',
    ]);
  },
);

test(
  '--workers 2 --redis: one scrape and one /stats count every POST of every worker',
  { skip: redisSkipReason(), timeout: 40000 },
  async (t) => {
    const redis = await startRedis();
    t.after(() => redis.close());
    const child = spawnBin('eventsource-listener', [
      '-H',
      '127.0.0.1',
      '-P',
      '0',
      '-k',
      '0',
      '-i',
      '--multi',
      '--metrics',
      '--redis',
      redis.url,
      '--workers',
      '2',
    ]);
    t.after(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    const match = await waitForOutput(child, /listening on (http:\/\/\S+)\//, 'stderr', 20000);
    const url = match[1] as string;
    const streams = await Promise.all(
      Array.from({ length: 4 }, () => stream(t, `${url}/poll/all`, { connection: 'close' })),
    );
    // 20 POSTs, each on a connection of its own: the cluster spreads them over both workers.
    for (let i = 0; i < 20; i++) {
      const response = await fetch(`${url}/ping/all`, {
        method: 'POST',
        body: String(i),
        headers: { connection: 'close' },
      });
      assert.equal(response.status, 200);
    }
    for (const opened of streams) await opened.waitFor(20);
    const families = await scrape(`${url}/metrics`);
    assert.equal(value(families, 'eventsource_events_total'), 20);
    assert.equal(value(families, 'eventsource_streams'), 4);
    assert.equal(value(families, 'eventsource_redis_up'), 1);
    const stats = (await (await fetch(`${url}/stats`)).json()) as {
      eventsAccepted: number;
      workers: number;
      streams: number;
    };
    assert.equal(stats.workers, 2);
    assert.equal(stats.eventsAccepted, 20);
    assert.equal(stats.streams, 4);
    child.kill('SIGTERM');
    await once(child, 'exit');
  },
);

test(
  'presence across two processes on one Redis, and joins/leaves announced once',
  { skip: redisSkipReason(), timeout },
  async (t) => {
    const redis = await startRedis();
    t.after(() => redis.close());
    const [a, b] = await Promise.all(
      [0, 1].map(() =>
        startListenerProcess([
          '-k',
          '0',
          '-i',
          '--multi',
          '--redis',
          redis.url,
          '--presence-token',
          'presence',
        ]),
      ),
    );
    for (const running of [a, b]) t.after(() => running?.stop());
    const watcher = await stream(t, `${a?.url}/poll/presence`);
    const onA = await stream(t, `${a?.url}/poll/dev-1`);
    await watcher.waitFor(1);
    const onB = await stream(t, `${b?.url}/poll/dev-1`);
    await watcher.waitFor(2);
    for (const running of [a, b]) {
      const seen = (await (await fetch(`${running?.url}/stats/dev-1`)).json()) as {
        subscribers: number;
      };
      assert.equal(seen.subscribers, 2);
    }
    onB.close();
    await watcher.waitFor(3);
    onA.close();
    await watcher.waitFor(4);
    await sleep(200);
    assert.deepEqual(feed(watcher), [
      'join dev-1 1',
      'join dev-1 2',
      'leave dev-1 1',
      'leave dev-1 0',
    ]);
  },
);

test(
  "a killed process's streams are announced as leaves once their heartbeat expires",
  { skip: redisSkipReason(), timeout },
  async (t) => {
    const redis = await startRedis();
    t.after(() => redis.close());
    const args = ['-k', '0', '--multi', '--redis', redis.url, '--presence-token', 'presence'];
    const [a, b, c] = await Promise.all([0, 1, 2].map(() => startListenerProcess(args)));
    for (const running of [a, b, c]) t.after(() => running?.stop());
    const watcher = await stream(t, `${a?.url}/poll/presence`);
    await stream(t, `${b?.url}/poll/dev-9`);
    await watcher.waitFor(1);
    b?.child.kill('SIGKILL');
    // The heartbeat lives 5 s; one of the two live processes notices within a second after.
    await watcher.waitFor(2, 12000);
    await sleep(1500);
    assert.deepEqual(feed(watcher), ['join dev-9 1', 'leave dev-9 0']);
    const seen = (await (await fetch(`${a?.url}/stats/dev-9`)).json()) as { subscribers: number };
    assert.equal(seen.subscribers, 0);
  },
);
