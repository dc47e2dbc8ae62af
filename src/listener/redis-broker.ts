/**
 * The Redis broker: several listener processes sharing one Redis behave as one listener.
 *
 * Per token, Redis holds:
 * - `<prefix>m:<token>`, a hash: `p:<processId>` → live subscribers of that process, `o` the owner
 *   (`<processId>:<subscriberId>`, single and takeover modes), `u` the first sequence number kept
 *   while nobody was connected, `r` the last `retry`, `bytes` the history's size, `c` (the token
 *   exists), `l` the sequence number of the last message sent on the token's channel. It expires
 *   `--grace` ms after the last subscriber left.
 * - `<prefix>h:<token>`, a stream: the kept events (`b` the encoded block, `i` the id), with the
 *   sequence number as the entry id, trimmed to `--history` events and `--history-bytes`.
 * - `<prefix>c:<token>`, a pub/sub channel: every event, finish, retry and takeover, each with its
 *   sequence number, to every process that has a subscriber of the token.
 * - `<prefix>proc:<processId>`, a key each process refreshes (its heartbeat); a process that stops
 *   refreshing it (a SIGKILL) no longer counts as a subscriber after `expiryMs`.
 *
 * Every decision that involves several processes runs as one Lua script, and Redis runs scripts one
 * at a time: a token's events get one order and increasing ids everywhere, and `404` / `423` /
 * takeover are decided once for all processes. Sequence numbers come from one counter seeded from
 * the Redis server's clock in microseconds, so they stay above every id given before a restart or
 * a flush (as long as fewer than a million events a second were sent on average).
 *
 * The hand-over from replay to the live stream loses and doubles nothing: a new subscriber's process
 * subscribes to the channel first and buffers what arrives, the script then registers it, takes a
 * sequence number S and returns the replay; buffered messages numbered above S follow the replay.
 *
 * A process that holds every live subscriber of a token, and has seen everything the channel
 * carried, gets its own POSTs back in the publish script's reply instead of as a pub/sub message
 * (`l` tells the script what the channel carried last). Channel messages that arrive while such a
 * reply is pending are held and follow it: Redis published them after running that script.
 *
 * The POSTs of one turn of the event loop go to Redis as one call of the publish script (up to 64
 * events), each event handled as if by its own call: under load that saves a command, a write
 * and a reply read per event (bench/redis.js, 4 000 POSTs/s: ~28 % less CPU per delivery). Every
 * other command sends the waiting batch first, so Redis still sees this process's commands in
 * the order they were made.
 */
import { randomBytes } from 'node:crypto';
import type { Redis as RedisClient } from 'ioredis';
import { debugRedis as debug } from '../debug.js';
import { flattenError } from '../errors.js';
import type { Event } from '../events.js';
import { assertFieldValue, encodeTrustedEvent } from '../wire/encoder.js';
import {
  gapChunk,
  retryChunk,
  type Broker,
  type BrokerOptions,
  type BrokerStats,
  type PublishOutcome,
  type StreamMode,
} from './broker.js';
import { Chunk } from './chunk.js';
import type { Subscriber } from './subscriber.js';

/** Options of {@link createRedisBroker}, on top of the options every broker takes. */
export interface RedisBrokerOptions extends BrokerOptions {
  /** Prefix of every Redis key and channel. Defaults to `eventsource:`. */
  keyPrefix?: string | undefined;
  /** How often this process refreshes its heartbeat, in ms. Defaults to `1000`. */
  heartbeatMs?: number | undefined;
  /** How long a process's subscribers count without a heartbeat, in ms. Defaults to `5000`. */
  expiryMs?: number | undefined;
  /** Longest wait for one Redis command before the request fails with 503, in ms. Defaults to `2000`. */
  commandTimeoutMs?: number | undefined;
  /** Longest wait for the first connection in {@link createRedisBroker}, in ms. Defaults to `3000`. */
  connectTimeoutMs?: number | undefined;
}

/** Redis could not be reached or did not answer: the request is answered `503`. */
export class RedisUnavailableError extends Error {
  override readonly name = 'RedisUnavailableError';
  readonly code = 'ERR_EVENTSOURCE_REDIS_UNAVAILABLE';
  readonly status = 503;
  constructor(cause: unknown) {
    super(`Event store unavailable: ${describe(cause)}`, { cause });
  }
}

function describe(cause: unknown): string {
  const text = typeof cause === 'string' ? cause : flattenError(cause);
  return text === '' ? 'Redis is not connected' : text;
}

/**
 * The Lua helpers every script starts with. `seqstr` writes a sequence number without Lua 5.1's
 * `%.14g` rounding; `load` reads the token hash and drops the counts of processes whose heartbeat
 * expired, so a killed process frees its tokens.
 */
const PRELUDE = `
local function seqstr(n) return string.format('%.0f', n) end
local function next_seq(key)
  local n = redis.call('INCR', key)
  if n < 1000000000000000 then
    local t = redis.call('TIME')
    n = tonumber(t[1]) * 1000000 + tonumber(t[2])
    redis.call('SET', key, seqstr(n))
  end
  return n
end
local function load(meta, procPrefix)
  local h = redis.call('HGETALL', meta)
  local t, procs, live = {}, {}, 0
  for i = 1, #h, 2 do
    local f, v = h[i], h[i + 1]
    if string.sub(f, 1, 2) == 'p:' then
      local n = tonumber(v)
      if n > 0 and redis.call('EXISTS', procPrefix .. string.sub(f, 3)) == 1 then
        live = live + n
        procs[#procs + 1] = f
      else
        redis.call('HDEL', meta, f)
      end
    else
      t[f] = v
    end
  end
  return t, live, #h > 0, procs
end
local function publish(meta, channel, s, message)
  redis.call('PUBLISH', channel, message)
  redis.call('HSET', meta, 'l', s)
end
local function field(entry, name)
  local f = entry[2]
  for i = 1, #f, 2 do if f[i] == name then return f[i + 1] end end
  return false
end
local function grace(meta, stream, ms)
  if ms == 0 then
    redis.call('DEL', meta, stream)
  else
    redis.call('PEXPIRE', meta, ms)
    redis.call('PEXPIRE', stream, ms)
  end
end
`;

/**
 * Stores and publishes a batch of events (the POSTs of one turn of the event loop), each as if by
 * its own script: KEYS: seq, then meta, stream, channel per event. ARGV: procPrefix, history,
 * historyBytes, sentinel, the caller's `p:<processId>` field, then per event: hasId, idTemplate,
 * block (without the id line), and the sequence number up to which the caller has seen the
 * token's channel (-1: none). Returns one reply per event: {status, seq, live}, or
 * {200, seq, live, 1} when every live subscriber is the caller's and the caller has seen every
 * message the channel carried (`l`): then nothing is published and the caller delivers the event
 * itself, saving every process a pub/sub message. An event whose commands fail answers
 * {500, error}; the others are not affected.
 */
const PUBLISH_LUA = `${PRELUDE}
local procPrefix, maxCount, maxBytes = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local sentinel, me = ARGV[4], ARGV[5]
local function publish_one(meta, stream, channel, hasId, idTemplate, block, seen)
  local t, live, exists, procs = load(meta, procPrefix)
  if not exists or (live == 0 and maxCount == 0) then return {404, '', 0} end
  local s = seqstr(next_seq(KEYS[1]))
  local id = false
  if hasId == '1' then
    id = (string.gsub(idTemplate, sentinel, s))
    block = 'id: ' .. id .. '\\n' .. block
  end
  if maxCount > 0 then
    if id then
      redis.call('XADD', stream, s .. '-0', 'b', block, 'i', id)
    else
      redis.call('XADD', stream, s .. '-0', 'b', block)
    end
    local bytes = redis.call('HINCRBY', meta, 'bytes', #block)
    local len = redis.call('XLEN', stream)
    local trimmed = false
    while len > maxCount or (bytes > maxBytes and len > 0) do
      local e = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
      bytes = bytes - #field(e, 'b')
      redis.call('XDEL', stream, e[1])
      len = len - 1
      trimmed = true
    end
    if trimmed then redis.call('HSET', meta, 'bytes', bytes) end
    if redis.call('PTTL', stream) == -1 then
      local ttl = redis.call('PTTL', meta)
      if ttl > 0 then redis.call('PEXPIRE', stream, ttl) end
    end
  end
  if live == 0 then
    if (t.u or '0') == '0' then redis.call('HSET', meta, 'u', s) end
    return {202, s, 0}
  end
  if seen >= 0 and #procs == 1 and procs[1] == me and tonumber(t.l or '0') <= seen then
    return {200, s, live, 1}
  end
  publish(meta, channel, s, 'e' .. s .. '\\n' .. block)
  return {200, s, live}
end
local replies = {}
for i = 1, (#KEYS - 1) / 3 do
  local k, a = 3 * i - 1, 4 * i + 2
  local ok, reply = pcall(publish_one, KEYS[k], KEYS[k + 1], KEYS[k + 2], ARGV[a], ARGV[a + 1],
    ARGV[a + 2], tonumber(ARGV[a + 3]))
  if not ok then
    reply = {500, type(reply) == 'table' and tostring(reply.err) or tostring(reply)}
  end
  replies[i] = reply
end
return replies
`;

/**
 * KEYS: meta, stream, seq, channel. ARGV: procPrefix, procId, subId, mode, hasLastEventId,
 * lastEventId, ttl. Returns {'conflict'} or {'ok', seq, retry, gap, hasOldest, oldestId,
 * seq1, block1, seq2, block2, ...}.
 */
const SUBSCRIBE_LUA = `${PRELUDE}
local meta, stream = KEYS[1], KEYS[2]
local t, live, exists, procs = load(meta, ARGV[1])
local mode = ARGV[4]
local takeover = false
if live > 0 then
  if mode == 'single' then return {'conflict'} end
  if mode == 'takeover' then
    for i = 1, #procs do redis.call('HDEL', meta, procs[i]) end
    takeover = true
  end
end
local s = seqstr(next_seq(KEYS[3]))
local me = ARGV[2] .. ':' .. ARGV[3]
if takeover then publish(meta, KEYS[4], s, 't' .. s .. '\\n' .. me) end
redis.call('HINCRBY', meta, 'p:' .. ARGV[2], 1)
if mode == 'multi' then
  redis.call('HSET', meta, 'c', '1')
else
  redis.call('HSET', meta, 'c', '1', 'o', me)
end
local ttl = tonumber(ARGV[7])
redis.call('PEXPIRE', meta, ttl)
redis.call('PEXPIRE', stream, ttl)
local entries = {}
local gap, hasOldest, oldest = 0, 0, ''
if ARGV[5] == '1' then
  local last = ARGV[6]
  local found = false
  if string.match(last, '^%d+$') and #last < 20 then
    local r = redis.call('XRANGE', stream, last, last)
    if r[1] and field(r[1], 'i') == last then found = r[1][1] end
  end
  if not found then
    local all = redis.call('XREVRANGE', stream, '+', '-')
    for i = 1, #all do
      if field(all[i], 'i') == last then found = all[i][1] break end
    end
  end
  if found then
    entries = redis.call('XRANGE', stream, '(' .. found, '+')
  else
    gap = 1
    entries = redis.call('XRANGE', stream, '-', '+')
    if entries[1] then
      local i = field(entries[1], 'i')
      if i then hasOldest, oldest = 1, i end
    end
  end
elseif (t.u or '0') ~= '0' then
  entries = redis.call('XRANGE', stream, t.u, '+')
end
if t.u then redis.call('HDEL', meta, 'u') end
local out = {'ok', s, t.r or '', gap, hasOldest, oldest}
for i = 1, #entries do
  local e = entries[i]
  out[#out + 1] = string.sub(e[1], 1, -3)
  out[#out + 1] = field(e, 'b')
end
return out
`;

/**
 * KEYS: meta, stream. ARGV: procPrefix, procId, subId, graceMs. Unregisters one subscriber (unless it
 * was taken over meanwhile). Returns the live count left.
 */
const UNSUBSCRIBE_LUA = `${PRELUDE}
local meta, stream = KEYS[1], KEYS[2]
if redis.call('EXISTS', meta) == 0 then return 0 end
local o = redis.call('HGET', meta, 'o')
if o and o ~= ARGV[2] .. ':' .. ARGV[3] then return -1 end
if o then redis.call('HDEL', meta, 'o') end
local n = redis.call('HINCRBY', meta, 'p:' .. ARGV[2], -1)
if n <= 0 then redis.call('HDEL', meta, 'p:' .. ARGV[2]) end
local t, live = load(meta, ARGV[1])
if live == 0 then grace(meta, stream, tonumber(ARGV[4])) end
return live
`;

/**
 * KEYS: meta, stream. ARGV: procPrefix, procId, count, owner, ttl, graceMs. Sets this process's count
 * for a token after a reconnect (Redis may have lost everything, or missed an unsubscribe).
 */
const SYNC_LUA = `${PRELUDE}
local meta, stream = KEYS[1], KEYS[2]
local count = tonumber(ARGV[3])
if count > 0 then
  redis.call('HSET', meta, 'c', '1', 'p:' .. ARGV[2], count)
  if ARGV[4] ~= '' then redis.call('HSET', meta, 'o', ARGV[4]) end
  redis.call('PEXPIRE', meta, tonumber(ARGV[5]))
  redis.call('PEXPIRE', stream, tonumber(ARGV[5]))
  return count
end
if redis.call('EXISTS', meta) == 0 then return 0 end
redis.call('HDEL', meta, 'p:' .. ARGV[2])
local o = redis.call('HGET', meta, 'o')
if o and string.sub(o, 1, #ARGV[2] + 1) == ARGV[2] .. ':' then redis.call('HDEL', meta, 'o') end
local t, live = load(meta, ARGV[1])
if live == 0 then grace(meta, stream, tonumber(ARGV[6])) end
return live
`;

/** KEYS: meta, seq, channel. ARGV: procPrefix. Returns {status, live}. */
const FINISH_LUA = `${PRELUDE}
local t, live = load(KEYS[1], ARGV[1])
if live == 0 then return {404, 0} end
local s = seqstr(next_seq(KEYS[2]))
publish(KEYS[1], KEYS[3], s, 'f' .. s .. '\\n')
return {200, live}
`;

/** KEYS: meta, seq, channel. ARGV: procPrefix, ms. Returns {status, live}. */
const RETRY_LUA = `${PRELUDE}
local t, live, exists = load(KEYS[1], ARGV[1])
if not exists then return {404, 0} end
redis.call('HSET', KEYS[1], 'r', ARGV[2])
if live == 0 then return {202, 0} end
local s = seqstr(next_seq(KEYS[2]))
publish(KEYS[1], KEYS[3], s, 'r' .. s .. '\\n' .. ARGV[2])
return {200, live}
`;

/** KEYS: procKey. ARGV: expiryMs, ttl, keyPrefix, tokens... Heartbeat and token expiry refresh. */
const HEARTBEAT_LUA = `
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
for i = 4, #ARGV do
  redis.call('PEXPIRE', ARGV[3] .. 'm:' .. ARGV[i], ARGV[2])
  redis.call('PEXPIRE', ARGV[3] .. 'h:' .. ARGV[i], ARGV[2])
end
return 1
`;

type Reply = (string | number)[];
interface Scripts {
  esPublish(...args: (string | number)[]): Promise<Reply[]>;
  esSubscribe(...args: (string | number)[]): Promise<Reply>;
  esUnsubscribe(...args: (string | number)[]): Promise<number>;
  esSync(...args: (string | number)[]): Promise<number>;
  esFinish(...args: (string | number)[]): Promise<Reply>;
  esRetry(...args: (string | number)[]): Promise<Reply>;
  esHeartbeat(...args: (string | number)[]): Promise<number>;
}

/** A message from a token's channel: `e` event, `f` finish, `r` retry, `t` takeover. */
interface Message {
  type: string;
  seq: number;
  payload: string;
  chunk: Chunk | undefined;
}

/** One local subscriber: its registry id and the sequence number it subscribed at. */
interface Local {
  subscriber: Subscriber;
  subId: string;
  afterSeq: number;
}

/** A subscriber between SUBSCRIBE and the end of its replay: live messages wait in `buffer`. */
interface Joiner {
  buffer: Message[];
}

/** What this process knows about one token. */
class TokenState {
  live: Local[] = [];
  joiners = new Set<Joiner>();
  /** Messages held while the token catches up after a reconnect. */
  paused: Message[] | undefined = undefined;
  /** The highest sequence number dispatched to the live subscribers. */
  lastSeq = 0;
  /** Set while the channel is subscribed (or being subscribed). */
  subscribing: Promise<unknown> | undefined = undefined;
  /** Publishes that may come back for local delivery (see `publish`), awaiting their reply. */
  inFlight = 0;
  /** Channel messages held while `inFlight > 0`: they come after the events those replies bring. */
  held: Message[] | undefined = undefined;
  constructor(
    readonly token: string,
    readonly channel: string,
  ) {}
  get refs(): number {
    return this.live.length + this.joiners.size;
  }
}

/** A publish waiting for its batch (see `RedisBroker.queue`). */
interface PendingPublish {
  token: string;
  hasId: '0' | '1';
  idTemplate: string;
  rest: string;
  seen: string;
  resolve: (reply: Reply) => void;
  reject: (error: unknown) => void;
}

/** Most publishes in one script call, and most bytes of event text. */
const MAX_BATCH = 64;
const MAX_BATCH_BYTES = 256 * 1024;

/** The sequence number placeholder of the id template: digits a real sequence number never takes. */
const SENTINEL = '8999999999999917';

/** The broker interface backed by Redis; see the module comment. */
export class RedisBroker implements Broker {
  private readonly mode: StreamMode;
  private readonly historyCount: number;
  private readonly historyBytes: number;
  private readonly graceMs: number;
  private readonly gapEvent: string | undefined;
  private readonly prefix: string;
  private readonly heartbeatMs: number;
  private readonly expiryMs: number;
  /** This process's id in the registry. */
  readonly processId = randomBytes(6).toString('base64url');
  /** Events delivered from the publish script's reply, without a pub/sub message. */
  private localDeliveries = 0;
  private readonly procPrefix: string;
  private readonly tokens = new Map<string, TokenState>();
  private nextSubId = 1;
  private streamCount = 0;
  private eventsAccepted = 0;
  private redisErrors = 0;
  private reconnects = 0;
  private isReady = false;
  private isClosed = false;
  private lastError = '';
  private recovering: Promise<void> | undefined = undefined;
  private readonly heartbeatTimer: NodeJS.Timeout;
  private readonly scripts: Scripts;
  /** Publishes waiting for the end of this turn of the event loop (see `queue`). */
  private batch: PendingPublish[] = [];
  private batchBytes = 0;

  /**
   * @param cmd The connection for commands (offline queue disabled).
   * @param sub The connection for pub/sub.
   * @param options See {@link RedisBrokerOptions}.
   */
  constructor(
    private readonly cmd: RedisClient,
    private readonly sub: RedisClient,
    options: RedisBrokerOptions = {},
  ) {
    this.mode = options.mode ?? 'single';
    this.historyCount = options.history ?? 1000;
    this.historyBytes = options.historyBytes ?? 8 * 1024 * 1024;
    this.graceMs = options.graceMs ?? 60000;
    this.gapEvent = options.gapEvent;
    this.prefix = options.keyPrefix ?? 'eventsource:';
    this.heartbeatMs = options.heartbeatMs ?? 1000;
    this.expiryMs = options.expiryMs ?? 5000;
    this.procPrefix = `${this.prefix}proc:`;
    const scripts: [keyof Scripts, string, number][] = [
      ['esPublish', PUBLISH_LUA, -1],
      ['esSubscribe', SUBSCRIBE_LUA, 4],
      ['esUnsubscribe', UNSUBSCRIBE_LUA, 2],
      ['esSync', SYNC_LUA, 2],
      ['esFinish', FINISH_LUA, 3],
      ['esRetry', RETRY_LUA, 3],
      ['esHeartbeat', HEARTBEAT_LUA, 1],
    ];
    // -1: the caller passes the number of keys (the publish script takes a batch).
    for (const [name, lua, numberOfKeys] of scripts) {
      cmd.defineCommand(name, numberOfKeys < 0 ? { lua } : { lua, numberOfKeys });
    }
    this.scripts = cmd as unknown as Scripts;
    sub.on('message', (channel: string, message: string) => this.onMessage(channel, message));
    for (const [name, client] of [
      ['commands', cmd],
      ['pub/sub', sub],
    ] as const) {
      client.on('error', (error: Error) => {
        this.redisErrors++;
        this.lastError = flattenError(error);
        debug('%s connection error: %s', name, this.lastError);
      });
      client.on('close', () => {
        if (this.isReady) debug('%s connection lost; streams stay open, POSTs get 503', name);
        this.isReady = false;
      });
      client.on('reconnecting', (delay: number) =>
        debug('%s connection: reconnecting in %d ms', name, delay),
      );
      client.on('ready', () => {
        debug('%s connection ready', name);
        this.recover();
      });
    }
    this.heartbeatTimer = setInterval(() => {
      if (this.isReady) this.heartbeat().catch((error: unknown) => this.noteError(error));
    }, this.heartbeatMs).unref();
    if (cmd.status === 'ready' && sub.status === 'ready') this.recover();
  }

  /** `ready` when POSTs can be stored, else the state of the connections. */
  get status(): string {
    if (this.isClosed) return 'closed';
    if (this.isReady) return 'ready';
    const statuses = [this.cmd.status, this.sub.status];
    return statuses.find((s) => s !== 'ready') ?? 'recovering';
  }

  /** Resolves once the broker is ready, or after `timeoutMs` (then check {@link status}). */
  async waitReady(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.isReady && !this.isClosed && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return this.isReady;
  }

  /** The reason POSTs are refused now. */
  private unavailable(cause?: unknown): RedisUnavailableError {
    if (cause !== undefined) this.noteError(cause);
    return new RedisUnavailableError(
      cause ?? (this.lastError !== '' ? this.lastError : `Redis is ${this.status}`),
    );
  }

  private noteError(error: unknown): void {
    this.redisErrors++;
    this.lastError = flattenError(error);
    debug('redis command failed: %s', this.lastError);
  }

  private keys(token: string): { meta: string; stream: string; channel: string } {
    return {
      meta: `${this.prefix}m:${token}`,
      stream: `${this.prefix}h:${token}`,
      channel: `${this.prefix}c:${token}`,
    };
  }

  /** Both connections are up: subscribe again, refresh the heartbeat, re-register, catch up. */
  private recover(): void {
    if (this.isClosed || this.recovering !== undefined) return;
    if (this.cmd.status !== 'ready' || this.sub.status !== 'ready') return;
    this.recovering = (async () => {
      const states = [...this.tokens.values()];
      for (const state of states) if (state.live.length > 0) state.paused ??= [];
      const channels = states.filter((state) => state.refs > 0).map((state) => state.channel);
      if (channels.length > 0) await this.sub.subscribe(...channels);
      for (const state of states) if (state.refs > 0) state.subscribing = Promise.resolve();
      await this.heartbeat();
      const ttl = this.expiryMs + this.graceMs;
      await Promise.all(
        states.map(async (state) => {
          const { meta, stream } = this.keys(state.token);
          const owner =
            this.mode !== 'multi' && state.live.length === 1
              ? `${this.processId}:${(state.live[0] as Local).subId}`
              : '';
          this.flushBatch();
          await this.scripts.esSync(
            meta,
            stream,
            this.procPrefix,
            this.processId,
            state.live.length,
            owner,
            ttl,
            this.graceMs,
          );
          if (state.paused !== undefined) await this.catchUp(state);
          this.release(state);
        }),
      );
    })().then(
      () => {
        this.recovering = undefined;
        // The connection may have dropped again meanwhile: then the next `ready` recovers.
        this.isReady = this.cmd.status === 'ready' && this.sub.status === 'ready' && !this.isClosed;
        if (this.isReady && this.reconnects++ > 0) {
          debug('recovered: registry and subscriptions restored');
        }
      },
      (error: unknown) => {
        this.recovering = undefined;
        this.noteError(error);
        // The next `ready` tries again; if both are still up, try again shortly.
        setTimeout(() => this.recover(), 500).unref();
      },
    );
  }

  /** Sends the live subscribers what the channel carried while the pub/sub connection was down. */
  private async catchUp(state: TokenState): Promise<void> {
    const paused = state.paused ?? [];
    if (state.lastSeq > 0 && this.historyCount > 0) {
      const { stream } = this.keys(state.token);
      this.flushBatch();
      const entries = (await this.cmd.xrange(stream, `(${state.lastSeq}-0`, '+')) as [
        string,
        string[],
      ][];
      const firstPaused = paused[0]?.seq ?? Infinity;
      if (entries.length > 0)
        debug('token %s: catching up %d event(s)', state.token, entries.length);
      for (const [entryId, fields] of entries) {
        const seq = Number(entryId.slice(0, -2));
        // What the channel carried since it is back comes after; the dispatch skips doubles.
        if (seq >= firstPaused) break;
        const b = fields.indexOf('b');
        if (b === -1) continue;
        this.dispatch(state, { type: 'e', seq, payload: fields[b + 1] ?? '', chunk: undefined });
      }
    }
    state.paused = undefined;
    for (const message of paused) this.dispatch(state, message);
  }

  private async heartbeat(): Promise<void> {
    const live: string[] = [];
    for (const state of this.tokens.values()) if (state.live.length > 0) live.push(state.token);
    const ttl = this.expiryMs + this.graceMs;
    const procKey = this.procPrefix + this.processId;
    // Batches keep one script call short even with many tokens.
    for (let i = 0; i === 0 || i < live.length; i += 500) {
      await this.scripts.esHeartbeat(
        procKey,
        this.expiryMs,
        ttl,
        this.prefix,
        ...live.slice(i, i + 500),
      );
    }
  }

  private onMessage(channel: string, message: string): void {
    const state = this.tokens.get(channel.slice(this.prefix.length + 2));
    if (state === undefined) return;
    const nl = message.indexOf('\n');
    const parsed: Message = {
      type: message.charAt(0),
      seq: Number(message.slice(1, nl)),
      payload: message.slice(nl + 1),
      chunk: undefined,
    };
    if (state.inFlight > 0) (state.held ??= []).push(parsed);
    else this.receive(state, parsed);
  }

  /** Hands a message to the token's joiners and live subscribers (or holds it during a catch-up). */
  private receive(state: TokenState, message: Message): void {
    for (const joiner of state.joiners) joiner.buffer.push(message);
    if (state.paused !== undefined) state.paused.push(message);
    else this.dispatch(state, message);
  }

  /**
   * The sequence number up to which this process has seen the token's channel, for the publish
   * script's local delivery; -1 when it may not deliver locally (no live subscriber here, one
   * joining, or a catch-up running). Messages numbered at most a subscriber's own start are none of
   * its business, so the lowest start counts as seen too.
   */
  private seenSeq(state: TokenState | undefined): number {
    if (state === undefined || state.live.length === 0) return -1;
    if (state.joiners.size > 0 || state.paused !== undefined) return -1;
    let lowestStart = Infinity;
    for (const local of state.live) lowestStart = Math.min(lowestStart, local.afterSeq);
    return Math.max(state.lastSeq, lowestStart);
  }

  /** Applies a channel message to the token's live subscribers. */
  private dispatch(state: TokenState, message: Message): void {
    if (message.seq <= state.lastSeq) return;
    state.lastSeq = message.seq;
    const live = state.live;
    if (live.length === 0) return;
    if (message.type === 'e') {
      const chunk = (message.chunk ??= new Chunk(message.payload, message.seq));
      if (live.length > 1) chunk.share();
      for (let i = 0; i < live.length; i++) {
        const local = live[i] as Local;
        if (message.seq > local.afterSeq) local.subscriber.write(chunk);
      }
      return;
    }
    for (const local of [...live]) this.apply(state, local, message);
  }

  /** Applies a finish, retry or takeover message (or an event) to one subscriber. */
  private apply(state: TokenState, local: Local, message: Message): void {
    if (message.seq <= local.afterSeq) return;
    switch (message.type) {
      case 'e':
        local.subscriber.write((message.chunk ??= new Chunk(message.payload, message.seq)));
        break;
      case 'f':
        local.subscriber.end();
        break;
      case 'r':
        local.subscriber.write(retryChunk(Number(message.payload)));
        break;
      case 't':
        if (message.payload !== `${this.processId}:${local.subId}`) {
          debug('token %s: taken over by %s', state.token, message.payload);
          this.drop(state, local);
          local.subscriber.detach();
        }
        break;
    }
  }

  /** Removes a local subscriber without telling Redis (it was taken over). */
  private drop(state: TokenState, local: Local): void {
    local.subscriber.onClose = undefined;
    const index = state.live.indexOf(local);
    if (index !== -1) {
      state.live.splice(index, 1);
      this.streamCount--;
    }
    this.release(state);
  }

  /** Subscribes this process to the token's channel (once per token). */
  private hold(token: string): TokenState {
    let state = this.tokens.get(token);
    if (state === undefined) {
      state = new TokenState(token, this.keys(token).channel);
      this.tokens.set(token, state);
    }
    return state;
  }

  /** Unsubscribes from the token's channel when nobody here needs it any more. */
  private release(state: TokenState): void {
    if (state.refs > 0 || this.tokens.get(state.token) !== state) return;
    this.tokens.delete(state.token);
    if (state.subscribing !== undefined) {
      state.subscribing = undefined;
      this.sub.unsubscribe(state.channel).catch((error: unknown) => this.noteError(error));
    }
  }

  async subscribe(
    subscriber: Subscriber,
    lastEventId: string | undefined,
  ): Promise<'ok' | 'conflict'> {
    if (!this.isReady) throw this.unavailable();
    const token = subscriber.token;
    const state = this.hold(token);
    const joiner: Joiner = { buffer: [] };
    state.joiners.add(joiner);
    const subId = String(this.nextSubId++);
    let inherited: Chunk[] | undefined;
    let reply: Reply;
    try {
      state.subscribing ??= this.sub.subscribe(state.channel).catch((error: unknown) => {
        state.subscribing = undefined;
        throw error;
      });
      await state.subscribing;
      if (this.mode === 'takeover') {
        // Local old subscribers hand over what they had not sent yet, as in the memory broker.
        for (const old of [...state.live]) {
          this.drop(state, old);
          const unsent = old.subscriber.detach();
          if (unsent.length > 0) inherited = unsent;
        }
      }
      const { meta, stream, channel } = this.keys(token);
      const hasLastEventId = lastEventId !== undefined && lastEventId !== '';
      this.flushBatch();
      reply = await this.scripts.esSubscribe(
        meta,
        stream,
        `${this.prefix}seq`,
        channel,
        this.procPrefix,
        this.processId,
        subId,
        this.mode,
        hasLastEventId ? '1' : '0',
        hasLastEventId ? lastEventId : '',
        this.expiryMs + this.graceMs,
      );
    } catch (error) {
      state.joiners.delete(joiner);
      this.release(state);
      throw this.unavailable(error);
    }
    state.joiners.delete(joiner);
    if (reply[0] === 'conflict') {
      this.release(state);
      return 'conflict';
    }
    const afterSeq = Number(reply[1]);
    const local: Local = { subscriber, subId, afterSeq };
    subscriber.open();
    const retry = String(reply[2]);
    if (retry !== '') subscriber.write(retryChunk(Number(retry)));
    if (reply[3] === 1) {
      debug('token %s: Last-Event-ID %s is not kept, sending what is', token, lastEventId);
      const oldestId = reply[4] === 1 ? String(reply[5]) : undefined;
      subscriber.write(gapChunk(lastEventId ?? '', oldestId, this.gapEvent));
    }
    if (reply.length > 6) {
      for (let i = 6; i < reply.length; i += 2) {
        subscriber.write(new Chunk(String(reply[i + 1]), Number(reply[i])), true);
      }
    } else if (inherited !== undefined && (lastEventId === undefined || lastEventId === '')) {
      for (const chunk of inherited) subscriber.write(chunk, true);
    }
    // Live messages that arrived during the replay, after this subscriber's sequence number.
    for (const message of joiner.buffer) this.apply(state, local, message);
    if (subscriber.isClosed) {
      // The client went away during the hand-over (or was ended by a finish or a takeover).
      this.unregister(token, subId);
      this.release(state);
      return 'ok';
    }
    state.live.push(local);
    this.streamCount++;
    subscriber.onClose = () => {
      const index = state.live.indexOf(local);
      if (index === -1) return;
      state.live.splice(index, 1);
      this.streamCount--;
      this.unregister(token, subId);
      this.release(state);
    };
    return 'ok';
  }

  /** Tells Redis a subscriber left; if Redis is down, the next recovery fixes the count. */
  private unregister(token: string, subId: string): void {
    const { meta, stream } = this.keys(token);
    this.flushBatch();
    this.scripts
      .esUnsubscribe(meta, stream, this.procPrefix, this.processId, subId, this.graceMs)
      .catch((error: unknown) => {
        this.noteError(error);
        // Keep the token known so that recovery sends its (lower) count.
        this.hold(token);
      });
  }

  async publish(event: Event): Promise<PublishOutcome> {
    if (!this.isReady) throw this.unavailable();
    const { hasId, idTemplate, rest } = template(event);
    // When this process holds every subscriber of the token, the script can leave delivery to it.
    // Channel messages that arrive meanwhile wait in `held`: Redis ran this script before
    // publishing them, so they come after this event.
    const state = this.tokens.get(event.target);
    const seen = this.seenSeq(state);
    if (seen >= 0) (state as TokenState).inFlight++;
    let reply: Reply;
    try {
      reply = await new Promise<Reply>((resolve, reject) => {
        const pending: PendingPublish = {
          token: event.target,
          hasId: hasId ? '1' : '0',
          idTemplate,
          rest,
          seen: String(seen),
          resolve,
          reject,
        };
        this.queue(pending);
      });
    } catch (error) {
      if (seen >= 0) this.landed(state as TokenState, undefined);
      throw this.unavailable(error);
    }
    const status = reply[0] as 200 | 202 | 404;
    const seq = String(reply[1]);
    const id = hasId && status !== 404 ? idTemplate.split(SENTINEL).join(seq) : null;
    const local: Message | undefined =
      reply[3] === 1
        ? {
            type: 'e',
            seq: Number(seq),
            payload: id === null ? rest : `id: ${id}\n${rest}`,
            chunk: undefined,
          }
        : undefined;
    if (seen >= 0) this.landed(state as TokenState, local);
    if (status === 404) return { status, id: null, subscribers: 0 };
    event.seq = Number(seq);
    this.eventsAccepted++;
    return { status, id, subscribers: Number(reply[2]) };
  }

  /**
   * Adds a publish to the batch that goes to Redis at the end of this turn of the event loop: the
   * POSTs that arrived together cost one command, one write and one reply instead of one each.
   * Every other command on the connection sends the batch first, so Redis sees them in the order
   * they were made.
   */
  private queue(pending: PendingPublish): void {
    this.batch.push(pending);
    this.batchBytes += pending.rest.length + pending.idTemplate.length;
    if (this.batch.length === 1) setImmediate(this.flushBatch);
    else if (this.batch.length >= MAX_BATCH || this.batchBytes >= MAX_BATCH_BYTES)
      this.flushBatch();
  }

  /** Sends the queued publishes as one script call (see `queue`). */
  private readonly flushBatch = (): void => {
    const batch = this.batch;
    if (batch.length === 0) return;
    this.batch = [];
    this.batchBytes = 0;
    const keys: string[] = [`${this.prefix}seq`];
    const args: string[] = [
      this.procPrefix,
      String(this.historyCount),
      String(this.historyBytes),
      SENTINEL,
      `p:${this.processId}`,
    ];
    for (const { token, hasId, idTemplate, rest, seen } of batch) {
      keys.push(`${this.prefix}m:${token}`, `${this.prefix}h:${token}`, `${this.prefix}c:${token}`);
      args.push(hasId, idTemplate, rest, seen);
    }
    this.scripts.esPublish(keys.length, ...keys, ...args).then(
      (replies) => {
        for (let i = 0; i < batch.length; i++) {
          const pending = batch[i] as PendingPublish;
          const reply = replies[i] as Reply | undefined;
          if (reply === undefined || reply[0] === 500) {
            pending.reject(new Error(String(reply?.[1] ?? 'no reply from the publish script')));
          } else {
            pending.resolve(reply);
          }
        }
      },
      (error: unknown) => {
        for (const pending of batch) pending.reject(error);
      },
    );
  };

  /** A publish that could be delivered here has its reply: deliver it, then what the channel held. */
  private landed(state: TokenState, local: Message | undefined): void {
    state.inFlight--;
    if (local !== undefined) {
      this.localDeliveries++;
      this.receive(state, local);
    }
    if (state.inFlight > 0 || state.held === undefined) return;
    const held = state.held;
    state.held = undefined;
    for (const message of held) this.receive(state, message);
  }

  async finish(token: string): Promise<PublishOutcome> {
    if (!this.isReady) throw this.unavailable();
    const { meta, channel } = this.keys(token);
    let reply: Reply;
    try {
      this.flushBatch();
      reply = await this.scripts.esFinish(meta, `${this.prefix}seq`, channel, this.procPrefix);
    } catch (error) {
      throw this.unavailable(error);
    }
    return { status: reply[0] as 200 | 404, id: null, subscribers: Number(reply[1]) };
  }

  async retry(token: string, ms: number): Promise<PublishOutcome> {
    if (!this.isReady) throw this.unavailable();
    const { meta, channel } = this.keys(token);
    let reply: Reply;
    try {
      this.flushBatch();
      reply = await this.scripts.esRetry(meta, `${this.prefix}seq`, channel, this.procPrefix, ms);
    } catch (error) {
      throw this.unavailable(error);
    }
    return { status: reply[0] as 200 | 202 | 404, id: null, subscribers: Number(reply[1]) };
  }

  stats(): BrokerStats {
    let tokens = 0;
    for (const state of this.tokens.values()) if (state.live.length > 0) tokens++;
    return {
      tokens,
      streams: this.streamCount,
      eventsAccepted: this.eventsAccepted,
      redis: this.status,
      redisErrors: this.redisErrors,
      redisLastError: this.lastError,
      redisProcessId: this.processId,
      redisLocalDeliveries: this.localDeliveries,
    };
  }

  async close(): Promise<void> {
    if (this.isClosed) return;
    clearInterval(this.heartbeatTimer);
    const leaving: Promise<unknown>[] = [];
    for (const state of this.tokens.values()) {
      for (const local of [...state.live]) {
        local.subscriber.onClose = undefined;
        local.subscriber.end();
        if (this.isReady) {
          const { meta, stream } = this.keys(state.token);
          leaving.push(
            this.scripts.esUnsubscribe(
              meta,
              stream,
              this.procPrefix,
              this.processId,
              local.subId,
              this.graceMs,
            ),
          );
        }
      }
      state.live = [];
    }
    this.isClosed = true;
    this.isReady = false;
    if (leaving.length > 0 || this.cmd.status === 'ready') {
      leaving.push(this.cmd.del(this.procPrefix + this.processId));
      // Bounded: a Redis that does not answer must not hold up the shutdown.
      await Promise.race([
        Promise.allSettled(leaving),
        new Promise((resolve) => setTimeout(resolve, 1000).unref()),
      ]);
    }
    this.tokens.clear();
    this.cmd.disconnect();
    this.sub.disconnect();
  }
}

/**
 * Splits an event into what Redis needs to write it once its sequence number is known: the id with
 * a placeholder for the number (for the id classes, whose id is the number), and the rest of the block.
 */
function template(event: Event): { hasId: boolean; idTemplate: string; rest: string } {
  const lines = event.value;
  const rest = encodeTrustedEvent(
    undefined,
    event.action,
    lines.length === 1 ? (lines[0] as string) : lines.join('\n'),
  );
  event.seq = Number(SENTINEL);
  const id = event.id;
  if (id === undefined) return { hasId: false, idTemplate: '', rest };
  // Digits cannot break a field, so checking the template checks every id made from it.
  assertFieldValue('id', id);
  return { hasId: true, idTemplate: id, rest };
}

/**
 * Connects to Redis and creates the broker. `ioredis` is loaded here, so that listeners without
 * Redis never load it. Resolves once connected, or after `connectTimeoutMs` with the broker still
 * reconnecting in the background (POSTs get `503` until then).
 * @param url A `redis://` or `rediss://` URL, e.g. `redis://127.0.0.1:6379/0`.
 * @param options See {@link RedisBrokerOptions}.
 * @returns The broker, for `createListener({ broker })`.
 */
export async function createRedisBroker(
  url: string,
  options: RedisBrokerOptions = {},
): Promise<RedisBroker> {
  const { Redis } = await import('ioredis');
  const clientOptions = {
    // A POST must never wait for a connection, nor have its command sent twice after one.
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    commandTimeout: options.commandTimeoutMs ?? 2000,
    // Auto-pipelining cost more CPU per POST than it saved in bench/redis.js.
    enableAutoPipelining: false,
    retryStrategy: (attempt: number): number => Math.min(50 * 2 ** Math.min(attempt, 10), 2000),
    connectionName: 'eventsource-listener',
  };
  const cmd = new Redis(url, clientOptions);
  const sub = new Redis(url, clientOptions);
  const broker = new RedisBroker(cmd, sub, options);
  if (!(await broker.waitReady(options.connectTimeoutMs ?? 3000))) {
    debug('Redis at %s is not ready yet (%s); retrying in the background', url, broker.status);
  }
  return broker;
}
