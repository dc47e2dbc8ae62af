#!/usr/bin/env node
// Benchmark for issue 9: the listener with --redis (one process, and --workers 2) against the
// in-memory broker in one process, for unicast (one subscriber per token) and broadcast (many
// subscribers of one token). For each: deliveries per second under a closed-loop load (the most it
// does) with the whole machine's busy share meanwhile (at 100 % a second worker has no core to
// use), server CPU per delivery (utime + stime from /proc of the listener and its workers) at two
// fixed offered rates, a light and a busy one, the same for every variant (CPU per delivery falls
// as batching grows with the rate, so comparing it at different rates would flatter the faster
// one), and the median publish -> receive latency at a low, paced rate.
//
// Issue 20 adds `--redis-wait-replicas 1` (the Redis server has one replica throughout, so every
// Redis variant pays the same replication), and the median time to the POST's answer: with the
// wait, the answer comes after the replica's confirmation while delivery does not wait for it.
//
// Usage: npm run build && node bench/redis.js [--quick]
// Needs redis-server (REDIS_SERVER=/path overrides); starts its own on a free port.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const isQuick = process.argv.includes('--quick');
const DURATION_MS = isQuick ? 2000 : 5000;
const LATENCY_SAMPLES = isQuick ? 100 : 300;
const UNICAST_TOKENS = isQuick ? 50 : 100;
const UNICAST_CONCURRENCY = 32;
const BROADCAST_SUBSCRIBERS = isQuick ? 50 : 100;
const BROADCAST_CONCURRENCY = 16;
// Offered rates (POSTs per second) of the CPU phases, each below what every variant sustains: a
// light load, where each POST is handled alone, and a busy one, where POSTs arrive together.
const UNICAST_RATES = isQuick ? [200, 2000] : [400, 4000];
const BROADCAST_RATES = isQuick ? [50, 150] : [100, 300];
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100;
const bin = fileURLToPath(new URL('../bin/eventsource-listener.js', import.meta.url));

async function freePort() {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function startRedis(replicaOf) {
  const binary = process.env.REDIS_SERVER || 'redis-server';
  if (spawnSync(binary, ['--version']).status !== 0) {
    console.error('bench/redis.js: redis-server is not installed (apt-get install redis-server)');
    process.exit(1);
  }
  const dir = mkdtempSync(join(tmpdir(), 'eventsource-bench-redis-'));
  const port = await freePort();
  const child = spawn(
    binary,
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
      '--repl-diskless-sync-delay',
      '0',
      ...(replicaOf === undefined ? [] : ['--replicaof', '127.0.0.1', String(replicaOf)]),
    ],
    { stdio: 'ignore' },
  );
  for (let i = 0; i < 200; i++) {
    const socket = net.connect(port, '127.0.0.1');
    // once() rejects on 'error': a refused connection means "not yet".
    const ok = await once(socket, 'connect').then(
      () => true,
      () => false,
    );
    socket.destroy();
    if (ok) break;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      child.kill('SIGTERM');
      await once(child, 'exit');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function startListener(args) {
  const child = spawn(process.execPath, [bin, '-H', '127.0.0.1', '-P', '0', '-k', '0', ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, DEBUG: '' },
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  const url = await new Promise((resolve, reject) => {
    child.stderr.on('data', (text) => {
      stderr += text;
      const match = stderr.match(/listening on (http:\/\/\S+?)\/? /);
      if (match) resolve(match[1]);
    });
    child.once('exit', (code) => reject(new Error(`listener exited (${code}): ${stderr}`)));
  });
  return {
    url,
    pid: child.pid,
    async stop() {
      child.kill('SIGTERM');
      if (child.exitCode === null) await once(child, 'exit');
    },
  };
}

/** CPU ticks (user + system) of a process and its children (the cluster workers). */
function cpuTicks(pid) {
  let total = 0;
  const pids = [pid];
  try {
    for (const task of [pid]) {
      const children = readFileSync(`/proc/${task}/task/${task}/children`, 'utf8').trim();
      if (children !== '') pids.push(...children.split(/\s+/).map(Number));
    }
  } catch {
    // No children file (kernel without CONFIG_PROC_CHILDREN): count the primary only.
  }
  for (const p of pids) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      total += Number(fields[11]) + Number(fields[12]);
    } catch {
      // The process exited between listing and reading.
    }
  }
  return total;
}

/** Idle and total CPU ticks of the whole machine, every core (/proc/stat). */
function machineTicks() {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1);
  const ticks = fields.map(Number);
  // idle + iowait count as idle.
  return { idle: (ticks[3] ?? 0) + (ticks[4] ?? 0), total: ticks.reduce((a, b) => a + b, 0) };
}

/** An SSE reader that counts events and, when asked, records publish -> receive latency. */
function subscribe(url, token, onLatency) {
  return new Promise((resolve, reject) => {
    const request = http.get(`${url}/poll/${token}`, { agent: false }, (response) => {
      if (response.statusCode !== 200) {
        reject(new Error(`subscribe ${token}: ${response.statusCode}`));
        return;
      }
      const reader = { count: 0, close: () => request.destroy() };
      let carry = '';
      response.setEncoding('latin1');
      response.on('data', (text) => {
        const buffer = carry + text;
        let index = buffer.indexOf('\n\n');
        let start = 0;
        while (index !== -1) {
          reader.count++;
          if (onLatency !== undefined) {
            const at = buffer.lastIndexOf('data: t', index);
            if (at >= start) {
              const sent = Number(buffer.slice(at + 7, buffer.indexOf('\n', at)));
              onLatency(performance.now() - sent);
            }
          }
          start = index + 2;
          index = buffer.indexOf('\n\n', start);
        }
        carry = buffer.slice(start);
      });
      response.on('error', () => {});
      resolve(reader);
    });
    request.on('error', reject);
  });
}

/** One POST; resolves with its status, or with the error's code (a reset under load is counted, not fatal). */
function post(agent, url, token, body) {
  return new Promise((resolve) => {
    const request = http.request(`${url}/ping/${token}`, {
      method: 'POST',
      agent,
      headers: { 'content-length': Buffer.byteLength(body) },
    });
    request.on('response', (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode));
    });
    request.on('error', (error) => resolve(error.code ?? error.message));
    request.end(body);
  });
}

async function measure(name, args, kind) {
  const listener = await startListener([...args, ...(kind === 'broadcast' ? ['--multi'] : [])]);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const tokens =
    kind === 'unicast'
      ? Array.from({ length: UNICAST_TOKENS }, (_, i) => `u${i}`)
      : Array.from({ length: BROADCAST_SUBSCRIBERS }, () => 'b');
  const latencies = [];
  let isSampling = false;
  const readers = [];
  for (let i = 0; i < tokens.length; i++) {
    // Latency from a few readers is enough, and keeps the load generator's parsing cheap.
    const onLatency = i < 4 ? (ms) => isSampling && latencies.push(ms) : undefined;
    readers.push(await subscribe(listener.url, tokens[i], onLatency));
  }
  const delivered = () => readers.reduce((sum, reader) => sum + reader.count, 0);
  const uniqueTokens = [...new Set(tokens)];
  // Warm-up, then the closed-loop throughput window.
  let next = 0;
  let isRunning = true;
  const errors = new Map();
  const worker = async () => {
    while (isRunning) {
      const token = uniqueTokens[next++ % uniqueTokens.length];
      const status = await post(agent, listener.url, token, `x${next}`);
      if (status !== 200) errors.set(status, (errors.get(status) ?? 0) + 1);
    }
  };
  const concurrency = kind === 'unicast' ? UNICAST_CONCURRENCY : BROADCAST_CONCURRENCY;
  const workers = Array.from({ length: concurrency }, worker);
  await new Promise((resolve) => setTimeout(resolve, 500));
  const startedAt = performance.now();
  const machine0 = machineTicks();
  const delivered0 = delivered();
  await new Promise((resolve) => setTimeout(resolve, DURATION_MS));
  const seconds = (performance.now() - startedAt) / 1000;
  const deliveries = delivered() - delivered0;
  const machine1 = machineTicks();
  isRunning = false;
  await Promise.all(workers);
  await new Promise((resolve) => setTimeout(resolve, 300));
  // CPU at fixed offered rates, the same for every variant: a batch every 10 ms.
  const cpuUsPerDelivery = [];
  for (const rate of kind === 'unicast' ? UNICAST_RATES : BROADCAST_RATES) {
    const pending = [];
    const paceFrom = delivered();
    const ticks0 = cpuTicks(listener.pid);
    const pacedAt = performance.now();
    let sent = 0;
    const timer = setInterval(() => {
      const due = Math.floor(((performance.now() - pacedAt) / 1000) * rate);
      for (; sent < due; sent++) {
        const token = uniqueTokens[sent % uniqueTokens.length];
        pending.push(post(agent, listener.url, token, `p${sent}`));
      }
    }, 10);
    await new Promise((resolve) => setTimeout(resolve, DURATION_MS));
    clearInterval(timer);
    await Promise.all(pending);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const ticks1 = cpuTicks(listener.pid);
    const pacedDeliveries = delivered() - paceFrom;
    cpuUsPerDelivery.push((((ticks1 - ticks0) / CLK_TCK) * 1e6) / Math.max(pacedDeliveries, 1));
  }
  // Latency at a low, paced rate: one event at a time to the sampled readers' tokens.
  isSampling = true;
  const answerMs = [];
  for (let i = 0; i < LATENCY_SAMPLES; i++) {
    const sentAt = performance.now();
    await post(agent, listener.url, tokens[i % 4], `t${sentAt}`);
    answerMs.push(performance.now() - sentAt);
    await new Promise((resolve) => setTimeout(resolve, 3));
  }
  answerMs.sort((x, y) => x - y);
  await new Promise((resolve) => setTimeout(resolve, 200));
  isSampling = false;
  for (const reader of readers) reader.close();
  agent.destroy();
  await listener.stop();
  latencies.sort((x, y) => x - y);
  return {
    name,
    kind,
    deliveriesPerSecond: deliveries / seconds,
    machineBusy: 1 - (machine1.idle - machine0.idle) / Math.max(machine1.total - machine0.total, 1),
    cpuUsPerDelivery,
    p50Ms: latencies[Math.floor(latencies.length / 2)] ?? NaN,
    answerP50Ms: answerMs[Math.floor(answerMs.length / 2)] ?? NaN,
    errors: [...errors].map(([status, n]) => `${n}x${status}`).join(' '),
  };
}

/** Waits until the primary on `port` reports its replica in sync. */
async function waitForReplica(port) {
  const { Redis } = await import('ioredis');
  const client = new Redis(port, '127.0.0.1');
  for (let i = 0; i < 400; i++) {
    if (/state=online/.test(await client.info('replication'))) break;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  client.disconnect();
}

/**
 * CPU of this process per round trip to Redis at the light unicast rate, paced as the CPU phase is:
 * over a bare socket (`ECHO` written by hand, replies only counted) and as an `EVALSHA` through
 * ioredis. It is the floor of what any POST that waits for Redis adds.
 */
async function roundTrips(url) {
  const { port } = new URL(url);
  const paced = async (send, isDone) => {
    const rate = UNICAST_RATES[0];
    const before = process.cpuUsage();
    const startedAt = performance.now();
    let sent = 0;
    const timer = setInterval(() => {
      const due = Math.floor(((performance.now() - startedAt) / 1000) * rate);
      for (; sent < due; sent++) send(sent);
    }, 10);
    await new Promise((resolve) => setTimeout(resolve, DURATION_MS));
    clearInterval(timer);
    while (!isDone(sent)) await new Promise((resolve) => setTimeout(resolve, 10));
    const used = process.cpuUsage(before);
    return (used.user + used.system) / sent;
  };
  const socket = net.connect(Number(port), '127.0.0.1');
  await once(socket, 'connect');
  let replies = 0;
  socket.on('data', (chunk) => {
    for (const byte of chunk) if (byte === 10) replies++;
  });
  // One reply to ECHO is two lines ($2, then the text).
  const bare = await paced(
    () => socket.write('*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n'),
    (sent) => replies >= 2 * sent,
  );
  socket.destroy();
  const { Redis } = await import('ioredis');
  const client = new Redis(url, { enableOfflineQueue: false, commandTimeout: 2000 });
  await once(client, 'ready');
  client.defineCommand('probe', { lua: 'return {200, ARGV[1], 1}', numberOfKeys: 1 });
  for (let i = 0; i < 2000; i++) await client.probe('k', `w${i}`);
  let answered = 0;
  const viaIoredis = await paced(
    (i) => client.probe('k', `p${i}`).then(() => answered++),
    (sent) => answered >= sent,
  );
  client.disconnect();
  return { bare, viaIoredis };
}

const redis = await startRedis();
const replica = await startRedis(redis.port);
await waitForReplica(redis.port);
const results = [];
let probe;
try {
  // BENCH_ONLY=unicast (or broadcast) runs one scenario.
  for (const kind of ['unicast', 'broadcast']) {
    if (process.env.BENCH_ONLY !== undefined && process.env.BENCH_ONLY !== kind) continue;
    results.push(await measure('memory, 1 process', [], kind));
    results.push(await measure('redis, 1 process', ['--redis', redis.url], kind));
    results.push(
      await measure(
        'redis, wait-replicas 1',
        ['--redis', redis.url, '--redis-wait-replicas', '1'],
        kind,
      ),
    );
    results.push(
      await measure('redis, --workers 2', ['--redis', redis.url, '--workers', '2'], kind),
    );
  }
  probe = await roundTrips(redis.url);
} finally {
  await replica.stop();
  await redis.stop();
}

const pad = (text, width) => String(text).padEnd(width);
const padLeft = (text, width) => String(text).padStart(width);
const rateColumns = (kind) =>
  (kind === 'unicast' ? UNICAST_RATES : BROADCAST_RATES)
    .map((rate) => `${padLeft(`us/del @${rate}/s`, 15)} ${padLeft('x memory', 8)}`)
    .join(' ');
const verdicts = [];
for (const kind of ['unicast', 'broadcast']) {
  const rows = results.filter((r) => r.kind === kind);
  if (rows.length === 0) continue;
  const rates = kind === 'unicast' ? UNICAST_RATES : BROADCAST_RATES;
  console.log(
    `\n${pad('scenario', 10)} ${pad('listener', 22)} ${padLeft('deliveries/s', 13)} ${padLeft('busy %', 6)} ${rateColumns(kind)} ${padLeft('p50 ms', 7)} ${padLeft('+ms', 6)} ${padLeft('answer', 7)}  errors`,
  );
  const base = rows.find((r) => r.name.startsWith('memory'));
  for (const result of rows) {
    const ratios = result.cpuUsPerDelivery.map((us, i) => us / base.cpuUsPerDelivery[i]);
    const cpu = result.cpuUsPerDelivery
      .map((us, i) => `${padLeft(us.toFixed(1), 15)} ${padLeft(ratios[i].toFixed(2), 8)}`)
      .join(' ');
    const addedMs = result.p50Ms - base.p50Ms;
    console.log(
      `${pad(kind, 10)} ${pad(result.name, 22)} ${padLeft(Math.round(result.deliveriesPerSecond), 13)} ${padLeft((result.machineBusy * 100).toFixed(0), 6)} ${cpu} ${padLeft(result.p50Ms.toFixed(2), 7)} ${padLeft(addedMs.toFixed(2), 6)} ${padLeft(result.answerP50Ms.toFixed(2), 7)}  ${result.errors}`,
    );
    if (result.name === 'redis, 1 process') {
      rates.forEach((rate, i) => {
        const ratio = ratios[i];
        verdicts.push(
          `${kind} @${rate} POSTs/s: redis CPU/delivery ${ratio.toFixed(2)}x memory (bar <= 1.5): ${ratio <= 1.5 ? 'ok' : 'MISSED'}`,
        );
      });
      verdicts.push(
        `${kind}: redis adds ${addedMs.toFixed(2)} ms to p50 latency (bar <= 1): ${addedMs <= 1 ? 'ok' : 'MISSED'}`,
      );
    }
    if (result.name === 'redis, wait-replicas 1') {
      const noWait = rows.find((r) => r.name === 'redis, 1 process');
      const busy = rates.length - 1;
      const cpuRatio = result.cpuUsPerDelivery[busy] / noWait.cpuUsPerDelivery[busy];
      const addedAnswer = result.answerP50Ms - noWait.answerP50Ms;
      const addedDelivery = result.p50Ms - noWait.p50Ms;
      verdicts.push(
        `${kind}: wait-replicas 1 adds ${addedAnswer.toFixed(2)} ms to the POST's p50 answer time (bar <= 1): ${addedAnswer <= 1 ? 'ok' : 'MISSED'}; ${addedDelivery.toFixed(2)} ms to p50 delivery latency`,
        `${kind} @${rates[busy]} POSTs/s: wait-replicas 1 CPU/delivery ${cpuRatio.toFixed(2)}x wait-replicas 0 (bar <= 1.3): ${cpuRatio <= 1.3 ? 'ok' : 'MISSED'}`,
      );
    }
    if (result.name === 'redis, --workers 2') {
      const single = rows.find((r) => r.name === 'redis, 1 process');
      const speedup = result.deliveriesPerSecond / single.deliveriesPerSecond;
      verdicts.push(
        `${kind}: --workers 2 ${speedup.toFixed(2)}x one redis process (bar > 1): ${speedup > 1 ? 'ok' : 'MISSED'}`,
      );
    }
  }
}
console.log(
  `\nOne round trip to Redis at ${UNICAST_RATES[0]}/s costs this process ${probe.bare.toFixed(1)} us over a bare socket, ` +
    `${probe.viaIoredis.toFixed(1)} us as an EVALSHA through ioredis (pacing included).`,
);
console.log(`\n${verdicts.join('\n')}`);
