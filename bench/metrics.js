#!/usr/bin/env node
// The cost of one Prometheus scrape (issue 17: under 10 ms with 10 000 tokens, and no per-token
// label). Starts `eventsource-listener --metrics`, scrapes `GET /metrics` in three states and
// prints, for each, the median and maximum time of a scrape as the scraper sees it (from sending
// the request to the last byte of the answer, over a keep-alive connection on loopback), the size
// of the answer and how many series it holds, and the listener's CPU time per scrape (utime + stime
// from /proc/<pid>/stat over all the scrapes of a state, so less sensitive to a busy machine than
// the times, which include waiting for a core; counted in clock ticks, 10 ms each, so exact to
// 10 ms / --scrapes):
//
//   empty    nothing connected yet
//   streams  10 000 open streams on 10 000 tokens, one event in each token's history
//   grace    the same 10 000 tokens after their streams closed: no stream, every token and its
//            history kept for the grace period (60 s by default)
//
// Each state waits 1 s before its first scrape.
//
// Usage: npm run build && node bench/metrics.js [--tokens 10000] [--scrapes 11] [--cpu-prof DIR]
//        [-- listener flags]   (npm run bench:metrics builds, then runs it)
// Listener flags default to `-i -k 0`; `--metrics` is always added. With `taskset`, the listener
// runs on core 0 and this script on core 1. The first scrape of each state counts too.
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { availableParallelism, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const dashes = process.argv.indexOf('--');
const { values } = parseArgs({
  args: process.argv.slice(2, dashes === -1 ? undefined : dashes),
  options: {
    tokens: { type: 'string', default: '10000' },
    scrapes: { type: 'string', default: '11' },
    'cpu-prof': { type: 'string' },
  },
});
const tokenCount = Number(values.tokens);
const scrapeCount = Number(values.scrapes);
const listenerFlags = dashes === -1 ? ['-i', '-k', '0'] : process.argv.slice(dashes + 1);
const bin = fileURLToPath(new URL('../bin/eventsource-listener.js', import.meta.url));

function hasTaskset() {
  if (availableParallelism() < 2) return false;
  try {
    execFileSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Starts the listener (on core 0 with taskset), with enough descriptors for every stream. */
async function startListener(isPinned) {
  const command = [
    ...(isPinned ? ['taskset', '-c', '0'] : []),
    'sh',
    '-c',
    `ulimit -n ${tokenCount + 1024} && exec "$@"`,
    'sh',
    process.execPath,
    ...(values['cpu-prof'] === undefined
      ? []
      : ['--cpu-prof', `--cpu-prof-dir=${values['cpu-prof']}`]),
    bin,
    '-H',
    '127.0.0.1',
    '-P',
    '0',
    ...listenerFlags,
    '--metrics',
  ];
  const child = spawn(command[0], command.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (text) => (stderr += text));
  const deadline = Date.now() + 15000;
  while (!/listening on/.test(stderr)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`listener: ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return { child, port: Number(/:(\d+)\//.exec(stderr)[1]) };
}

/** GETs or POSTs `path`; resolves with the status, the body and the time taken (ms). */
function request(port, agent, method, path, body) {
  return new Promise((resolve, reject) => {
    const startedAt = performance.now();
    const outgoing = http.request({ host: '127.0.0.1', port, method, path, agent }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (piece) => (text += piece));
      response.on('end', () =>
        resolve({ status: response.statusCode, body: text, ms: performance.now() - startedAt }),
      );
    });
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}

/** Opens one stream per token, `concurrency` at a time; resolves once every one answered 200. */
function openStreams(port, concurrency = 200) {
  const sockets = [];
  let next = 0;
  let opened = 0;
  return new Promise((resolve, reject) => {
    const openOne = () => {
      if (next >= tokenCount) return;
      const index = next++;
      const socket = net.connect(port, '127.0.0.1');
      sockets.push(socket);
      socket.on('error', reject);
      socket.once('connect', () => {
        socket.write(`GET /poll/t${index} HTTP/1.1\r\nHost: bench\r\n\r\n`);
      });
      let head = '';
      const onData = (chunk) => {
        head += chunk.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        socket.off('data', onData);
        // Later bytes (the one event) are read and dropped.
        socket.resume();
        if (!head.startsWith('HTTP/1.1 200')) {
          reject(new Error(`stream ${index}: ${head.split('\r\n')[0]}`));
          return;
        }
        if (++opened === tokenCount) resolve(sockets);
        else openOne();
      };
      socket.on('data', onData);
    };
    for (let i = 0; i < Math.min(concurrency, tokenCount); i++) openOne();
  });
}

/** POSTs one event to every token, over 16 keep-alive connections. */
async function postToEveryToken(port) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  let next = 0;
  const loop = async () => {
    while (next < tokenCount) {
      const index = next++;
      const { status } = await request(port, agent, 'POST', `/ping/t${index}`, `event ${index}`);
      if (status !== 200) throw new Error(`POST /ping/t${index} answered ${status}`);
    }
  };
  await Promise.all(Array.from({ length: 16 }, loop));
  agent.destroy();
}

const median = (sorted) => sorted[(sorted.length - 1) >> 1];

const clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** CPU time (user + system) of a process, in ms, from /proc/<pid>/stat. */
function readCpuMs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicks;
}

/**
 * Scrapes `scrapeCount` times, 100 ms apart (the listener's CPU is counted over the scrapes only);
 * checks that no token became a label value.
 */
async function scrapeState(port, pid, state) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const times = [];
  let cpuMs = 0;
  let last;
  // Let the listener finish what the previous state left (writes, a collection) first.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  for (let i = 0; i < scrapeCount; i++) {
    const cpuBefore = readCpuMs(pid);
    last = await request(port, agent, 'GET', '/metrics');
    cpuMs += readCpuMs(pid) - cpuBefore;
    if (last.status !== 200) throw new Error(`GET /metrics answered ${last.status}`);
    times.push(last.ms);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const stats = JSON.parse((await request(port, agent, 'GET', '/stats')).body);
  agent.destroy();
  const series = last.body.split('\n').filter((line) => line !== '' && !line.startsWith('#'));
  const tokenLabels = series.filter((line) => /"t\d+"/.test(line)).length;
  if (tokenLabels > 0) throw new Error(`${tokenLabels} series carry a token as a label value`);
  const sorted = times.slice().sort((a, b) => a - b);
  return {
    state,
    tokens: stats.tokens,
    streams: stats.streams,
    first: times[0],
    median: median(sorted),
    max: sorted[sorted.length - 1],
    cpu: cpuMs / scrapeCount,
    bytes: Buffer.byteLength(last.body),
    series: series.length,
  };
}

async function main() {
  const isPinned = hasTaskset();
  const loadBefore = loadavg()[0];
  const { child, port } = await startListener(isPinned);
  const rows = [];
  try {
    rows.push(await scrapeState(port, child.pid, 'empty'));
    const sockets = await openStreams(port);
    await postToEveryToken(port);
    rows.push(await scrapeState(port, child.pid, 'streams'));
    for (const socket of sockets) socket.destroy();
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    for (let stats; stats?.streams !== 0; await new Promise((r) => setTimeout(r, 100))) {
      stats = JSON.parse((await request(port, agent, 'GET', '/stats')).body);
    }
    agent.destroy();
    rows.push(await scrapeState(port, child.pid, 'grace'));
  } finally {
    child.kill('SIGTERM');
    await once(child, 'exit');
  }
  const format = (ms) => ms.toFixed(2);
  process.stdout.write(
    [
      `listener flags: ${listenerFlags.join(' ')} --metrics; ${scrapeCount} scrapes per state, 100 ms apart; ` +
        `Node ${process.version}; ${isPinned ? 'listener on core 0, scraper on core 1' : 'not pinned'}; ` +
        `load average (1 min) ${loadBefore.toFixed(1)} before, ${loadavg()[0].toFixed(1)} after; ` +
        `${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`,
      '',
      '| state | tokens | streams | scrape median (ms) | max (ms) | first (ms) | listener CPU per scrape (ms) | bytes | series |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
      ...rows.map(
        (r) =>
          `| ${r.state} | ${r.tokens} | ${r.streams} | ${format(r.median)} | ${format(r.max)} | ${format(r.first)} | ${format(r.cpu)} | ${r.bytes} | ${r.series} |`,
      ),
      '',
    ].join('\n'),
  );
  // The bar is about the states with the tokens (the first is only the reference).
  const withTokens = rows.filter((r) => r.state !== 'empty');
  const worst = Math.max(...withTokens.map((r) => r.max));
  const median = Math.max(...withTokens.map((r) => r.median));
  process.stdout.write(
    `bar: a scrape with ${tokenCount} tokens under 10 ms: median ${format(median)} ms, max ${format(worst)} ms: ` +
      `${worst < 10 ? 'pass' : median < 10 ? 'pass on the median, the maximum is over' : 'FAIL'}\n`,
  );
}

await main();
