/**
 * The Redis broker's keys and the Lua scripts that change them: one script per operation.
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
 *   sequence number (messages.ts), to every process that has a subscriber of the token.
 *
 * Besides, `<prefix>seq` is the one sequence counter, and `<prefix>proc:<processId>` a key each
 * process refreshes (its heartbeat); a process that stops refreshing it (a SIGKILL) no longer counts
 * as a subscriber after `expiryMs`.
 *
 * Redis runs scripts one at a time, so each script below is one decision for all processes. Each
 * comment states the script's KEYS, ARGV and reply, in the order the broker passes them.
 */
import { createHash } from 'node:crypto';
import type { Redis as RedisClient } from 'ioredis';
import { MessageKind } from './messages.js';

/** The names of one broker's keys, all under its prefix. */
export class RedisKeys {
  /** The sequence counter. */
  readonly seq: string;
  /** The prefix of the processes' heartbeat keys. */
  readonly procPrefix: string;

  /** @param prefix Prefix of every key and channel, e.g. `eventsource:`. */
  constructor(readonly prefix: string) {
    this.seq = `${prefix}seq`;
    this.procPrefix = `${prefix}proc:`;
  }

  /** The token's hash. */
  meta(token: string): string {
    return `${this.prefix}m:${token}`;
  }

  /** The token's history stream. */
  stream(token: string): string {
    return `${this.prefix}h:${token}`;
  }

  /** The token's pub/sub channel. */
  channel(token: string): string {
    return `${this.prefix}c:${token}`;
  }

  /** The token a channel name is for (the inverse of {@link channel}). */
  tokenOf(channel: string): string {
    return channel.slice(this.prefix.length + 2);
  }
}

/**
 * The Lua helpers every script but the heartbeat starts with:
 * - `seqstr` writes a sequence number without Lua 5.1's `%.14g` rounding;
 * - `next_seq` takes the next sequence number. The counter is seeded from the Redis server's clock
 *   in microseconds, so numbers stay above every id given before a restart or a flush (as long as
 *   fewer than a million events a second were sent on average);
 * - `load` reads the token hash and drops the counts of processes whose heartbeat expired, so a
 *   killed process frees its tokens. It returns the other fields, the live count, whether the
 *   token exists, and the `p:` fields still counted;
 * - `publish` sends a channel message (kind letter, sequence number, line feed, payload) and notes
 *   its number in `l`;
 * - `field` reads one field of a stream entry;
 * - `grace` lets a token without subscribers expire after `ms` (at once when `0`).
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
local function publish(meta, channel, kind, s, payload)
  redis.call('PUBLISH', channel, kind .. s .. '\\n' .. payload)
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
 * Publish: stores and publishes a batch of events (batch.ts), each as if by its own script.
 *
 * KEYS: seq.
 * ARGV: prefix, history, historyBytes, sentinel, the caller's `p:<processId>` field, then per
 * event: token, hasId (`1`/`0`), idTemplate (the sentinel stands for the sequence number), block
 * (without the id line), and the sequence number up to which the caller has seen the token's
 * channel (-1: none). The token's keys are made here from the prefix, as the heartbeat does: the
 * call is sent for every batch of POSTs, and five arguments per event cost the caller less than eight.
 * Reply: integers only, because the caller reads them as they arrive, where strings would each
 * cost it a Buffer and a conversion, then the error texts. One integer per event, `live * 8 + kind`:
 * kind 0 `404`, 1 `202`, 2 `200` published, 3 `200` left to the caller, 4 failed. Kind 3 is sent
 * when every live subscriber is the caller's and the caller has seen every message the channel
 * carried (`l`): then nothing is published and the caller delivers the event itself, which saves
 * every process a pub/sub message. The events of kinds 1 to 3 get sequence numbers that are usually
 * consecutive, so an event's number is the previous one's plus 1 unless it is written, before the
 * event's integer (always for the first); a sequence number is at least 10^15 (`next_seq`), an
 * event's integer less. An event whose commands fail (kind 4, its error text the next one after the
 * integers) does not affect the others.
 */
const PUBLISH_LUA = `${PRELUDE}
local prefix, maxCount, maxBytes = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local procPrefix, sentinel, me = prefix .. 'proc:', ARGV[4], ARGV[5]
local function publish_one(token, hasId, idTemplate, block, seen)
  local meta, stream = prefix .. 'm:' .. token, prefix .. 'h:' .. token
  local t, live, exists, procs = load(meta, procPrefix)
  if not exists or (live == 0 and maxCount == 0) then return 0, 0, 0 end
  local n = next_seq(KEYS[1])
  local s = seqstr(n)
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
    return 1, n, 0
  end
  if seen >= 0 and #procs == 1 and procs[1] == me and tonumber(t.l or '0') <= seen then
    return 3, n, live
  end
  publish(meta, prefix .. 'c:' .. token, '${MessageKind.Event}', s, block)
  return 2, n, live
end
local replies, errors, last = {}, {}, -1
for a = 6, #ARGV, 5 do
  local ok, kind, n, live = pcall(publish_one, ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3],
    tonumber(ARGV[a + 4]))
  if not ok then
    errors[#errors + 1] = type(kind) == 'table' and tostring(kind.err) or tostring(kind)
    kind, n, live = 4, 0, 0
  end
  if n > 0 then
    if n ~= last + 1 then replies[#replies + 1] = n end
    last = n
  end
  replies[#replies + 1] = live * 8 + kind
end
for i = 1, #errors do replies[#replies + 1] = errors[i] end
return replies
`;

/** The publish script, which batch.ts sends itself (by its SHA once loaded) rather than through ioredis. */
export const PUBLISH_SCRIPT = {
  lua: PUBLISH_LUA,
  sha: createHash('sha1').update(PUBLISH_LUA).digest('hex'),
};

/**
 * Subscribe: registers one subscriber, decides `423` and takeover, and returns its replay.
 *
 * KEYS: meta, stream, seq, channel.
 * ARGV: procPrefix, processId, subscriberId, mode, hasLastEventId (`1`/`0`), lastEventId, ttl.
 * Reply: {'conflict'}, or {'ok', seq, retry, gap, hasOldest, oldestId, seq1, block1, seq2,
 * block2, ...}: the subscriber's own sequence number, the last `retry` (or ''), `1` when the
 * Last-Event-ID is not kept (with the oldest kept id when `hasOldest` is `1`), then the replay.
 * Without a Last-Event-ID the replay is what was kept while nobody was connected (`u`).
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
if takeover then publish(meta, KEYS[4], '${MessageKind.Takeover}', s, me) end
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
 * Unsubscribe: unregisters one subscriber, unless it was taken over meanwhile, and lets the token
 * expire after the grace period when it was the last.
 *
 * KEYS: meta, stream.
 * ARGV: procPrefix, processId, subscriberId, graceMs.
 * Reply: the live count left (-1 when the subscriber had been taken over).
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
 * Sync: sets this process's count for a token after a reconnect (Redis may have lost everything,
 * or missed an unsubscribe).
 *
 * KEYS: meta, stream.
 * ARGV: procPrefix, processId, count, owner (`<processId>:<subscriberId>`, or ''), ttl, graceMs.
 * Reply: the live count.
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

/**
 * Finish: ends the token's streams in every process.
 *
 * KEYS: meta, seq, channel.
 * ARGV: procPrefix.
 * Reply: {status, live}: `404` when nobody is connected.
 */
const FINISH_LUA = `${PRELUDE}
local t, live = load(KEYS[1], ARGV[1])
if live == 0 then return {404, 0} end
local s = seqstr(next_seq(KEYS[2]))
publish(KEYS[1], KEYS[3], '${MessageKind.Finish}', s, '')
return {200, live}
`;

/**
 * Retry: keeps the `retry` for whoever subscribes next and sends it to the live streams.
 *
 * KEYS: meta, seq, channel.
 * ARGV: procPrefix, ms.
 * Reply: {status, live}: `404` for an unknown token, `202` when kept for a reconnecting subscriber.
 */
const RETRY_LUA = `${PRELUDE}
local t, live, exists = load(KEYS[1], ARGV[1])
if not exists then return {404, 0} end
redis.call('HSET', KEYS[1], 'r', ARGV[2])
if live == 0 then return {202, 0} end
local s = seqstr(next_seq(KEYS[2]))
publish(KEYS[1], KEYS[3], '${MessageKind.Retry}', s, ARGV[2])
return {200, live}
`;

/**
 * Heartbeat: refreshes this process's key, and the expiry of the tokens it has subscribers of.
 *
 * KEYS: the process's key (`<prefix>proc:<processId>`).
 * ARGV: expiryMs, ttl, prefix, then the tokens.
 * Reply: 1.
 */
const HEARTBEAT_LUA = `
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
for i = 4, #ARGV do
  redis.call('PEXPIRE', ARGV[3] .. 'm:' .. ARGV[i], ARGV[2])
  redis.call('PEXPIRE', ARGV[3] .. 'h:' .. ARGV[i], ARGV[2])
end
return 1
`;

/**
 * Floor: lifts the sequence counter above every number given out before, after a reconnect.
 *
 * A replica promoted by a failover holds the counter as it last received it: numbers the old
 * primary gave out afterwards (events answered `503` because no replica confirmed them, or all
 * events with `waitReplicas` 0) would be given out again. So every process, before it answers
 * POSTs again, lifts the counter to at least the Redis server's clock in microseconds (above every
 * number given out before, as long as fewer than a million were given out a second on average and
 * the servers' clocks agree) and to the highest number this process has seen.
 *
 * KEYS: seq.
 * ARGV: the highest sequence number this process has seen.
 * Reply: the counter, as a string.
 */
const FLOOR_LUA = `${PRELUDE}
local t = redis.call('TIME')
local n = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'),
  tonumber(t[1]) * 1000000 + tonumber(t[2]), tonumber(ARGV[1]))
redis.call('SET', KEYS[1], seqstr(n))
return seqstr(n)
`;

/** A script's reply: an array of bulk strings and integers. */
export type Reply = (string | number)[];

/** The scripts as commands of the command connection; arguments are KEYS then ARGV, as above. */
export interface Scripts {
  esSubscribe(
    meta: string,
    stream: string,
    seq: string,
    channel: string,
    procPrefix: string,
    processId: string,
    subId: string,
    mode: string,
    hasLastEventId: '0' | '1',
    lastEventId: string,
    ttl: number,
  ): Promise<Reply>;
  esUnsubscribe(
    meta: string,
    stream: string,
    procPrefix: string,
    processId: string,
    subId: string,
    graceMs: number,
  ): Promise<number>;
  esSync(
    meta: string,
    stream: string,
    procPrefix: string,
    processId: string,
    count: number,
    owner: string,
    ttl: number,
    graceMs: number,
  ): Promise<number>;
  esFinish(meta: string, seq: string, channel: string, procPrefix: string): Promise<Reply>;
  esRetry(
    meta: string,
    seq: string,
    channel: string,
    procPrefix: string,
    ms: number,
  ): Promise<Reply>;
  esFloor(seq: string, highestSeq: number): Promise<string>;
  esHeartbeat(
    procKey: string,
    expiryMs: number,
    ttl: number,
    prefix: string,
    ...tokens: string[]
  ): Promise<number>;
}

/**
 * Defines the scripts on a connection; ioredis sends each by its SHA once Redis has loaded it.
 * @param client The command connection.
 * @returns The same connection, typed with the scripts' commands.
 */
export function defineScripts(client: RedisClient): Scripts {
  const scripts: [keyof Scripts, string, number][] = [
    ['esSubscribe', SUBSCRIBE_LUA, 4],
    ['esUnsubscribe', UNSUBSCRIBE_LUA, 2],
    ['esSync', SYNC_LUA, 2],
    ['esFinish', FINISH_LUA, 3],
    ['esRetry', RETRY_LUA, 3],
    ['esFloor', FLOOR_LUA, 1],
    ['esHeartbeat', HEARTBEAT_LUA, 1],
  ];
  for (const [name, lua, numberOfKeys] of scripts) {
    client.defineCommand(name, { lua, numberOfKeys });
  }
  return client as unknown as Scripts;
}
