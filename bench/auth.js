// The cost of JWT authorization per request (issue 16, "Bars"): what an accepted POST with a
// cached JWT costs, what a refused one costs (a bad signature, a never-seen JWT each time), what
// the first verification of an RS256 and an ES256 JWT costs, and whether any of it blocks the
// event loop. It prints figures; it is not a test.
//
//   npm run bench:auth                      build, then every part (about a minute)
//   node bench/auth.js --count 5000         requests per HTTP phase (default 4000)
//   node bench/auth.js --reps 5             HTTP phases taken in turn 5 times, medians (default 3)
//   node bench/auth.js --json out.json      the figures also as JSON
//
// Part 1, over HTTP: every phase starts a fresh `eventsource-listener -i -k 0` (on core 0 with
// taskset; this process on core 1), opens one stream per publisher connection, warms up, then
// sends `count` POSTs over 16 keep-alive connections, one in flight per connection. The listener
// is preloaded with this file (BENCH_AUTH_PROBE=1): over IPC it reports its CPU time over the
// phase, all threads (process.cpuUsage()) and its main thread alone (/proc/self/task/<pid>/stat:
// WebCrypto verifies on libuv's thread pool, so the two differ), and the event-loop delay seen by
// `perf_hooks.monitorEventLoopDelay` (1 ms resolution: an idle loop reads about 1 ms).
// Part 2, in this process: createJwtAuthorizer() alone, µs per check, awaited one at a time and
// 64 at once, beside two ways of checking an HS256 JWT that src/ does not use (a CryptoKey imported
// once, node:crypto's HMAC), to size the mitigation proposed in BENCHMARKS.md. Part 3: what
// distinct refused JWTs do to the cache of verified JWTs.
import { execFileSync, spawn } from 'node:child_process';
import {
  createHmac,
  generateKeyPairSync,
  randomBytes,
  timingSafeEqual,
  webcrypto,
} from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import v8 from 'node:v8';
import vm from 'node:vm';

const root = fileURLToPath(new URL('..', import.meta.url));

/** A collector, without `--expose-gc` on the command line (as src/listener/reclaim.ts finds one). */
function findGc() {
  v8.setFlagsFromString('--expose-gc');
  try {
    return vm.runInNewContext('gc');
  } finally {
    v8.setFlagsFromString('--no-expose-gc');
  }
}

/** CPU time of this process's main thread in ms (clock ticks, usually 10 ms each). */
function mainThreadCpuMs(clockTicks) {
  const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicks;
}

function cpuUsageMs() {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

// ---------------------------------------------------------------------------------------------
// The probe, preloaded into the listener (`node --import bench/auth.js bin/eventsource-listener.js`)

function installProbe() {
  const clockTicks = Number(process.env.BENCH_AUTH_CLOCK_TICKS) || 100;
  const delay = monitorEventLoopDelay({ resolution: 1 });
  let start;
  process.on('message', (message) => {
    if (message === 'reset') {
      delay.disable();
      delay.reset();
      delay.enable();
      start = { cpuMs: cpuUsageMs(), mainMs: mainThreadCpuMs(clockTicks) };
      process.send({ reset: true });
    } else if (message === 'read' || message === 'read-heap') {
      delay.disable();
      const cpuMs = cpuUsageMs() - start.cpuMs;
      const mainMs = mainThreadCpuMs(clockTicks) - start.mainMs;
      const ms = (ns) => ns / 1e6;
      let heapUsedMiB;
      if (message === 'read-heap') {
        findGc()();
        heapUsedMiB = process.memoryUsage().heapUsed / 2 ** 20;
      }
      process.send({
        cpuMs,
        mainMs,
        delay: {
          p50: ms(delay.percentile(50)),
          p99: ms(delay.percentile(99)),
          max: ms(delay.max),
        },
        heapUsedMiB,
      });
    }
  });
  // The IPC channel must not keep the listener alive once it is told to stop.
  process.channel?.unref();
}

// ---------------------------------------------------------------------------------------------
// The driver

async function main() {
  const { values: flags } = parseArgs({
    options: {
      count: { type: 'string', default: '4000' },
      reps: { type: 'string', default: '3' },
      json: { type: 'string' },
    },
  });
  const count = Number(flags.count);
  const reps = Number(flags.reps);
  const { SignJWT, jwtVerify, createJwtAuthorizer } = await loadLibraries();
  const clockTicks = 100;
  const hasTaskset = availableParallelism() >= 2 && canRun('taskset', ['-c', '0', 'true']);
  const dir = mkdtempSync(join(tmpdir(), 'bench-auth-'));
  const loadBefore = loadavg();
  const started = Date.now();
  const secret = randomBytes(32).toString('base64url');
  const otherSecret = randomBytes(32).toString('base64url');
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const keys = {
    HS256: { sign: new TextEncoder().encode(secret), flag: ['--jwt-secret', secret] },
    RS256: { sign: rsa.privateKey, flag: ['--jwt-key', writeKey(dir, 'rsa.pem', rsa.publicKey)] },
    ES256: { sign: ec.privateKey, flag: ['--jwt-key', writeKey(dir, 'ec.pem', ec.publicKey)] },
  };
  let serial = 0;
  /** A JWT never seen before (a fresh `jti`), granting `grant`. */
  const mint = (alg, grant, key = keys[alg].sign) =>
    new SignJWT({ eventsource: grant })
      .setProtectedHeader({ alg })
      .setIssuedAt()
      .setExpirationTime('1h')
      .setJti(String(serial++))
      .sign(key);
  const mintMany = async (n, make) => {
    const out = [];
    for (let i = 0; i < n; i += 64) {
      out.push(...(await Promise.all(Array.from({ length: Math.min(64, n - i) }, make))));
    }
    return out;
  };
  const publishGrant = { publish: ['*'] };
  const warmup = Math.min(1000, count);

  // Part 1: HTTP phases. `jwts(n)` gives the Authorization of each request (undefined: none).
  const phases = [
    { name: 'no auth: accepted POST', alg: undefined, jwts: () => [] },
    {
      name: '(a) HS256, accepted POST, cached JWT (one shared publish JWT)',
      alg: 'HS256',
      jwts: async () => [await mint('HS256', publishGrant)],
    },
    {
      name: 'HS256, accepted POST, never-seen valid JWT each time',
      alg: 'HS256',
      jwts: (n) => mintMany(n, () => mint('HS256', publishGrant)),
    },
    {
      name: '(b) HS256, refused POST, never-seen JWT with a bad signature each time',
      alg: 'HS256',
      jwts: (n) =>
        mintMany(n, () => mint('HS256', publishGrant, new TextEncoder().encode(otherSecret))),
    },
    {
      name: 'HS256, refused POST, the same bad JWT each time (refusal cached)',
      alg: 'HS256',
      jwts: async () => [await mint('HS256', publishGrant, new TextEncoder().encode(otherSecret))],
    },
    { name: 'HS256, refused POST, no JWT', alg: 'HS256', jwts: () => [undefined] },
    {
      name: 'RS256, accepted POST, cached JWT',
      alg: 'RS256',
      jwts: async () => [await mint('RS256', publishGrant)],
    },
    {
      name: '(c) RS256, accepted POST, never-seen JWT each time (first verification)',
      alg: 'RS256',
      jwts: (n) => mintMany(n, () => mint('RS256', publishGrant)),
    },
    {
      name: 'ES256, accepted POST, cached JWT',
      alg: 'ES256',
      jwts: async () => [await mint('ES256', publishGrant)],
    },
    {
      name: '(c) ES256, accepted POST, never-seen JWT each time (first verification)',
      alg: 'ES256',
      jwts: (n) => mintMany(n, () => mint('ES256', publishGrant)),
    },
  ];
  // Every phase has a fresh listener, so the JWTs it sends are never-seen in every repetition.
  for (const phase of phases) {
    phase.all = await phase.jwts(warmup + count);
    phase.subscribeJwt = phase.alg && (await mint(phase.alg, { subscribe: ['*'] }));
    phase.runs = [];
  }
  for (let rep = 0; rep < reps; rep++) {
    for (const phase of phases) {
      const all = phase.all;
      const result = await runPhase({
        flag: phase.alg === undefined ? [] : keys[phase.alg].flag,
        subscribeJwt: phase.subscribeJwt,
        warmup,
        count,
        jwtOf: (i) => (all.length <= 1 ? all[0] : all[i]),
        hasTaskset,
        clockTicks,
      });
      phase.runs.push(result);
      log(`[${rep + 1}/${reps}] ${phase.name}: ${describe(result)}`);
    }
  }
  const http = phases.map((phase) => ({ name: phase.name, ...medianRun(phase.runs) }));

  // Part 1b: distinct junk JWTs of 8 KiB, as many as the cache holds: the listener's heap after.
  const junkCount = 10000;
  const junk = (i) => `${'x'.repeat(8 * 1024 - 8)}${String(i).padStart(8, '0')}`;
  const junkResult = await runPhase({
    flag: keys.HS256.flag,
    subscribeJwt: await mint('HS256', { subscribe: ['*'] }),
    warmup: 0,
    count: junkCount,
    jwtOf: junk,
    hasTaskset,
    clockTicks,
    readHeap: true,
  });
  log(`HS256, ${junkCount} distinct 8 KiB malformed JWTs: ${describe(junkResult)}`);
  const base = await runPhase({
    flag: keys.HS256.flag,
    subscribeJwt: await mint('HS256', { subscribe: ['*'] }),
    warmup: 0,
    count: 1,
    jwtOf: () => undefined,
    hasTaskset,
    clockTicks,
    readHeap: true,
  });
  junkResult.baseHeapUsedMiB = base.heapUsedMiB;

  // Part 2: the authorizer alone.
  const inProcess = [];
  const request = (jwt) => ({
    kind: 'publish',
    token: 't0',
    action: 'ping',
    url: '/ping/t0',
    headers: { authorization: `Bearer ${jwt}` },
  });
  const pems = {
    RS256: rsa.publicKey.export({ type: 'spki', format: 'pem' }),
    ES256: ec.publicKey.export({ type: 'spki', format: 'pem' }),
  };
  const authorizerOf = (alg) =>
    createJwtAuthorizer(alg === 'HS256' ? { secret } : { key: pems[alg] });
  {
    const authorize = authorizerOf('HS256');
    const jwt = await mint('HS256', publishGrant);
    await authorize(request(jwt));
    const n = 200000;
    const cpu0 = cpuUsageMs();
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      // A new string per request, as a parsed header is: its hash is computed each time.
      if (authorize(request(`${jwt} `.trimEnd())) !== true) throw new Error('not cached');
    }
    const wall = performance.now() - t0;
    const cpu = cpuUsageMs() - cpu0;
    inProcess.push({
      name: '(a) HS256, cached JWT (synchronous)',
      wallUs: (wall * 1000) / n,
      cpuUs: (cpu * 1000) / n,
    });
  }
  const verifyCases = [
    [
      '(b) HS256, never-seen JWT, bad signature',
      'HS256',
      () => mint('HS256', publishGrant, new TextEncoder().encode(otherSecret)),
    ],
    ['HS256, never-seen valid JWT', 'HS256', () => mint('HS256', publishGrant)],
    ['(c) RS256, never-seen valid JWT', 'RS256', () => mint('RS256', publishGrant)],
    ['(c) ES256, never-seen valid JWT', 'ES256', () => mint('ES256', publishGrant)],
  ];
  for (const [name, alg, make] of verifyCases) {
    const authorize = authorizerOf(alg);
    await authorize(request(await make())); // loads jose, imports the key
    const n = 2000;
    const jwts = await mintMany(2 * n, make);
    for (const [mode, batch] of [
      ['one at a time', 1],
      ['64 at once', 64],
    ]) {
      const list = batch === 1 ? jwts.slice(0, n) : jwts.slice(n);
      const cpu0 = cpuUsageMs();
      const main0 = mainThreadCpuMs(clockTicks);
      const t0 = performance.now();
      for (let i = 0; i < n; i += batch) {
        await Promise.all(list.slice(i, i + batch).map((jwt) => authorize(request(jwt))));
      }
      const wall = performance.now() - t0;
      inProcess.push({
        name: `${name}, ${mode}`,
        wallUs: (wall * 1000) / n,
        cpuUs: ((cpuUsageMs() - cpu0) * 1000) / n,
        mainThreadUs: ((mainThreadCpuMs(clockTicks) - main0) * 1000) / n,
      });
    }
  }
  {
    // Not in src/: what an HS256 check costs without a key import per verification, and natively.
    const algorithms = ['HS256', 'HS384', 'HS512'];
    const raw = new TextEncoder().encode(secret);
    const imported = {};
    for (const alg of algorithms) {
      imported[alg] = await webcrypto.subtle.importKey(
        'raw',
        raw,
        { name: 'HMAC', hash: `SHA-${alg.slice(2)}` },
        false,
        ['verify'],
      );
    }
    const getKey = (header) => imported[header.alg];
    const viaCryptoKey = async (jwt) => {
      try {
        await jwtVerify(jwt, getKey, { algorithms, clockTolerance: 5 });
        return true;
      } catch {
        return false;
      }
    };
    const viaHmac = (jwt) => {
      const dot = jwt.lastIndexOf('.');
      const expected = createHmac('sha256', secret).update(jwt.slice(0, dot)).digest();
      const given = Buffer.from(jwt.slice(dot + 1), 'base64url');
      return given.length === expected.length && timingSafeEqual(given, expected);
    };
    const n = 2000;
    const bad = await mintMany(2 * n, () =>
      mint('HS256', publishGrant, new TextEncoder().encode(otherSecret)),
    );
    for (const [mode, batch] of [
      ['one at a time', 1],
      ['64 at once', 64],
    ]) {
      const list = batch === 1 ? bad.slice(0, n) : bad.slice(n);
      const cpu0 = cpuUsageMs();
      const main0 = mainThreadCpuMs(clockTicks);
      const t0 = performance.now();
      for (let i = 0; i < n; i += batch) {
        const results = await Promise.all(list.slice(i, i + batch).map(viaCryptoKey));
        if (results.includes(true)) throw new Error('a bad signature passed');
      }
      inProcess.push({
        name: `(b) with a CryptoKey imported once per algorithm (not in src/), ${mode}`,
        wallUs: ((performance.now() - t0) * 1000) / n,
        cpuUs: ((cpuUsageMs() - cpu0) * 1000) / n,
        mainThreadUs: ((mainThreadCpuMs(clockTicks) - main0) * 1000) / n,
      });
    }
    const cpu0 = cpuUsageMs();
    const t0 = performance.now();
    for (const jwt of bad) if (viaHmac(jwt)) throw new Error('a bad signature passed');
    inProcess.push({
      name: '(b) the signature alone, node:crypto HMAC-SHA256, synchronous (the floor)',
      wallUs: ((performance.now() - t0) * 1000) / bad.length,
      cpuUs: ((cpuUsageMs() - cpu0) * 1000) / bad.length,
    });
  }
  for (const row of inProcess) log(`in process: ${row.name}: ${describeRow(row)}`);

  // Part 3: does a flood of distinct refused JWTs push a verified one out of the cache?
  const cache = {};
  {
    const authorize = authorizerOf('HS256');
    const good = await mint('HS256', publishGrant);
    await authorize(request(good));
    cache.cachedBefore = !(authorize(request(good)) instanceof Promise);
    const bad = await mintMany(10000, () =>
      mint('HS256', publishGrant, new TextEncoder().encode(otherSecret)),
    );
    for (let i = 0; i < bad.length; i += 64) {
      await Promise.all(bad.slice(i, i + 64).map((jwt) => authorize(request(jwt))));
    }
    const after = authorize(request(good));
    cache.cachedAfter = !(after instanceof Promise);
    await after;
    const gc = findGc();
    const junkAuthorize = authorizerOf('HS256');
    gc();
    const heap0 = process.memoryUsage().heapUsed;
    for (let i = 0; i < junkCount; i++) await junkAuthorize(request(junk(i)));
    gc();
    cache.junkHeapMiB = (process.memoryUsage().heapUsed - heap0) / 2 ** 20;
    // The authorizer (and its cache) stays in use, as a listener's does.
    cache.junkCached = !(junkAuthorize(request(junk(junkCount - 1))) instanceof Promise);
  }
  log(
    `cache: a verified JWT is cached before: ${cache.cachedBefore}; after 10 000 distinct bad JWTs: ${cache.cachedAfter}; heap kept by ${junkCount} distinct 8 KiB junk JWTs: ${cache.junkHeapMiB.toFixed(1)} MiB`,
  );

  rmSync(dir, { recursive: true, force: true });
  const meta = {
    command: `node bench/auth.js${process.argv.length > 2 ? ` ${process.argv.slice(2).join(' ')}` : ''}`,
    date: new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC',
    node: process.version,
    loadAverage: { before: loadBefore, after: loadavg() },
    seconds: Math.round((Date.now() - started) / 1000),
    reps,
    pinning: hasTaskset ? 'listener on core 0, this process on core 1' : 'not pinned',
  };
  process.stdout.write(`${markdown(meta, http, junkResult, junkCount, inProcess, cache)}\n`);
  if (flags.json !== undefined) {
    writeFileSync(
      flags.json,
      `${JSON.stringify({ meta, http, junkResult, inProcess, cache }, null, 2)}\n`,
    );
  }
}

async function loadLibraries() {
  const { SignJWT, jwtVerify } = await import('jose');
  const { createJwtAuthorizer } = await import('../dist/index.js');
  return { SignJWT, jwtVerify, createJwtAuthorizer };
}

function canRun(command, args) {
  try {
    execFileSync(command, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function writeKey(dir, name, key) {
  const path = join(dir, name);
  writeFileSync(path, key.export({ type: 'spki', format: 'pem' }));
  return path;
}

/**
 * Per field, the median over the runs; statuses and the delay's p50 and p99 from the run of median
 * CPU, the delay's max over all runs.
 */
function medianRun(runs) {
  const sorted = [...runs].sort((a, b) => a.cpuUs - b.cpuUs);
  const mid = sorted[sorted.length >> 1];
  const median = (key) => {
    const values = runs.map((r) => r[key]).sort((a, b) => a - b);
    const m = values.length >> 1;
    return values.length % 2 ? values[m] : (values[m - 1] + values[m]) / 2;
  };
  return {
    ...mid,
    cpuUs: median('cpuUs'),
    mainThreadUs: median('mainThreadUs'),
    perSecond: median('perSecond'),
    cpuUsRuns: runs.map((r) => r.cpuUs),
    delay: { ...mid.delay, max: Math.max(...runs.map((r) => r.delay.max)) },
  };
}

function log(text) {
  process.stderr.write(`${text}\n`);
}

function describe(r) {
  return `${r.cpuUs.toFixed(1)} µs CPU/request (main thread ${r.mainThreadUs.toFixed(0)}), ${Math.round(r.perSecond)}/s, statuses ${JSON.stringify(r.statuses)}, loop delay p50/p99/max ${r.delay.p50.toFixed(1)}/${r.delay.p99.toFixed(1)}/${r.delay.max.toFixed(1)} ms${r.heapUsedMiB === undefined ? '' : `, heap after GC ${r.heapUsedMiB.toFixed(1)} MiB`}`;
}

function describeRow(row) {
  return `${row.wallUs.toFixed(1)} µs wall, ${row.cpuUs.toFixed(1)} µs CPU${row.mainThreadUs === undefined ? '' : ` (main thread ${row.mainThreadUs.toFixed(0)})`} per check`;
}

// ---------------------------------------------------------------------------------------------
// One HTTP phase

const CONNECTIONS = 16;

/**
 * Starts a listener (with `flag`), opens a stream per connection's token, sends `warmup` then
 * `count` POSTs, request i with `Authorization: Bearer <jwtOf(i)>` (none when undefined).
 */
async function runPhase({
  flag,
  subscribeJwt,
  warmup,
  count,
  jwtOf,
  hasTaskset,
  clockTicks,
  readHeap,
}) {
  const listener = spawn(
    hasTaskset ? 'taskset' : process.execPath,
    [
      ...(hasTaskset ? ['-c', '0', process.execPath] : []),
      '--import',
      fileURLToPath(import.meta.url),
      join(root, 'bin/eventsource-listener.js'),
      ...['-H', '127.0.0.1', '-P', '0', '-i', '-k', '0', ...flag],
    ],
    {
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      env: { ...process.env, BENCH_AUTH_PROBE: '1', BENCH_AUTH_CLOCK_TICKS: String(clockTicks) },
    },
  );
  try {
    const port = await listeningPort(listener);
    const query = subscribeJwt === undefined ? '' : `?access_token=${subscribeJwt}`;
    const streams = await Promise.all(
      Array.from({ length: CONNECTIONS }, (_, c) => openStream(port, `/poll/t${c}${query}`)),
    );
    const senders = await Promise.all(Array.from({ length: CONNECTIONS }, () => connect(port)));
    const statuses = {};
    await sendAll(senders, 0, warmup, jwtOf, {});
    const ask = (message) => {
      const answer = once(listener, 'message');
      listener.send(message);
      return answer.then(([value]) => value);
    };
    await ask('reset');
    const t0 = performance.now();
    await sendAll(senders, warmup, warmup + count, jwtOf, statuses);
    const seconds = (performance.now() - t0) / 1000;
    const probe = await ask(readHeap ? 'read-heap' : 'read');
    for (const socket of [...senders, ...streams]) socket.destroy();
    return {
      cpuUs: (probe.cpuMs * 1000) / count,
      mainThreadUs: (probe.mainMs * 1000) / count,
      perSecond: count / seconds,
      statuses,
      delay: probe.delay,
      ...(probe.heapUsedMiB === undefined ? {} : { heapUsedMiB: probe.heapUsedMiB }),
    };
  } finally {
    const exited = once(listener, 'exit');
    listener.kill('SIGTERM');
    await exited;
  }
}

async function listeningPort(child) {
  let text = '';
  child.stderr.setEncoding('utf8');
  for await (const chunk of child.stderr) {
    text += chunk;
    const match = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(text);
    if (match) {
      child.stderr.resume();
      return Number(match[1]);
    }
  }
  throw new Error(`the listener exited: ${text.trim()}`);
}

async function openStream(port, path) {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`);
  const [chunk] = await once(socket, 'data');
  const status = chunk.toString('latin1', 9, 12);
  if (status !== '200') throw new Error(`stream ${path.split('?')[0]}: status ${status}`);
  socket.on('data', () => {}); // events: not checked here, bench/run.js does that
  return socket;
}

async function connect(port) {
  const socket = net.connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  await once(socket, 'connect');
  return socket;
}

/** Requests `from` to `to`, spread over the connections, one in flight on each. */
function sendAll(sockets, from, to, jwtOf, statuses) {
  let next = from;
  return Promise.all(
    sockets.map(
      (socket, c) =>
        new Promise((resolve, reject) => {
          let buffer = '';
          const sendNext = () => {
            if (next >= to) {
              socket.off('data', onData);
              resolve();
              return;
            }
            const jwt = jwtOf(next++);
            const body = String(next);
            socket.write(
              `POST /ping/t${c} HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
                (jwt === undefined ? '' : `Authorization: Bearer ${jwt}\r\n`) +
                `Content-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
            );
          };
          const onData = (chunk) => {
            buffer += chunk.toString('latin1');
            const end = buffer.indexOf('\r\n\r\n');
            if (end === -1) return;
            const length = Number(/\r\ncontent-length: *(\d+)/i.exec(buffer)?.[1]);
            if (!Number.isFinite(length)) {
              reject(new Error(`no Content-Length: ${buffer.slice(0, end)}`));
              return;
            }
            if (buffer.length < end + 4 + length) return;
            const status = buffer.slice(9, 12);
            statuses[status] = (statuses[status] ?? 0) + 1;
            buffer = buffer.slice(end + 4 + length);
            sendNext();
          };
          socket.on('data', onData);
          socket.once('close', () => reject(new Error('connection closed by the listener')));
          sendNext();
        }),
    ),
  );
}

// ---------------------------------------------------------------------------------------------
// The report

function markdown(meta, http, junkResult, junkCount, inProcess, cache) {
  const load = (l) => l.map((n) => n.toFixed(1)).join(' ');
  const lines = [
    `Command: \`${meta.command}\` (HTTP phases: ${meta.reps} repetitions taken in turn, medians)  `,
    `Node ${meta.node}; ${meta.pinning}; load average (1/5/15 min) before ${load(meta.loadAverage.before)}, after ${load(meta.loadAverage.after)}; ${meta.seconds} s  `,
    `Date: ${meta.date}`,
    '',
    '| over HTTP, per request | listener CPU (µs): median (runs) | of it main thread (µs) | requests/s | answers | event-loop delay p50 / p99 / max (ms) |',
    '| --- | ---: | ---: | ---: | --- | --- |',
  ];
  const row = (name, r) => {
    const cpu =
      r.cpuUs.toFixed(1) +
      (r.cpuUsRuns === undefined ? '' : ` (${r.cpuUsRuns.map((v) => v.toFixed(0)).join(', ')})`);
    const answers = Object.entries(r.statuses)
      .map(([status, n]) => `${n} × ${status}`)
      .join(', ');
    const { p50, p99, max } = r.delay;
    return `| ${name} | ${cpu} | ${r.mainThreadUs.toFixed(0)} | ${Math.round(r.perSecond).toLocaleString('en-US')} | ${answers} | ${p50.toFixed(1)} / ${p99.toFixed(1)} / ${max.toFixed(1)} |`;
  };
  for (const r of http) lines.push(row(r.name, r));
  lines.push(
    row(
      `HS256, refused POST, ${junkCount.toLocaleString('en-US')} distinct 8 KiB malformed JWTs`,
      junkResult,
    ),
    '',
    `Listener heap after GC: ${junkResult.baseHeapUsedMiB.toFixed(1)} MiB after one request, ${junkResult.heapUsedMiB.toFixed(1)} MiB after the 8 KiB junk JWTs.`,
    '',
    '| the authorizer alone, in process | wall (µs per check) | CPU (µs per check) | of it main thread (µs) |',
    '| --- | ---: | ---: | ---: |',
  );
  for (const r of inProcess) {
    lines.push(
      `| ${r.name} | ${r.wallUs.toFixed(2)} | ${r.cpuUs.toFixed(2)} | ${r.mainThreadUs === undefined ? '' : r.mainThreadUs.toFixed(0)} |`,
    );
  }
  lines.push(
    '',
    `A verified JWT is answered from the cache: before ${cache.cachedBefore ? 'yes' : 'no'}; after 10 000 distinct bad JWTs ${cache.cachedAfter ? 'yes' : 'no (evicted)'}. ` +
      `Heap kept by ${junkCount.toLocaleString('en-US')} distinct 8 KiB junk JWTs (authorizer alone): ${cache.junkHeapMiB.toFixed(1)} MiB (the last one ${cache.junkCached ? 'is' : 'is not'} answered from the cache).`,
  );
  return lines.join('\n');
}

if (process.env.BENCH_AUTH_PROBE === '1') installProbe();
else await main();
