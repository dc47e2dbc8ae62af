/**
 * Where Redis is, from one URL, and how the broker's two connections to it behave.
 *
 * - `redis://[user:password@]host:port/db` and `rediss://` (TLS) go to ioredis as they are: one
 *   server, standalone or a primary.
 * - `redis+sentinel://[user:password@]host1:26379,host2:26379/<master-name>[/db]` names the
 *   Sentinels that watch a primary and its replicas: the connections ask a Sentinel where the primary
 *   is, and ask again whenever they reconnect, so they follow the primary through a failover. The
 *   user and password are those of the Redis servers; the Sentinels are reached without them.
 *
 * One URL form for both keeps "where Redis is" one flag and one environment variable.
 */
import type { RedisOptions } from 'ioredis';

/** A parsed `--redis` URL. */
export interface RedisTarget {
  /** `sentinel` when the primary is found through Sentinels. */
  readonly mode: 'standalone' | 'sentinel';
  /** The URL for ioredis (standalone), or undefined with Sentinels. */
  readonly url: string | undefined;
  /** The ioredis options that say where Redis is (Sentinel mode): sentinels, name, db, auth. */
  readonly location: RedisOptions;
}

const SENTINEL_PORT = 26379;
const SENTINEL_URL = /^redis\+sentinel:\/\/(?:([^@/]*)@)?([^/?#@]+)\/([^/?#]+)(?:\/(\d+))?\/?$/;

/**
 * Reads a `--redis` URL.
 * @param url `redis://…`, `rediss://…` or `redis+sentinel://host:port[,host:port…]/<master-name>[/db]`.
 * @returns Where Redis is (see {@link RedisTarget}).
 * @throws TypeError naming the URL forms, for anything else.
 */
export function parseRedisUrl(url: string): RedisTarget {
  if (/^rediss?:\/\//i.test(url)) return { mode: 'standalone', url, location: {} };
  const match = SENTINEL_URL.exec(url);
  if (match === null) {
    throw new TypeError(
      `\`url\` must be redis://host:port[/db], rediss://… or redis+sentinel://host:port[,host:port…]/<master-name>[/db], got ${JSON.stringify(redact(url))}`,
    );
  }
  const [, userinfo, hosts = '', name = '', db] = match;
  const location: RedisOptions = {
    sentinels: hosts.split(',').map((host) => parseHost(host, url)),
    name: decodeURIComponent(name),
  };
  if (db !== undefined) location.db = Number(db);
  if (userinfo !== undefined && userinfo !== '') {
    const colon = userinfo.indexOf(':');
    const user = decodeURIComponent(colon === -1 ? userinfo : userinfo.slice(0, colon));
    if (colon !== -1) location.password = decodeURIComponent(userinfo.slice(colon + 1));
    if (user !== '') location.username = user;
  }
  return { mode: 'sentinel', url: undefined, location };
}

/** One `host[:port]` of the Sentinel list; IPv6 addresses in brackets. */
function parseHost(text: string, url: string): { host: string; port: number } {
  const match = /^(\[[^\]]+\]|[^:[\]]+)(?::(\d+))?$/.exec(text);
  const port = Number(match?.[2] ?? SENTINEL_PORT);
  if (match === null || port < 1 || port > 65535) {
    throw new TypeError(
      `\`url\` has a bad Sentinel address ${JSON.stringify(text)}: expected host or host:port, in ${JSON.stringify(redact(url))}`,
    );
  }
  return { host: (match[1] as string).replace(/^\[|\]$/g, ''), port };
}

/** The URL with its password replaced by `***`, for messages and logs. */
export function redact(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}

/** ioredis options without `replyMapping`, which its constructors type apart. */
export type ClientOptions = Omit<RedisOptions, 'replyMapping'>;

/** What {@link clientOptions} needs from the broker's options. */
export interface ConnectionSettings {
  /** The longest wait for one command, WAIT included, in ms. */
  commandTimeoutMs: number;
}

/**
 * The options of each of the broker's connections.
 * @param target Where Redis is.
 * @param settings The command timeout.
 * @returns ioredis options: no offline queue, no resent commands, reconnection with backoff.
 */
export function clientOptions(target: RedisTarget, settings: ConnectionSettings): ClientOptions {
  const isSentinel = target.mode === 'sentinel';
  return {
    ...target.location,
    // A POST must never wait for a connection, nor have its command sent twice after one.
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    commandTimeout: settings.commandTimeoutMs,
    // Auto-pipelining cost more CPU per POST than it saved in bench/redis.js.
    enableAutoPipelining: false,
    // With Sentinels each attempt asks where the primary is now: retrying every 250 ms at most
    // finds a promoted replica soon after the Sentinels announce it. A lone server is retried
    // less often, up to every 2 s.
    retryStrategy: (attempt: number): number =>
      Math.min(50 * 2 ** Math.min(attempt, 10), isSentinel ? 250 : 2000),
    // A server that turned into a replica (an old primary back after a failover) refuses writes
    // with READONLY: reconnect, which asks the Sentinels again. The command itself fails (503).
    reconnectOnError: (error: Error): boolean => error.message.startsWith('READONLY'),
    // Not ioredis's `failoverDetector`: its connections to the Sentinels have no error listener,
    // so a Sentinel that goes away prints stack traces on stderr. A primary that was replaced but
    // is still reachable (a partition) is left when it refuses writes (READONLY, above).
    connectionName: 'eventsource-listener',
  };
}
