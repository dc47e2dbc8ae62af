/**
 * The Redis broker: several listener processes sharing one Redis behave as one listener.
 *
 * Every decision that involves several processes runs as one Lua script (scripts.ts, which also
 * lists the keys), and Redis runs scripts one at a time: a token's events get one order and
 * increasing ids everywhere, and `404` / `423` / takeover are decided once for all processes.
 * Events, finishes, retries and takeovers reach the other processes on the token's pub/sub channel
 * (messages.ts); each process applies them to its own subscribers (token-state.ts).
 *
 * The hand-over from replay to the live stream loses and doubles nothing: a new subscriber's process
 * subscribes to the channel first and buffers what arrives, the script then registers it, takes a
 * sequence number S and returns the replay; buffered messages numbered above S follow the replay.
 *
 * A process that holds every live subscriber of a token, and has seen everything the channel
 * carried, gets its own POSTs back in the publish script's reply instead of as a pub/sub message.
 * Channel messages that arrive while such a reply is pending are held and follow it: Redis
 * published them after running that script.
 *
 * The POSTs of one turn of the event loop go to Redis as one script call (batch.ts); every other
 * command sends the waiting batch first, so Redis sees this process's commands in order.
 *
 * When a connection drops, streams stay open and POSTs get `503` with `Retry-After`; once both
 * connections are back (to the same server, or with Sentinels to the replica promoted meanwhile),
 * the process lifts the id counter above every id given out before, subscribes again,
 * re-registers its subscribers, and sends them what the channel carried meanwhile from the token's
 * history.
 *
 * With `waitReplicas` ≥ 1 a POST is answered 2xx only once that many replicas confirmed its event
 * (replication.ts); one that is not confirmed in time is answered `503` but not taken back (see
 * {@link RedisNotAcknowledgedError}).
 */
import { randomBytes } from 'node:crypto';
import type { Redis as RedisClient } from 'ioredis';
import { debugRedis as debug } from '../../debug.js';
import { flattenError } from '../../errors.js';
import type { Event } from '../../events.js';
import {
  gapChunk,
  retryChunk,
  type Broker,
  type BrokerOptions,
  type BrokerStats,
  type Presence,
  type PublishOutcome,
  type StreamMode,
} from '../broker.js';
import { resolveBrokerOptions } from '../options.js';
import { Chunk } from '../chunk.js';
import type { Subscriber } from '../subscriber.js';
import {
  fillId,
  PublishBatch,
  templateEvent,
  type CommandClass,
  type PendingPublish,
  type PublishReply,
} from './batch.js';
import { clientOptions, parseRedisUrl, redact, type RedisTarget } from './connection.js';
import { Departures } from './departures.js';
import { RedisNotAcknowledgedError, RedisUnavailableError } from './errors.js';
import { decodeMessage, eventMessage, type Message } from './messages.js';
import { AcknowledgementBatch, PrimaryWatch } from './replication.js';
import { defineScripts, RedisKeys, type Reply, type Scripts } from './scripts.js';
import { TokenState, type Joiner, type Local } from './token-state.js';

/** Options of {@link createRedisBroker}, on top of the options every broker takes. */
export interface RedisBrokerOptions extends BrokerOptions {
  /** Prefix of every Redis key and channel. Defaults to `eventsource:`. */
  keyPrefix?: string | undefined;
  /** How often this process refreshes its heartbeat, in ms. Defaults to `1000`. */
  heartbeatMs?: number | undefined;
  /** How long a process's subscribers count without a heartbeat, in ms. Defaults to `5000`. */
  expiryMs?: number | undefined;
  /**
   * Longest wait for one Redis command before the request fails with 503, in ms; with
   * `waitReplicas`, `waitTimeoutMs` is added (a command may queue behind a `WAIT`). Defaults to `2000`.
   */
  commandTimeoutMs?: number | undefined;
  /**
   * Replicas that must confirm an event (Redis `WAIT`) before its POST is answered 2xx; when fewer
   * do within `waitTimeoutMs`, the POST is answered `503` with `Retry-After`, and the event, which
   * the primary has and may have delivered, keeps its id and is not taken back (see
   * {@link RedisNotAcknowledgedError}). `FINISH` and `RETRY` wait too. Defaults to `0` (no wait:
   * an event acknowledged just before the primary fails may be lost).
   */
  waitReplicas?: number | undefined;
  /** Longest wait for the replicas' confirmation, in ms (at least 1). Defaults to `2000`. */
  waitTimeoutMs?: number | undefined;
  /** Longest wait for the first connection in {@link createRedisBroker}, in ms. Defaults to `3000`. */
  connectTimeoutMs?: number | undefined;
}

/** A POST waiting for the publish script's reply. */
interface Publish extends PendingPublish {
  event: Event;
  /** The token's state when the script may leave the delivery to this process (it counts in `inFlight`). */
  state: TokenState | undefined;
  resolve: (outcome: PublishOutcome) => void;
  reject: (error: unknown) => void;
}

/** Tokens per heartbeat script call: keeps one call short even with many tokens. */
const HEARTBEAT_TOKENS = 500;

/** The broker interface backed by Redis; see the module comment. */
export class RedisBroker implements Broker {
  private readonly mode: StreamMode;
  private readonly historyCount: number;
  private readonly graceMs: number;
  private readonly gapEvent: string | undefined;
  private readonly heartbeatMs: number;
  private readonly expiryMs: number;
  /** This process's id in the registry. */
  readonly processId = randomBytes(6).toString('base64url');
  /** Events delivered from the publish script's reply, without a pub/sub message. */
  private localDeliveries = 0;
  private readonly keys: RedisKeys;
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
  /** Noticing dead processes' streams, when presence is announced. */
  private departures: Departures | undefined;
  private readonly scripts: Scripts;
  private readonly batch: PublishBatch<Publish>;
  /** The replicas' confirmation of POSTs; undefined with `waitReplicas` 0. */
  private readonly acknowledgements: AcknowledgementBatch | undefined;
  /** POSTs answered 503 because too few replicas confirmed their event in time. */
  private notAcknowledged = 0;
  /** The highest sequence number this process has seen: the counter's floor after a reconnect. */
  private highestSeq = 0;
  private readonly primary = new PrimaryWatch();
  /** `standalone`, or `sentinel` when the primary is found through Sentinels. */
  readonly redisMode: 'standalone' | 'sentinel';

  /**
   * Private because its parameters are ioredis connections: a public constructor would put
   * ioredis's types into the published declarations, and those do not compile without
   * `skipLibCheck`. {@link createRedisBroker} makes the connections and the broker.
   * @param cmd The connection for commands (offline queue disabled).
   * @param sub The connection for pub/sub.
   * @param options See {@link RedisBrokerOptions}.
   * @param redisMode How the connections find Redis, for `/stats`.
   * @param Command ioredis's Command class, for the publish batches.
   */
  private constructor(
    private readonly cmd: RedisClient,
    private readonly sub: RedisClient,
    options: RedisBrokerOptions,
    redisMode: RedisTarget['mode'],
    Command: CommandClass,
  ) {
    const resolved = resolveBrokerOptions(options);
    this.mode = resolved.mode;
    this.historyCount = resolved.history;
    this.graceMs = resolved.graceMs;
    this.gapEvent = resolved.gapEvent;
    this.heartbeatMs = options.heartbeatMs ?? 1000;
    this.expiryMs = options.expiryMs ?? 5000;
    const { waitReplicas, waitTimeoutMs } = resolveWaitOptions(options);
    this.acknowledgements =
      waitReplicas > 0 ? new AcknowledgementBatch(cmd, waitReplicas, waitTimeoutMs) : undefined;
    this.redisMode = redisMode;
    this.keys = new RedisKeys(options.keyPrefix ?? 'eventsource:');
    this.scripts = defineScripts(cmd);
    this.batch = new PublishBatch<Publish>(
      cmd,
      Command,
      this.keys,
      this.processId,
      this.historyCount,
      resolved.historyBytes,
      {
        published: (pending, reply) => this.published(pending, reply),
        failed: (pending, error) => this.publishFailed(pending, error),
      },
    );
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
        if (!this.isClosed) this.primary.lost(Date.now());
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

  /**
   * Makes the broker over two connections; {@link createRedisBroker} is the public way in.
   * @internal
   */
  static fromConnections(
    cmd: RedisClient,
    sub: RedisClient,
    options: RedisBrokerOptions,
    redisMode: RedisTarget['mode'],
    Command: CommandClass,
  ): RedisBroker {
    return new RedisBroker(cmd, sub, options, redisMode, Command);
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

  /** Both connections are up: subscribe again, refresh the heartbeat, re-register, catch up. */
  private recover(): void {
    if (this.isClosed || this.recovering !== undefined) return;
    if (this.cmd.status !== 'ready' || this.sub.status !== 'ready') return;
    this.recovering = (async () => {
      // Before anything is written: a promoted replica may hold an older counter.
      this.batch.flush();
      await this.scripts.esFloor(this.keys.seq, this.highestSeq);
      const role = (await this.cmd.call('ROLE')) as unknown[];
      const states = [...this.tokens.values()];
      for (const state of states) if (state.live.length > 0) state.paused ??= [];
      const channels = states.filter((state) => state.refs > 0).map((state) => state.channel);
      if (channels.length > 0) await this.sub.subscribe(...channels);
      for (const state of states) if (state.refs > 0) state.subscribing = Promise.resolve();
      await this.heartbeat();
      await Promise.all(states.map((state) => this.resync(state)));
      return String(role[0]);
    })().then(
      (role) => {
        this.recovering = undefined;
        // The connection may have dropped again meanwhile: then the next `ready` recovers.
        this.isReady = this.cmd.status === 'ready' && this.sub.status === 'ready' && !this.isClosed;
        if (!this.isReady) return;
        const stream = this.cmd.stream;
        const address = `${stream.remoteAddress ?? ''}:${stream.remotePort ?? ''}`;
        if (this.primary.found(address, role, Date.now())) {
          debug(
            'failover: now on %s (%s), %d ms after losing the old primary',
            address,
            role,
            this.primary.lastFailoverMs,
          );
        }
        if (this.reconnects++ > 0) debug('recovered: registry and subscriptions restored');
      },
      (error: unknown) => {
        this.recovering = undefined;
        this.noteError(error);
        // The next `ready` tries again; if both are still up, try again shortly.
        setTimeout(() => this.recover(), 500).unref();
      },
    );
  }

  /** Tells Redis this process's count (and owner) for a token again, then catches up. */
  private async resync(state: TokenState): Promise<void> {
    const owner =
      this.mode !== 'multi' && state.live.length === 1
        ? `${this.processId}:${(state.live[0] as Local).subId}`
        : '';
    this.batch.flush();
    await this.scripts.esSync(
      this.keys.meta(state.token),
      this.keys.stream(state.token),
      this.keys.procPrefix,
      this.processId,
      state.live.length,
      owner,
      this.expiryMs + this.graceMs,
      this.graceMs,
    );
    if (state.paused !== undefined) await this.catchUp(state);
    this.release(state);
  }

  /** Sends the live subscribers what the channel carried while the pub/sub connection was down. */
  private async catchUp(state: TokenState): Promise<void> {
    const paused = state.paused ?? [];
    if (state.lastSeq > 0 && this.historyCount > 0) {
      this.batch.flush();
      const entries = (await this.cmd.xrange(
        this.keys.stream(state.token),
        `(${state.lastSeq}-0`,
        '+',
      )) as [string, string[]][];
      const firstPaused = paused[0]?.seq ?? Infinity;
      if (entries.length > 0)
        debug('token %s: catching up %d event(s)', state.token, entries.length);
      for (const [entryId, fields] of entries) {
        const seq = Number(entryId.slice(0, -2));
        // What the channel carried since it is back comes after; the dispatch skips doubles.
        if (seq >= firstPaused) break;
        const b = fields.indexOf('b');
        if (b === -1) continue;
        state.dispatch(eventMessage(seq, fields[b + 1] ?? ''));
      }
    }
    state.paused = undefined;
    for (const message of paused) state.dispatch(message);
  }

  /** The tokens this process has streams of. */
  private liveTokens(): string[] {
    const live: string[] = [];
    for (const state of this.tokens.values()) if (state.live.length > 0) live.push(state.token);
    return live;
  }

  private async heartbeat(): Promise<void> {
    const live = this.liveTokens();
    const ttl = this.expiryMs + this.graceMs;
    const procKey = this.keys.procPrefix + this.processId;
    for (let i = 0; i === 0 || i < live.length; i += HEARTBEAT_TOKENS) {
      await this.scripts.esHeartbeat(
        procKey,
        this.expiryMs,
        ttl,
        this.keys.prefix,
        ...live.slice(i, i + HEARTBEAT_TOKENS),
      );
    }
    if (this.departures !== undefined) await this.departures.check(live);
  }

  /**
   * Tells `onLost` each token that a dead process (no heartbeat) had streams of, once across all
   * processes; for presence announcements. Off until called.
   */
  watchDepartures(onLost: (token: string) => void): void {
    this.departures = new Departures(this.cmd, this.keys, this.processId, this.expiryMs, onLost);
  }

  private onMessage(channel: string, message: string): void {
    const state = this.tokens.get(this.keys.tokenOf(channel));
    if (state === undefined) return;
    const decoded = decodeMessage(message);
    if (decoded.seq > this.highestSeq) this.highestSeq = decoded.seq;
    state.fromChannel(decoded);
  }

  /** A takeover reached a local subscriber: unless it is the new owner, it leaves. */
  private readonly onTakeover = (state: TokenState, local: Local, owner: string): void => {
    if (owner === `${this.processId}:${local.subId}`) return;
    debug('token %s: taken over by %s', state.token, owner);
    this.drop(state, local);
    local.subscriber.detach();
  };

  /** Removes a local subscriber without telling Redis (it was taken over). */
  private drop(state: TokenState, local: Local): void {
    local.subscriber.onClose = undefined;
    local.subscriber.context.takenOver++;
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
      state = new TokenState(token, this.keys.channel(token), this.onTakeover);
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
      const hasLastEventId = lastEventId !== undefined && lastEventId !== '';
      this.batch.flush();
      reply = await this.scripts.esSubscribe(
        this.keys.meta(token),
        this.keys.stream(token),
        this.keys.seq,
        state.channel,
        this.keys.procPrefix,
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
    const local: Local = { subscriber, subId, afterSeq: Number(reply[1]) };
    if (local.afterSeq > this.highestSeq) this.highestSeq = local.afterSeq;
    subscriber.open();
    this.replay(subscriber, reply, lastEventId, inherited);
    // Live messages that arrived during the replay, after this subscriber's sequence number.
    for (const message of joiner.buffer) state.apply(local, message);
    if (subscriber.isClosed) {
      // The client went away during the hand-over (or was ended by a finish or a takeover).
      this.unregister(token, subId);
      this.release(state);
      return 'ok';
    }
    state.live.push(local);
    // A token's first stream here: its departure must be known at once, not at the next heartbeat.
    if (state.live.length === 1) this.departures?.recordSoon(() => this.liveTokens());
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

  /**
   * Writes what the subscribe script returned (see scripts.ts): the kept `retry`, the gap signal
   * when the Last-Event-ID is not kept, then the replay; without a replay, a takeover without
   * Last-Event-ID gets what the local subscriber it replaced had not sent yet.
   */
  private replay(
    subscriber: Subscriber,
    reply: Reply,
    lastEventId: string | undefined,
    inherited: Chunk[] | undefined,
  ): void {
    const retry = String(reply[2]);
    if (retry !== '') subscriber.write(retryChunk(Number(retry)));
    if (reply[3] === 1) {
      debug(
        'token %s: Last-Event-ID %s is not kept, sending what is',
        subscriber.token,
        lastEventId,
      );
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
  }

  /** The unsubscribe script for one subscriber of this process. */
  private unsubscribeScript(token: string, subId: string): Promise<number> {
    return this.scripts.esUnsubscribe(
      this.keys.meta(token),
      this.keys.stream(token),
      this.keys.procPrefix,
      this.processId,
      subId,
      this.graceMs,
    );
  }

  /** Tells Redis a subscriber left; if Redis is down, the next recovery fixes the count. */
  private unregister(token: string, subId: string): void {
    this.batch.flush();
    this.unsubscribeScript(token, subId).catch((error: unknown) => {
      this.noteError(error);
      // Keep the token known so that recovery sends its (lower) count.
      this.hold(token);
    });
  }

  publish(event: Event): Promise<PublishOutcome> {
    if (!this.isReady) return Promise.reject(this.unavailable());
    let template;
    try {
      template = templateEvent(event);
    } catch (error) {
      return Promise.reject(error);
    }
    // When this process holds every subscriber of the token, the script can leave delivery to it.
    // Channel messages that arrive meanwhile are held by the token's state: Redis ran this script
    // before publishing them, so they come after this event.
    const state = this.tokens.get(event.target);
    const seen = state === undefined ? -1 : state.seenSeq();
    if (seen >= 0) (state as TokenState).inFlight++;
    return new Promise<PublishOutcome>((resolve, reject) => {
      const pending: Publish = {
        event,
        template,
        state: seen >= 0 ? state : undefined,
        resolve,
        reject,
      };
      this.batch.add(pending, event.target, seen);
    });
  }

  /** The publish script stored an event (or answered 404): delivers it here if it is ours to. */
  private published(pending: Publish, reply: PublishReply): void {
    const { status, seq, isLocal } = reply;
    const { event, template, state } = pending;
    const { hasId, idTemplate, rest } = template;
    const id = hasId && status !== 404 ? fillId(idTemplate, String(seq)) : null;
    let local: Message | undefined;
    if (isLocal) {
      local = eventMessage(seq, id === null ? rest : `id: ${id}\n${rest}`);
      this.localDeliveries++;
    }
    state?.landed(local);
    if (status === 404) {
      pending.resolve({ status, id: null, subscribers: 0 });
      return;
    }
    event.seq = seq;
    if (seq > this.highestSeq) this.highestSeq = seq;
    const outcome: PublishOutcome = { status, id, subscribers: reply.live };
    if (this.acknowledgements === undefined) {
      this.eventsAccepted++;
      pending.resolve(outcome);
      return;
    }
    this.confirm(id).then(() => {
      this.eventsAccepted++;
      pending.resolve(outcome);
    }, pending.reject);
  }

  /** The publish script call failed: the event was not stored. */
  private publishFailed(pending: Publish, error: unknown): void {
    pending.state?.landed(undefined);
    pending.reject(this.unavailable(error));
  }

  /**
   * With `waitReplicas`, waits until that many replicas confirmed this connection's writes so far.
   * @param id The event's id, for the error.
   * @throws RedisNotAcknowledgedError when fewer did within `waitTimeoutMs`, or the WAIT failed.
   */
  private async confirm(id: string | null): Promise<void> {
    const acknowledgements = this.acknowledgements;
    if (acknowledgements === undefined) return;
    const { replicas: required, timeoutMs } = acknowledgements;
    let replicas: number;
    try {
      replicas = await acknowledgements.confirm();
    } catch (error) {
      this.noteError(error);
      this.notAcknowledged++;
      throw new RedisNotAcknowledgedError(id, -1, required, timeoutMs, error);
    }
    if (replicas >= required) return;
    this.notAcknowledged++;
    debug('not acknowledged: %d of %d replica(s) within %d ms', replicas, required, timeoutMs);
    throw new RedisNotAcknowledgedError(id, replicas, required, timeoutMs);
  }

  async finish(token: string): Promise<PublishOutcome> {
    return this.announce(token, undefined);
  }

  async retry(token: string, ms: number): Promise<PublishOutcome> {
    return this.announce(token, ms);
  }

  /**
   * Runs the finish script (without `ms`) or the retry script: both take the token's keys and
   * answer {status, live}. The waiting batch goes first; any failure answers `503`.
   */
  private async announce(token: string, ms: number | undefined): Promise<PublishOutcome> {
    if (!this.isReady) throw this.unavailable();
    const { seq, procPrefix } = this.keys;
    const meta = this.keys.meta(token);
    const channel = this.keys.channel(token);
    let reply: Reply;
    try {
      this.batch.flush();
      reply =
        ms === undefined
          ? await this.scripts.esFinish(meta, seq, channel, procPrefix)
          : await this.scripts.esRetry(meta, seq, channel, procPrefix, ms);
    } catch (error) {
      throw this.unavailable(error);
    }
    const status = reply[0] as 200 | 202 | 404;
    if (status !== 404) await this.confirm(null);
    return { status, id: null, subscribers: Number(reply[1]) };
  }

  /**
   * Whether a token is connected in any process: the live subscribers of every process whose
   * heartbeat is still there, and the id of the token's last kept event.
   */
  async presence(token: string): Promise<Presence> {
    if (!this.isReady) throw this.unavailable();
    const [meta, last] = await Promise.all([
      this.cmd.hgetall(this.keys.meta(token)),
      this.cmd.xrevrange(this.keys.stream(token), '+', '-', 'COUNT', 1),
    ]);
    const counts = Object.entries(meta).filter(([field]) => field.startsWith('p:'));
    const alive = await Promise.all(
      counts.map(([field]) => this.cmd.exists(this.keys.procPrefix + field.slice(2))),
    );
    let subscribers = 0;
    counts.forEach(([, count], i) => {
      if (alive[i] === 1) subscribers += Number(count);
    });
    const fields = last[0]?.[1] ?? [];
    const idAt = fields.indexOf('i');
    const id = idAt === -1 ? '' : (fields[idAt + 1] ?? '');
    return { token, subscribers, connected: subscribers > 0, lastEventId: id === '' ? null : id };
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
      redisMode: this.redisMode,
      redisRole: this.isReady ? this.primary.role : 'unknown',
      redisPrimary: this.primary.address,
      redisFailovers: this.primary.failovers,
      redisLastFailoverMs: this.primary.lastFailoverMs,
      redisWaitReplicas: this.acknowledgements?.replicas ?? 0,
      redisNotAcknowledged: this.notAcknowledged,
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
        if (this.isReady) leaving.push(this.unsubscribeScript(state.token, local.subId));
      }
      state.live = [];
    }
    this.isClosed = true;
    this.isReady = false;
    if (leaving.length > 0 || this.cmd.status === 'ready') {
      leaving.push(this.cmd.del(this.keys.procPrefix + this.processId));
      if (this.departures !== undefined) leaving.push(this.departures.leave());
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

/** `waitReplicas` and `waitTimeoutMs` with their defaults, checked. */
function resolveWaitOptions(options: RedisBrokerOptions): {
  waitReplicas: number;
  waitTimeoutMs: number;
} {
  const waitReplicas = options.waitReplicas ?? 0;
  const waitTimeoutMs = options.waitTimeoutMs ?? 2000;
  if (!Number.isSafeInteger(waitReplicas) || waitReplicas < 0) {
    throw new RangeError(
      `\`waitReplicas\` must be a non-negative integer (replicas), got ${waitReplicas}`,
    );
  }
  if (!Number.isSafeInteger(waitTimeoutMs) || waitTimeoutMs < 1) {
    throw new RangeError(
      `\`waitTimeoutMs\` must be an integer >= 1 (milliseconds), got ${waitTimeoutMs}`,
    );
  }
  return { waitReplicas, waitTimeoutMs };
}

/**
 * Connects to Redis and creates the broker. `ioredis` is loaded here, so that listeners without
 * Redis never load it. Resolves once connected, or after `connectTimeoutMs` with the broker still
 * reconnecting in the background (POSTs get `503` until then).
 * @param url `redis://[user:password@]host:port/db`, `rediss://…` (TLS), or
 *   `redis+sentinel://[user:password@]host1:26379,host2:26379/<master-name>[/db]` to find the
 *   primary through Sentinels and follow it through failovers.
 * @param options See {@link RedisBrokerOptions}.
 * @returns The broker, for `createListener({ broker })`.
 * @throws TypeError for a URL of another form; RangeError or TypeError for a bad option.
 */
export async function createRedisBroker(
  url: string,
  options: RedisBrokerOptions = {},
): Promise<RedisBroker> {
  // Checked before any connection is made, so that a bad option leaves nothing open.
  resolveBrokerOptions(options);
  const { waitReplicas, waitTimeoutMs } = resolveWaitOptions(options);
  const target = parseRedisUrl(url);
  const { Redis, Command } = await import('ioredis');
  const commandTimeoutMs = options.commandTimeoutMs ?? 2000;
  const settings = {
    commandTimeoutMs: waitReplicas > 0 ? commandTimeoutMs + waitTimeoutMs : commandTimeoutMs,
  };
  const connect = (): RedisClient =>
    target.url === undefined
      ? new Redis(clientOptions(target, settings))
      : new Redis(target.url, clientOptions(target, settings));
  const broker = RedisBroker.fromConnections(connect(), connect(), options, target.mode, Command);
  if (!(await broker.waitReady(options.connectTimeoutMs ?? 3000))) {
    debug(
      'Redis at %s is not ready yet (%s); retrying in the background',
      redact(url),
      broker.status,
    );
  }
  return broker;
}
