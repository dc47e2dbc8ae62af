/**
 * Starts throwaway `redis-server` processes for a test (a free port, a temporary directory, no
 * persistence), replicas of one, and `redis-sentinel` processes watching them; each is stopped by
 * its pid. No side effects on import.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The redis-server binary, or undefined when it is not installed. */
export function findRedisServer(): string | undefined {
  for (const candidate of [process.env.REDIS_SERVER, '/usr/bin/redis-server', 'redis-server']) {
    if (candidate === undefined || candidate === '') continue;
    const probe = spawnSync(candidate, ['--version'], { encoding: 'utf8' });
    if (probe.status === 0) return candidate;
  }
  return undefined;
}

/**
 * What a test does when redis-server is missing: under CI (`CI=true`) that is a failure, elsewhere
 * the test is skipped with the reason printed.
 * @returns A skip reason, or undefined when redis-server is there.
 * @throws Error under CI when redis-server is missing.
 */
export function redisSkipReason(): string | undefined {
  if (findRedisServer() !== undefined) return undefined;
  const reason = 'redis-server is not installed (apt-get install redis-server)';
  if (process.env.CI === 'true') throw new Error(`${reason}; CI must run the Redis tests`);
  console.log(`# skipping the Redis tests: ${reason}`);
  return reason;
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  readonly pid: number | undefined;
  /** Sends a signal to the server's pid: `SIGKILL` to crash it, `SIGSTOP` / `SIGCONT` to stall it. */
  signal(signal: NodeJS.Signals): void;
  /** Stops the server (SIGTERM, then SIGKILL after 3 s) and waits for it to exit. */
  stop(): Promise<void>;
  /** Starts it again on the same port (empty: nothing is persisted). */
  restart(): Promise<void>;
  /** Stops it and removes its directory. */
  close(): Promise<void>;
}

function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** Stops a child by its pid: SIGCONT (it may be stalled), SIGTERM, then SIGKILL after 3 s. */
async function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (child === undefined || !isRunning(child)) return;
  const exited = once(child, 'exit');
  const pid = child.pid as number;
  process.kill(pid, 'SIGCONT');
  process.kill(pid, 'SIGTERM');
  const timer = setTimeout(() => {
    if (isRunning(child)) process.kill(pid, 'SIGKILL');
  }, 3000);
  await exited;
  clearTimeout(timer);
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const socket = net.connect(port, '127.0.0.1');
    try {
      await Promise.race([
        once(socket, 'connect'),
        once(socket, 'error').then(([error]) => {
          throw error;
        }),
      ]);
      socket.destroy();
      return;
    } catch (error) {
      socket.destroy();
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
}

/** Options of {@link startRedis}. */
export interface StartRedisOptions {
  /** The port of a primary on 127.0.0.1 to replicate (`--replicaof`). */
  replicaOf?: number | undefined;
}

/**
 * Starts `redis-server --port <free> --save "" --appendonly no --dir <tmp>`, with
 * `--replicaof 127.0.0.1 <port>` for a replica.
 */
export async function startRedis(options: StartRedisOptions = {}): Promise<RedisServer> {
  const binary = findRedisServer();
  if (binary === undefined) throw new Error('redis-server is not installed');
  const replicaOf =
    options.replicaOf === undefined ? [] : ['--replicaof', '127.0.0.1', String(options.replicaOf)];
  const dir = mkdtempSync(join(tmpdir(), 'eventsource-redis-'));
  const port = await freePort();
  let child: ChildProcess | undefined;
  let log = '';
  const start = async (): Promise<void> => {
    child = spawn(
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
        // A replica syncs at once instead of after 5 s spent waiting for others to share the transfer.
        '--repl-diskless-sync-delay',
        '0',
        ...replicaOf,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stdout?.on('data', (chunk: Buffer) => (log += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (log += chunk.toString()));
    try {
      await waitForPort(port, 5000);
    } catch (error) {
      throw new Error(`redis-server did not start on ${port}: ${log.slice(-500)}`, {
        cause: error,
      });
    }
  };
  const stop = (): Promise<void> => stopChild(child);
  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get pid() {
      return child?.pid;
    },
    signal(signal) {
      if (child !== undefined && isRunning(child)) process.kill(child.pid as number, signal);
    },
    stop,
    restart: start,
    async close() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The redis-sentinel binary, or undefined when it is not installed. */
export function findRedisSentinel(): string | undefined {
  for (const candidate of [
    process.env.REDIS_SENTINEL,
    '/usr/bin/redis-sentinel',
    'redis-sentinel',
  ]) {
    if (candidate === undefined || candidate === '') continue;
    const probe = spawnSync(candidate, ['--version'], { encoding: 'utf8' });
    if (probe.status === 0) return candidate;
  }
  return undefined;
}

/**
 * As {@link redisSkipReason}, for the tests that also need `redis-sentinel`.
 * @returns A skip reason, or undefined when both are there.
 * @throws Error under CI when either is missing.
 */
export function sentinelSkipReason(): string | undefined {
  const reason = redisSkipReason();
  if (reason !== undefined) return reason;
  if (findRedisSentinel() !== undefined) return undefined;
  const missing = 'redis-sentinel is not installed (apt-get install redis-sentinel)';
  if (process.env.CI === 'true') throw new Error(`${missing}; CI must run the Sentinel tests`);
  console.log(`# skipping the Sentinel tests: ${missing}`);
  return missing;
}

/** Asks one server a command over a short-lived connection (RESP written by hand). */
export async function askRedis(port: number, ...args: string[]): Promise<string> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.write(
    `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`,
  );
  let reply = '';
  socket.setEncoding('utf8');
  for await (const chunk of socket) {
    reply += chunk as string;
    if (isComplete(reply)) break;
  }
  socket.destroy();
  return reply;
}

/** Whether a RESP reply is complete (bulk strings and arrays of them, as INFO and SENTINEL send). */
function isComplete(reply: string): boolean {
  let at = 0;
  const read = (): boolean => {
    const end = reply.indexOf('\r\n', at);
    if (end === -1) return false;
    const type = reply[at];
    const n = Number(reply.slice(at + 1, end));
    at = end + 2;
    if (type === '$') {
      if (n < 0) return true;
      if (reply.length < at + n + 2) return false;
      at += n + 2;
      return true;
    }
    if (type === '*') {
      for (let i = 0; i < n; i++) if (!read()) return false;
    }
    return true;
  };
  return read();
}

export interface SentinelGroup {
  readonly masterName: string;
  readonly primary: RedisServer;
  readonly replicas: RedisServer[];
  readonly sentinels: RedisServer[];
  /** `redis+sentinel://127.0.0.1:<p1>,127.0.0.1:<p2>,…/<masterName>` */
  readonly url: string;
  /** Stops every sentinel, then every server, and removes their directories. */
  close(): Promise<void>;
}

/** Options of {@link startSentinelGroup}. */
export interface SentinelGroupOptions {
  replicaCount?: number | undefined;
  sentinelCount?: number | undefined;
  /** `sentinel down-after-milliseconds`. Defaults to `1000`. */
  downAfterMs?: number | undefined;
  /** `sentinel failover-timeout`. Defaults to `3000`. */
  failoverTimeoutMs?: number | undefined;
}

/**
 * Starts a primary, its replicas (in sync before this resolves), and sentinels watching them with
 * a quorum of a majority; resolves once every sentinel knows every replica and every other
 * sentinel, so that a failover can start at once.
 */
export async function startSentinelGroup(
  options: SentinelGroupOptions = {},
): Promise<SentinelGroup> {
  const binary = findRedisSentinel();
  if (binary === undefined) throw new Error('redis-sentinel is not installed');
  const masterName = 'esmaster';
  const replicaCount = options.replicaCount ?? 2;
  const sentinelCount = options.sentinelCount ?? 3;
  const started: RedisServer[] = [];
  const close = async (): Promise<void> => {
    // Sentinels first, so that none starts a failover while the servers go.
    for (const server of started.slice().reverse()) await server.close();
  };
  try {
    const primary = await startRedis();
    started.push(primary);
    const replicas: RedisServer[] = [];
    for (let i = 0; i < replicaCount; i++) {
      const replica = await startRedis({ replicaOf: primary.port });
      started.push(replica);
      replicas.push(replica);
    }
    await waitFor(
      async () => {
        const info = await askRedis(primary.port, 'INFO', 'replication');
        return (info.match(/state=online/g) ?? []).length === replicaCount;
      },
      10000,
      'the replicas to be in sync',
    );
    // Each sentinel is told its peers and the replicas up front (its id and theirs): otherwise it
    // learns them from hello messages every 2 s and from INFO every 10 s.
    const peers = await Promise.all(
      Array.from({ length: sentinelCount }, async () => ({
        port: await freePort(),
        id: randomBytes(20).toString('hex'),
      })),
    );
    const sentinels: RedisServer[] = [];
    for (const self of peers) {
      const sentinel = await startSentinel(binary, self.port, [
        `sentinel myid ${self.id}`,
        `sentinel monitor ${masterName} 127.0.0.1 ${primary.port} ${Math.floor(sentinelCount / 2) + 1}`,
        `sentinel down-after-milliseconds ${masterName} ${options.downAfterMs ?? 1000}`,
        `sentinel failover-timeout ${masterName} ${options.failoverTimeoutMs ?? 3000}`,
        `sentinel parallel-syncs ${masterName} ${replicaCount}`,
        ...replicas.map((r) => `sentinel known-replica ${masterName} 127.0.0.1 ${r.port}`),
        ...peers
          .filter((peer) => peer !== self)
          .map((peer) => `sentinel known-sentinel ${masterName} 127.0.0.1 ${peer.port} ${peer.id}`),
      ]);
      started.push(sentinel);
      sentinels.push(sentinel);
    }
    // Ready when each sees the primary and is linked to every replica and every other sentinel.
    const linked = (reply: string, count: number): boolean =>
      (reply.match(/\r\nflags\r\n/g) ?? []).length === count &&
      !/disconnected|s_down|o_down/.test(reply);
    for (const sentinel of sentinels) {
      await waitFor(
        async () =>
          /\r\nflags\r\n\$6\r\nmaster\r\n/.test(
            await askRedis(sentinel.port, 'SENTINEL', 'master', masterName),
          ) &&
          linked(await askRedis(sentinel.port, 'SENTINEL', 'replicas', masterName), replicaCount) &&
          linked(
            await askRedis(sentinel.port, 'SENTINEL', 'sentinels', masterName),
            sentinelCount - 1,
          ),
        10000,
        `sentinel ${sentinel.port} to be linked to the primary, its replicas and its peers`,
      );
    }
    const hosts = sentinels.map((sentinel) => `127.0.0.1:${sentinel.port}`).join(',');
    return {
      masterName,
      primary,
      replicas,
      sentinels,
      url: `redis+sentinel://${hosts}/${masterName}`,
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/** Starts one `redis-sentinel <conf>` on `port`, its config (`lines`) in a temporary directory. */
async function startSentinel(binary: string, port: number, lines: string[]): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'eventsource-sentinel-'));
  const conf = join(dir, 'sentinel.conf');
  // Sentinel rewrites its config file as it learns (replicas, peers, epochs): it must be writable.
  writeFileSync(conf, [`port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, ...lines, ''].join('\n'));
  const child = spawn(binary, [conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout.on('data', (chunk: Buffer) => (log += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (log += chunk.toString()));
  try {
    await waitForPort(port, 5000);
  } catch (error) {
    await stopChild(child);
    throw new Error(`redis-sentinel did not start on ${port}: ${log.slice(-500)}`, {
      cause: error,
    });
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    pid: child.pid,
    signal(signal) {
      if (isRunning(child)) process.kill(child.pid as number, signal);
    },
    stop: () => stopChild(child),
    restart: () => Promise.reject(new Error('a sentinel is not restarted')),
    async close() {
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Retries `check` every 50 ms until it returns true, or fails after `timeoutMs`. */
async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
