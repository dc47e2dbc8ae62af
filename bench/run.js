// The benchmark suite: this toolkit's listener, client, sender and parser measured side by side with
// the alternatives, in one run on one machine.
//
//   npm run bench                              build, then every scenario, 3 repetitions
//   npm run bench -- --quick                   smaller scenarios, 1 repetition (under two minutes)
//   npm run bench -- --reps 5 --json out.json  medians of 5, results also written as JSON
//   npm run bench -- --only unicast,broadcast  some scenarios only
//   npm run bench -- --only h2                 HTTP/2 against HTTP/1.1 on the TLS listener
//   npm run bench -- --servers raw,ours        some servers only
//   npm run bench -- --only unicast --servers ours,net,nchan   beside the net floor and nchan
//   npm run bench -- --only unicast --servers ours,ours-jwt   the listener without and with JWT auth
//   npm run bench -- --only unicast --servers ours,ours-metrics   without and with --metrics
//   npm run bench -- --cpu-prof DIR            Node servers run under `node --cpu-prof` (DIR/<server>/)
//
// Every server starts fresh for every scenario and repetition and is driven by bench/loadgen.js, a
// separate process; with `taskset`, the server runs on core 0 and the generator on core 1. Server
// CPU comes from /proc/<pid>/stat (utime + stime), memory from /proc/<pid>/status (VmRSS). The
// figures are medians over the repetitions; each is also shown as a ratio to the scenario's
// reference (the raw floor for servers). The table is Markdown, for BENCHMARKS.md. The h2 scenario
// runs only our listener, with TLS (test/fixtures), reached over HTTP/2, HTTP/1.1 over TLS and
// cleartext HTTP/1.1; `--servers` does not apply to it. `ours-jwt` (unicast only) is our listener
// with `--jwt-secret`: every stream carries its own JWT in `?access_token=` (a subscribe grant for
// its token, as a browser's would), every POST one publish JWT in `Authorization: Bearer`, shared
// by all publisher connections (as a backend's would); see issue 16 and BENCHMARKS.md "JWT auth".
// `ours-metrics` (unicast only) is our listener with `--metrics`, and the load generator scrapes
// `GET /metrics` once a second during the measured window, as Prometheus would (its usual interval
// is 15 s or more, so this is the harder case); see issue 17 and BENCHMARKS.md "Metrics".
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createNchanConfig, isNchanAvailable } from './servers/nchan.js';

const root = fileURLToPath(new URL('..', import.meta.url));

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    reps: { type: 'string' },
    json: { type: 'string' },
    only: { type: 'string' },
    servers: { type: 'string' },
    'cpu-prof': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (flags.help) {
  const lines = readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n');
  const header = lines.slice(
    0,
    lines.findIndex((line) => !line.startsWith('//')),
  );
  process.stdout.write(header.map((line) => line.slice(3)).join('\n') + '\n');
  process.exit(0);
}
const isQuick = flags.quick;
const reps = flags.reps === undefined ? (isQuick ? 1 : 3) : Number(flags.reps);
if (!Number.isInteger(reps) || reps < 1) {
  process.stderr.write(`--reps must be a positive integer, got ${flags.reps}\n`);
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------
// The machine

function tryExec(command, args) {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return undefined;
  }
}

const cores = availableParallelism();
const hasTaskset = cores >= 2 && tryExec('taskset', ['-c', '0', 'true']) !== undefined;
const clockTicks = Number(tryExec('getconf', ['CLK_TCK'])?.trim()) || 100;
const cpuModel =
  /^Model name:\s*(.+)$/m.exec(tryExec('lscpu', []) ?? '')?.[1]?.trim() ??
  /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ??
  'unknown';
const [softFiles, hardFiles] = (tryExec('sh', ['-c', 'ulimit -Sn; ulimit -Hn']) ?? '')
  .trim()
  .split('\n')
  .map((n) => (n === 'unlimited' ? Infinity : Number(n)));

// ---------------------------------------------------------------------------------------------
// Scenarios

const SERVER_LABELS = {
  raw: 'raw floor (node:http)',
  ours: 'eventsource-listener',
  'ours-jwt': 'eventsource-listener, JWT auth',
  'ours-metrics': 'eventsource-listener, --metrics scraped every 1 s',
  'better-sse': 'better-sse',
  nchan: 'nginx + nchan',
  net: 'net floor (node:net, no HTTP library, no features)',
};

/** [key, label, unit, better] */
const SERVER_SCENARIOS = {
  connections: {
    params: isQuick ? { count: 1000, settleMs: 1000 } : { count: 10000 },
    metrics: [
      ['rssPerSubscriberKiB', 'RSS per idle subscriber', 'KiB', 'lower'],
      ['openMs', 'time to open all', 'ms', 'lower'],
      ['cpuPerConnectionUs', 'server CPU per connection', 'µs', 'lower'],
    ],
  },
  unicast: {
    params: isQuick
      ? { tokens: 100, events: 5000, publishers: 64 }
      : { tokens: 1000, events: 50000, publishers: 64 },
    metrics: [
      ['deliveriesPerSecond', 'deliveries per second', '/s', 'higher'],
      ['cpuPerDeliveryUs', 'server CPU per delivery', 'µs', 'lower'],
      ['latencyP50Ms', 'latency p50', 'ms', 'lower'],
      ['latencyP99Ms', 'latency p99', 'ms', 'lower'],
      ['loadgenBusyPercent', 'load generator busy', '%', 'info'],
    ],
  },
  broadcast: {
    multi: true,
    params: isQuick
      ? { subscribers: 500, events: 40, warmup: 10 }
      : { subscribers: 2000, events: 200, warmup: 10 },
    metrics: [
      ['deliveriesPerSecond', 'deliveries per second', '/s', 'higher'],
      ['latencyP50Ms', 'latency p50 per delivery', 'ms', 'lower'],
      ['latencyP99Ms', 'latency p99 per delivery', 'ms', 'lower'],
      ['lastSubscriberP50Ms', 'until the last subscriber has it, p50', 'ms', 'lower'],
      ['lastSubscriberMaxMs', 'until the last subscriber has it, max', 'ms', 'lower'],
      ['cpuPerDeliveryUs', 'server CPU per delivery', 'µs', 'lower'],
      ['loadgenBusyPercent', 'load generator busy', '%', 'info'],
    ],
  },
};

/**
 * The h2 scenario (issue 15): one TLS listener binary, reached per subject over another transport.
 * Idle: streams on distinct tokens, RSS delta / streams (HTTP/2 sessions opened after the baseline,
 * so their cost is in the figure). Broadcast: as the broadcast scenario (100 events rather than
 * 200, to keep the TLS side short), subscribers on one token, the publisher over HTTP/1.1 (over
 * TLS when the subscribers are) for every subject. TLS connections resume one primed session.
 */
const H2_SCENARIO = {
  idle: isQuick
    ? { streams: 2000, sessions: 20, connections: 500, settleMs: 1000 }
    : { streams: 10000, sessions: 100, connections: 2000 },
  broadcast: isQuick
    ? { subscribers: 500, sessions: 5, events: 40, warmup: 10 }
    : { subscribers: 2000, sessions: 20, events: 100, warmup: 10 },
  metrics: [
    ['rssPerStreamKiB', 'idle: RSS per stream', 'KiB', 'lower'],
    ['cpuPerStreamUs', 'idle: server CPU per stream opened', 'µs', 'lower'],
    ['deliveriesPerSecond', 'broadcast: deliveries per second', '/s', 'higher'],
    ['latencyP50Ms', 'broadcast: latency p50 per delivery', 'ms', 'lower'],
    ['latencyP99Ms', 'broadcast: latency p99 per delivery', 'ms', 'lower'],
    ['lastSubscriberP50Ms', 'broadcast: until the last subscriber has it, p50', 'ms', 'lower'],
    ['cpuPerDeliveryUs', 'broadcast: server CPU per delivery', 'µs', 'lower'],
    ['loadgenBusyPercent', 'broadcast: load generator busy', '%', 'info'],
  ],
};
/** The first is the reference: the bar compares HTTP/2 with HTTP/1.1 over TLS. */
const H2_LABELS = {
  'h1-tls': 'HTTP/1.1 over TLS, 1 stream per connection',
  h2: `HTTP/2 over TLS, ${H2_SCENARIO.idle.streams / H2_SCENARIO.idle.sessions} streams per session`,
  h1: 'HTTP/1.1 cleartext, 1 stream per connection',
};
const TLS_FILES = {
  key: join(root, 'test/fixtures/key.pem'),
  cert: join(root, 'test/fixtures/cert.pem'),
  ca: join(root, 'test/fixtures/ca.pem'),
};

const CLIENT_LABELS = {
  eventsource: '`eventsource` 4 (addEventListener)',
  toolkit: 'EventSourceClient (addEventListener)',
  'toolkit-onEvent': 'EventSourceClient (onEvent)',
  'cli-json': 'eventsource-client --json > file',
};
const PUBLISH_LABELS = {
  undici: 'undici.request(), 16 loops',
  sendRequest: 'sendRequest(), 16 loops',
  'cli-batch': 'eventsource-request --batch (1 connection)',
};
const clientCount = isQuick ? 30000 : 200000;
const publishCount = isQuick ? 1000 : 20000;

const ALL_SCENARIOS = ['connections', 'unicast', 'broadcast', 'h2', 'client', 'publish', 'parser'];
const selected = flags.only === undefined ? ALL_SCENARIOS : flags.only.split(',');
for (const name of selected) {
  if (!ALL_SCENARIOS.includes(name)) {
    process.stderr.write(`--only: unknown scenario ${name} (${ALL_SCENARIOS.join(', ')})\n`);
    process.exit(2);
  }
}
const hasNchan = isNchanAvailable();
let servers = [
  'raw',
  'ours',
  'ours-jwt',
  'ours-metrics',
  'better-sse',
  'net',
  ...(hasNchan ? ['nchan'] : []),
];
if (flags.servers !== undefined) {
  servers = flags.servers.split(',').filter((s) => servers.includes(s) || s === 'ours');
}
/** Scenarios that `ours-jwt` runs in: authorization costs per request, so unicast shows it. */
const JWT_SCENARIOS = new Set(['unicast']);
/** Scenarios that `ours-metrics` runs in: the metrics are counted per POST, so unicast shows it. */
const METRICS_SCENARIOS = new Set(['unicast']);
/** How often the load generator scrapes `ours-metrics` during the measured window. */
const SCRAPE_EVERY_MS = 1000;
/** The HMAC secret of `ours-jwt`, fresh for every run (the load generator mints the JWTs). */
const jwtSecret = randomBytes(32).toString('base64url');

// More descriptors than connections are needed: raise the soft limit for the children when the
// hard one allows, else open fewer connections and say so.
const neededFiles = SERVER_SCENARIOS.connections.params.count + 1024;
let fileLimitPrefix = [];
if (softFiles < neededFiles) {
  if (hardFiles >= neededFiles) {
    fileLimitPrefix = ['sh', '-c', `ulimit -n ${neededFiles} && exec "$@"`, 'sh'];
  } else {
    SERVER_SCENARIOS.connections.params.count = Math.max(100, hardFiles - 1024);
    process.stderr.write(
      `bench: ulimit -n allows ${hardFiles} files; opening ${SERVER_SCENARIOS.connections.params.count} connections instead of 10 000\n`,
    );
  }
}

function pinned(core, command) {
  return [...(hasTaskset ? ['taskset', '-c', String(core)] : []), ...fileLimitPrefix, ...command];
}

// ---------------------------------------------------------------------------------------------
// Processes

function spawnPinned(core, command, options) {
  const [file, ...args] = pinned(core, command);
  return spawn(file, args, { cwd: root, ...options });
}

/** Keeps the last few KiB of a stream, for error messages. */
function tail(stream) {
  const state = { text: '' };
  stream.setEncoding('utf8');
  stream.on('data', (text) => {
    state.text = (state.text + text).slice(-4096);
  });
  return state;
}

function waitForLine(child, stderr, pattern, timeoutMs) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no "${pattern}" within ${timeoutMs} ms: ${stderr.text.trim()}`));
    }, timeoutMs);
    const onData = () => {
      const match = pattern.exec(stderr.text);
      if (match) {
        cleanup();
        resolve(match);
      }
    };
    const onExit = (code) => {
      cleanup();
      reject(new Error(`exited ${code} before listening: ${stderr.text.trim()}`));
    };
    const cleanup = () => {
      clearTimeout(timer);
      child.stderr.off('data', onData);
      child.off('exit', onExit);
    };
    child.stderr.on('data', onData);
    child.once('exit', onExit);
    onData();
  });
}

async function stopProcess(child, timeoutMs = 5000) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  await exited;
  clearTimeout(timer);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function waitForPort(port, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const isOpen = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (isOpen) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on port ${port}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function childrenOf(pid) {
  const found = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) found.push(Number(entry));
    } catch {
      // The process ended while we looked: not a child any more.
    }
  }
  return found;
}

/**
 * Starts a server on core 0.
 * @returns {Promise<{url: string, pids: number[], stop: () => Promise<void>}>}
 */
async function startServer(name, { multi = false, tls = false } = {}) {
  if (name === 'nchan') {
    const port = await freePort();
    const { dir, command, args } = createNchanConfig({
      host: '127.0.0.1',
      port,
      maxConnections: SERVER_SCENARIOS.connections.params.count + 1024,
    });
    const child = spawnPinned(0, [command, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    const stderr = tail(child.stderr);
    await waitForPort(port, 10000).catch((error) => {
      child.kill('SIGKILL');
      throw new Error(`${error.message}: ${stderr.text.trim()}`);
    });
    let workers = childrenOf(child.pid);
    for (let i = 0; i < 50 && workers.length === 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      workers = childrenOf(child.pid);
    }
    return {
      url: `http://127.0.0.1:${port}/`,
      pids: [child.pid, ...workers],
      stop: async () => {
        await stopProcess(child);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  const nodeFlags =
    flags['cpu-prof'] !== undefined
      ? ['--cpu-prof', `--cpu-prof-dir=${join(flags['cpu-prof'], name)}`]
      : [];
  const isJwt = name === 'ours-jwt';
  const script =
    name === 'ours' || isJwt || name === 'ours-metrics'
      ? [
          'bin/eventsource-listener.js',
          '-H',
          '127.0.0.1',
          '-P',
          '0',
          '-i',
          '-k',
          '0',
          ...(multi ? ['--multi'] : []),
          ...(tls ? ['-K', TLS_FILES.key, '-C', TLS_FILES.cert] : []),
          ...(name === 'ours-metrics' ? ['--metrics'] : []),
        ]
      : [`bench/servers/${name}.js`, '-H', '127.0.0.1', '-P', '0'];
  const child = spawnPinned(0, [process.execPath, ...nodeFlags, ...script], {
    stdio: ['ignore', 'ignore', 'pipe'],
    // Through the environment rather than `--jwt-secret`, so it stays out of `ps`.
    ...(isJwt ? { env: { ...process.env, EVENTSOURCE_JWT_SECRET: jwtSecret } } : {}),
  });
  const stderr = tail(child.stderr);
  const [, url] = await waitForLine(child, stderr, /listening on (\S+)/, 15000);
  return { url, pids: [child.pid], stop: () => stopProcess(child) };
}

/** Runs the load generator on core 1 and returns its JSON result. */
async function runLoadgen(params) {
  const deadlineMs = isQuick ? 60000 : 240000;
  const child = spawnPinned(
    1,
    [process.execPath, 'bench/loadgen.js', JSON.stringify({ clockTicks, deadlineMs, ...params })],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const stdout = tail(child.stdout);
  const stderr = tail(child.stderr);
  const [code] = await once(child, 'exit');
  if (code !== 0) throw new Error(`load generator exited ${code}: ${stderr.text.trim()}`);
  const line = stdout.text.trim().split('\n').pop();
  return JSON.parse(line);
}

// ---------------------------------------------------------------------------------------------
// Running

/** results[scenario][subject] = [{ metrics, info, checks, checkTotal } | { error }] per rep */
const results = {};
function record(scenario, subject, result) {
  results[scenario] ??= {};
  (results[scenario][subject] ??= []).push(result);
}

function log(text) {
  process.stderr.write(`${text}\n`);
}

function brief(metrics) {
  return Object.entries(metrics)
    .map(([key, value]) => `${key}=${format(value)}`)
    .join(' ');
}

async function measure(scenario, subject, rep, run) {
  const started = Date.now();
  try {
    const result = await run();
    record(scenario, subject, result);
    const checks =
      result.checkTotal > 0
        ? ` CHECK FAILED ${JSON.stringify(result.checks)}`
        : result.rows
          ? ''
          : ' (all deliveries checked)';
    const scrapes = result.info?.scrapes;
    const scraped =
      scrapes === undefined
        ? ''
        : ` scrapes=${scrapes.count} (median ${format(scrapes.medianMs)} ms, max ${format(scrapes.maxMs)} ms)`;
    log(
      `[${scenario} ${rep + 1}/${reps}] ${subject}: ${result.metrics ? brief(result.metrics) : `${result.rows.length} rows`}${scraped}${checks} (${((Date.now() - started) / 1000).toFixed(1)} s)`,
    );
  } catch (error) {
    record(scenario, subject, { error: error.message });
    log(`[${scenario} ${rep + 1}/${reps}] ${subject}: FAILED ${error.message}`);
  }
}

async function runServerScenario(name) {
  const scenario = SERVER_SCENARIOS[name];
  for (let rep = 0; rep < reps; rep++) {
    // Servers take turns within each repetition, so drift on this shared machine hits all alike.
    for (const server of servers) {
      if (server === 'ours-jwt' && !JWT_SCENARIOS.has(name)) continue;
      if (server === 'ours-metrics' && !METRICS_SCENARIOS.has(name)) continue;
      await measure(name, server, rep, async () => {
        const started = await startServer(server, { multi: scenario.multi === true });
        try {
          return await runLoadgen({
            mode: name,
            url: started.url,
            pids: started.pids,
            ...scenario.params,
            ...(server === 'ours-jwt' ? { jwtSecret } : {}),
            ...(server === 'ours-metrics' ? { scrapeEveryMs: SCRAPE_EVERY_MS } : {}),
          });
        } finally {
          await started.stop();
        }
      });
    }
  }
}

async function runClientScenario() {
  for (let rep = 0; rep < reps; rep++) {
    for (const client of Object.keys(CLIENT_LABELS)) {
      await measure('client', client, rep, async () => {
        const started = await startServer('raw');
        try {
          return await runLoadgen({
            mode: 'client',
            client,
            url: started.url,
            pids: started.pids,
            count: clientCount,
          });
        } finally {
          await started.stop();
        }
      });
    }
  }
}

async function runPublishScenario() {
  for (let rep = 0; rep < reps; rep++) {
    for (const client of Object.keys(PUBLISH_LABELS)) {
      await measure('publish', client, rep, async () => {
        const started = await startServer('ours');
        try {
          return await runLoadgen({
            mode: 'publish',
            client,
            url: started.url,
            pids: started.pids,
            count: publishCount,
            warmup: isQuick ? 200 : 500,
          });
        } finally {
          await started.stop();
        }
      });
    }
  }
}

/** Starts a server, runs `fn` with it, and stops it whatever happens. */
async function withServer(name, options, fn) {
  const started = await startServer(name, options);
  try {
    return await fn(started);
  } finally {
    await started.stop();
  }
}

/** Per repetition and subject: idle streams' memory, then a broadcast, each on a fresh listener. */
async function runH2Scenario() {
  const { idle, broadcast } = H2_SCENARIO;
  for (let rep = 0; rep < reps; rep++) {
    for (const transport of Object.keys(H2_LABELS)) {
      await measure('h2', transport, rep, async () => {
        const isTls = transport !== 'h1';
        const common = { transport, ca: TLS_FILES.ca };
        const idleResult = await withServer('ours', { tls: isTls }, (started) =>
          runLoadgen({
            mode: 'connections',
            url: started.url,
            pids: started.pids,
            ...common,
            count: transport === 'h2' ? idle.streams : idle.connections,
            sessions: idle.sessions,
            ...(idle.settleMs === undefined ? {} : { settleMs: idle.settleMs }),
          }),
        );
        const broadcastResult = await withServer('ours', { tls: isTls, multi: true }, (started) =>
          runLoadgen({
            mode: 'broadcast',
            url: started.url,
            pids: started.pids,
            ...common,
            subscribers: broadcast.subscribers,
            sessions: broadcast.sessions,
            events: broadcast.events,
            warmup: broadcast.warmup,
          }),
        );
        const checks = { ...idleResult.checks };
        for (const [key, count] of Object.entries(broadcastResult.checks)) {
          checks[key] = (checks[key] ?? 0) + count;
        }
        const { rssPerSubscriberKiB, cpuPerConnectionUs } = idleResult.metrics;
        return {
          metrics: {
            rssPerStreamKiB: rssPerSubscriberKiB,
            cpuPerStreamUs: cpuPerConnectionUs,
            ...broadcastResult.metrics,
          },
          info: { idle: idleResult.info, broadcast: broadcastResult.info },
          checks,
          checkTotal: idleResult.checkTotal + broadcastResult.checkTotal,
        };
      });
    }
  }
}

async function runParserScenario() {
  for (let rep = 0; rep < reps; rep++) {
    await measure('parser', 'parser', rep, () => runLoadgen({ mode: 'parser', quick: isQuick }));
  }
}

// ---------------------------------------------------------------------------------------------
// Medians, the table and the bars

function median(values) {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function format(value) {
  if (!Number.isFinite(value)) return 'n/a';
  const abs = Math.abs(value);
  if (abs >= 1000) return Math.round(value).toLocaleString('en-US');
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

/** Per scenario and subject: the medians, how many reps succeeded, the summed check failures. */
function summarizeResults() {
  const summary = {};
  for (const [scenario, subjects] of Object.entries(results)) {
    if (scenario === 'parser') continue;
    summary[scenario] = {};
    for (const [subject, runs] of Object.entries(subjects)) {
      const ok = runs.filter((run) => run.error === undefined);
      const keys = new Set(ok.flatMap((run) => Object.keys(run.metrics)));
      const medians = {};
      for (const key of keys) medians[key] = median(ok.map((run) => run.metrics[key]));
      summary[scenario][subject] = {
        medians,
        runs: ok.length,
        errors: runs.filter((run) => run.error !== undefined).map((run) => run.error),
        checkFailures: ok.reduce((sum, run) => sum + run.checkTotal, 0),
      };
    }
  }
  const parserRuns = (results.parser?.parser ?? []).filter((run) => run.error === undefined);
  if (parserRuns.length > 0) {
    summary.parser = {};
    const byParser = {};
    for (const run of parserRuns) {
      for (const row of run.rows) {
        const size = row.workload.startsWith('small') ? 'small' : 'large';
        const entry = ((byParser[row.parser] ??= {})[size] ??= {
          mb: [],
          events: [],
          label: row.workload,
        });
        entry.mb.push(row.mbPerSecond);
        entry.events.push(row.eventsPerSecond);
      }
    }
    for (const [parser, sizes] of Object.entries(byParser)) {
      const medians = {};
      const workloads = {};
      for (const [size, entry] of Object.entries(sizes)) {
        medians[`${size}MBps`] = median(entry.mb);
        medians[`${size}EventsPerSecond`] = median(entry.events);
        workloads[size] = entry.label;
      }
      summary.parser[parser] = {
        medians,
        runs: parserRuns.length,
        errors: [],
        checkFailures: 0,
        workloads,
      };
    }
  }
  return summary;
}

function tableRows(summary) {
  const rows = [];
  const add = (scenario, [key, label, unit, better], subjects, reference, labels) => {
    const data = summary[scenario];
    if (data === undefined) return;
    const refValue = data[reference]?.medians[key];
    for (const subject of subjects) {
      const entry = data[subject];
      if (entry === undefined) continue;
      const value = entry.medians[key];
      let cell = entry.runs === 0 ? `failed: ${entry.errors[0] ?? ''}` : format(value);
      if (entry.checkFailures > 0) cell += ' ⚠ deliveries wrong';
      const ratio =
        better === 'info' ||
        !Number.isFinite(refValue) ||
        !Number.isFinite(value) ||
        entry.runs === 0
          ? ''
          : `${(value / refValue).toFixed(2)}×`;
      rows.push([
        scenario,
        `${label} (${unit})${better === 'info' ? '' : `, ${better} is better`}`,
        labels[subject] ?? subject,
        cell,
        ratio,
      ]);
    }
  };
  for (const [scenario, definition] of Object.entries(SERVER_SCENARIOS)) {
    for (const metric of definition.metrics) add(scenario, metric, servers, 'raw', SERVER_LABELS);
  }
  for (const metric of H2_SCENARIO.metrics) {
    add('h2', metric, Object.keys(H2_LABELS), 'h1-tls', H2_LABELS);
  }
  add(
    'client',
    ['eventsPerSecond', 'events per second', '/s', 'higher'],
    Object.keys(CLIENT_LABELS),
    'eventsource',
    CLIENT_LABELS,
  );
  add(
    'publish',
    ['eventsPerSecond', 'events per second', '/s', 'higher'],
    Object.keys(PUBLISH_LABELS),
    'undici',
    PUBLISH_LABELS,
  );
  add(
    'publish',
    ['clientCpuPerEventUs', 'publisher process CPU per event', 'µs', 'lower'],
    Object.keys(PUBLISH_LABELS),
    'undici',
    PUBLISH_LABELS,
  );
  for (const size of ['small', 'large']) {
    const label = summary.parser?.['eventsource-toolkit bytes']?.workloads?.[size] ?? size;
    for (const mode of ['bytes', 'string']) {
      add(
        'parser',
        [`${size}MBps`, `${label}, ${mode} input`, 'MB/s', 'higher'],
        [`eventsource-parser ${mode}`, `eventsource-toolkit ${mode}`],
        `eventsource-parser ${mode}`,
        {},
      );
    }
  }
  return rows;
}

function evaluateBars(summary) {
  const get = (scenario, subject, key) => summary[scenario]?.[subject]?.medians[key];
  const bars = [];
  const bar = (name, scenario, ours, reference, compare, required, unit) => {
    if (!Number.isFinite(ours) || !Number.isFinite(reference)) return;
    const ratio = ours / reference;
    bars.push({
      name,
      scenario,
      ours,
      reference,
      ratio,
      required,
      unit,
      pass: compare(ratio, ours),
    });
  };
  bar(
    'memory: RSS per idle subscriber ≤ 1.05 × raw',
    'connections',
    get('connections', 'ours', 'rssPerSubscriberKiB'),
    get('connections', 'raw', 'rssPerSubscriberKiB'),
    (r) => r <= 1.05,
    '≤ 1.05×',
    'KiB',
  );
  bar(
    'unicast: server CPU per delivery ≤ 1.0 × raw',
    'unicast',
    get('unicast', 'ours', 'cpuPerDeliveryUs'),
    get('unicast', 'raw', 'cpuPerDeliveryUs'),
    (r) => r <= 1.0,
    '≤ 1.00×',
    'µs',
  );
  bar(
    'unicast with JWT auth: server CPU per delivery ≤ 1.1 × without auth',
    'unicast',
    get('unicast', 'ours-jwt', 'cpuPerDeliveryUs'),
    get('unicast', 'ours', 'cpuPerDeliveryUs'),
    (r) => r <= 1.1,
    '≤ 1.10×',
    'µs',
  );
  bar(
    'unicast with --metrics: server CPU per delivery ≤ 1.05 × without',
    'unicast',
    get('unicast', 'ours-metrics', 'cpuPerDeliveryUs'),
    get('unicast', 'ours', 'cpuPerDeliveryUs'),
    (r) => r <= 1.05,
    '≤ 1.05×',
    'µs',
  );
  bar(
    'unicast: deliveries/s ≥ 1.25 × better-sse',
    'unicast',
    get('unicast', 'ours', 'deliveriesPerSecond'),
    get('unicast', 'better-sse', 'deliveriesPerSecond'),
    (r) => r >= 1.25,
    '≥ 1.25×',
    '/s',
  );
  bar(
    'broadcast: deliveries/s ≥ raw',
    'broadcast',
    get('broadcast', 'ours', 'deliveriesPerSecond'),
    get('broadcast', 'raw', 'deliveriesPerSecond'),
    (r) => r >= 1.0,
    '≥ 1.00×',
    '/s',
  );
  const p50 = get('broadcast', 'ours', 'latencyP50Ms');
  if (Number.isFinite(p50)) {
    bars.push({
      name: 'broadcast: median delivery latency ≤ 15 ms',
      scenario: 'broadcast',
      ours: p50,
      reference: 15,
      ratio: p50 / 15,
      required: '≤ 15 ms',
      unit: 'ms',
      pass: p50 <= 15,
    });
  }
  // Issue 22 (performance round two). The net floor's own ratio on the same bar follows each one
  // that nchan or the raw floor sets: what Node's socket layer alone reaches there.
  bar(
    'memory: RSS per idle subscriber ≤ 0.7 × raw (issue 22)',
    'connections',
    get('connections', 'ours', 'rssPerSubscriberKiB'),
    get('connections', 'raw', 'rssPerSubscriberKiB'),
    (r) => r <= 0.7,
    '≤ 0.70×',
    'KiB',
  );
  bar(
    'opening a stream: server CPU per connection ≤ 1.0 × raw (issue 22)',
    'connections',
    get('connections', 'ours', 'cpuPerConnectionUs'),
    get('connections', 'raw', 'cpuPerConnectionUs'),
    (r) => r <= 1.0,
    '≤ 1.00×',
    'µs',
  );
  bar(
    'opening a stream: time to open all ≤ 1.0 × raw (issue 22)',
    'connections',
    get('connections', 'ours', 'openMs'),
    get('connections', 'raw', 'openMs'),
    (r) => r <= 1.0,
    '≤ 1.00×',
    'ms',
  );
  for (const subject of ['ours', 'net']) {
    const who = subject === 'net' ? 'the net floor' : 'unicast';
    bar(
      `${who}: server CPU per delivery ≤ 1.0 × nginx + nchan (issue 22)`,
      'unicast',
      get('unicast', subject, 'cpuPerDeliveryUs'),
      get('unicast', 'nchan', 'cpuPerDeliveryUs'),
      (r) => r <= 1.0,
      '≤ 1.00×',
      'µs',
    );
    bar(
      `${who}: deliveries/s ≥ 1.0 × nginx + nchan (issue 22)`,
      'unicast',
      get('unicast', subject, 'deliveriesPerSecond'),
      get('unicast', 'nchan', 'deliveriesPerSecond'),
      (r) => r >= 1.0,
      '≥ 1.00×',
      '/s',
    );
  }
  for (const subject of ['ours', 'net', 'nchan']) {
    const who = { ours: 'broadcast', net: 'the net floor', nchan: 'nginx + nchan' }[subject];
    bar(
      `${who}: server CPU per delivery ≤ 0.6 × raw (issue 22)`,
      'broadcast',
      get('broadcast', subject, 'cpuPerDeliveryUs'),
      get('broadcast', 'raw', 'cpuPerDeliveryUs'),
      (r) => r <= 0.6,
      '≤ 0.60×',
      'µs',
    );
    const median = get('broadcast', subject, 'latencyP50Ms');
    if (Number.isFinite(median)) {
      bars.push({
        name: `${who}: median delivery latency ≤ 8 ms (issue 22)`,
        scenario: 'broadcast',
        ours: median,
        reference: 8,
        ratio: median / 8,
        required: '≤ 8 ms',
        unit: 'ms',
        pass: median <= 8,
      });
    }
  }
  bar(
    'h2: RSS per idle HTTP/2 stream ≤ 0.5 × per TLS HTTP/1.1 stream',
    'h2',
    get('h2', 'h2', 'rssPerStreamKiB'),
    get('h2', 'h1-tls', 'rssPerStreamKiB'),
    (r) => r <= 0.5,
    '≤ 0.50×',
    'KiB',
  );
  bar(
    'client: EventSourceClient ≥ 1.5 × `eventsource` events/s (both addEventListener)',
    'client',
    get('client', 'toolkit', 'eventsPerSecond'),
    get('client', 'eventsource', 'eventsPerSecond'),
    (r) => r >= 1.5,
    '≥ 1.50×',
    '/s',
  );
  const library = Math.max(
    get('client', 'toolkit', 'eventsPerSecond') ?? NaN,
    get('client', 'toolkit-onEvent', 'eventsPerSecond') ?? NaN,
  );
  bar(
    'client: `eventsource-client --json` ≥ 0.5 × the faster library way',
    'client',
    get('client', 'cli-json', 'eventsPerSecond'),
    library,
    (r) => r >= 0.5,
    '≥ 0.50×',
    '/s',
  );
  bar(
    'publish: sendRequest ≥ 0.9 × undici.request events/s',
    'publish',
    get('publish', 'sendRequest', 'eventsPerSecond'),
    get('publish', 'undici', 'eventsPerSecond'),
    (r) => r >= 0.9,
    '≥ 0.90×',
    '/s',
  );
  for (const size of ['small', 'large']) {
    for (const mode of ['bytes', 'string']) {
      bar(
        `parser: ${size} events, ${mode} input ≥ eventsource-parser`,
        'parser',
        get('parser', `eventsource-toolkit ${mode}`, `${size}MBps`),
        get('parser', `eventsource-parser ${mode}`, `${size}MBps`),
        (r) => r >= 1.0,
        '≥ 1.00×',
        'MB/s',
      );
    }
  }
  return bars;
}

function markdown(rows, bars, meta) {
  const lines = [
    `Command: \`${meta.command}\` (${meta.reps} repetition${meta.reps === 1 ? '' : 's'}, medians)  `,
    `Node ${meta.node}, ${meta.cpu}, ${meta.cores} cores; ${meta.pinning}  `,
    `Load average (1 min) before / after the run: ${meta.loadAverage.before.toFixed(1)} / ${meta.loadAverage.after.toFixed(1)}; ${meta.seconds} s  `,
    `Date: ${meta.date}`,
    '',
    '| scenario | metric | subject | median | × reference |',
    '| --- | --- | --- | ---: | ---: |',
  ];
  for (const row of rows) lines.push(`| ${row.join(' | ')} |`);
  lines.push(
    '',
    'The reference of each scenario is its first subject: the raw floor for servers, HTTP/1.1 over TLS for h2,',
    '`eventsource` for clients, the undici loop for publishing, eventsource-parser for parsing.',
    '',
    '| bar | required | ours | reference | ratio | |',
    '| --- | --- | ---: | ---: | ---: | --- |',
  );
  for (const b of bars) {
    lines.push(
      `| ${b.name} | ${b.required} | ${format(b.ours)} ${b.unit} | ${format(b.reference)} ${b.unit} | ${b.ratio.toFixed(2)}× | ${b.pass ? 'pass' : '**FAIL**'} |`,
    );
  }
  return lines.join('\n');
}

async function main() {
  const started = Date.now();
  const loadBefore = loadavg()[0];
  const pinning = hasTaskset
    ? 'servers on core 0 and the load generator on core 1 (taskset)'
    : 'not pinned (no taskset or one core)';
  log(
    `bench: node ${process.version}, ${cpuModel}, ${cores} cores, ${pinning}; ${reps} rep(s)${isQuick ? ', quick' : ''}`,
  );
  if (!hasNchan) log('bench: nginx or the nchan module is not installed; nchan is left out');
  for (const name of selected) {
    if (name in SERVER_SCENARIOS) await runServerScenario(name);
    else if (name === 'h2') await runH2Scenario();
    else if (name === 'client') await runClientScenario();
    else if (name === 'publish') await runPublishScenario();
    else if (name === 'parser') await runParserScenario();
  }
  const summary = summarizeResults();
  const bars = evaluateBars(summary);
  const argv = process.argv.slice(2).join(' ');
  const meta = {
    command: `npm run bench${argv ? ` -- ${argv}` : ''}`,
    reps,
    quick: isQuick,
    node: process.version,
    cpu: cpuModel,
    cores,
    pinning,
    date: new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC',
    seconds: Math.round((Date.now() - started) / 1000),
    loadAverage: { before: loadBefore, after: loadavg()[0] },
  };
  const text = markdown(tableRows(summary), bars, meta);
  process.stdout.write(`${text}\n`);
  log(`bench: done in ${meta.seconds} s`);
  if (flags.json !== undefined) {
    writeFileSync(flags.json, `${JSON.stringify({ meta, summary, bars, results }, null, 2)}\n`);
    log(`bench: results written to ${flags.json}`);
  }
  const hasFailures = Object.values(summary).some((subjects) =>
    Object.values(subjects).some((s) => s.checkFailures > 0 || s.runs === 0),
  );
  if (hasFailures) {
    log('bench: some runs failed or delivered wrongly (see above)');
    process.exitCode = 1;
  }
}

await main();
