/**
 * The in-memory broker: the embedded default, needing no server. Everything happens synchronously
 * in this process, so a replay and the live events that follow it can never interleave or double.
 */
import type { Event } from '../events.js';
import { debugListener as debug } from '../debug.js';
import {
  clockSeq,
  encodeEventChunk,
  gapChunk,
  retryChunk,
  type Broker,
  type BrokerOptions,
  type BrokerStats,
  type Presence,
  type PublishOutcome,
  type StreamMode,
} from './broker.js';
import type { Chunk } from './chunk.js';
import { resolveBrokerOptions, resolveMaxMemory } from './options.js';
import type { Subscriber } from './subscriber.js';

/** One token: its live subscribers and what it keeps for replay. */
class TokenState {
  subscribers: Subscriber[] = [];
  /** Kept events, oldest first, from `historyStart` on (a cheap queue without shifting). */
  history: Chunk[] = [];
  historyStart = 0;
  historyBytes = 0;
  /** Sequence number of the first event accepted while nobody was connected, or 0. */
  undeliveredFrom = 0;
  /** The id of the last event published, for presence. */
  lastEventId: string | undefined = undefined;
  /** The last `retry` value, sent to every new subscriber. */
  retryMs: number | undefined = undefined;
  graceTimer: NodeJS.Timeout | undefined = undefined;

  /** Whether the token was forgotten (its grace ended): its history is gone. */
  isDropped = false;

  constructor(readonly token: string) {}

  /** Events kept. */
  get count(): number {
    return this.history.length - this.historyStart;
  }

  /** The sequence number of the oldest kept event; Infinity when none is kept. */
  get oldestSeq(): number {
    return (this.history[this.historyStart] as Chunk | undefined)?.seq ?? Infinity;
  }

  push(chunk: Chunk): void {
    this.history.push(chunk);
    this.historyBytes += chunk.size;
  }

  /** Drops the oldest kept event (there must be one) and returns it. */
  dropOldest(): Chunk {
    const dropped = this.history[this.historyStart] as Chunk;
    // Let go of the dropped event now: the slot is only reclaimed at the next compaction, and
    // until then it would keep a large event's bytes alive beyond --history-bytes.
    this.history[this.historyStart++] = undefined as unknown as Chunk;
    this.historyBytes -= dropped.size;
    // Compact now and then, so dropped entries do not pile up at the front.
    if (this.historyStart > 64 && this.historyStart * 2 > this.history.length) {
      this.history = this.history.slice(this.historyStart);
      this.historyStart = 0;
    }
    return dropped;
  }

  /** Kept chunks after the given id; `undefined` when the id is not kept. */
  after(lastEventId: string): Chunk[] | undefined {
    for (let i = this.history.length - 1; i >= this.historyStart; i--) {
      if ((this.history[i] as Chunk).id === lastEventId) return this.history.slice(i + 1);
    }
    return undefined;
  }

  /** Kept chunks with a sequence number of at least `seq`. */
  since(seq: number): Chunk[] {
    let i = this.history.length;
    while (i > this.historyStart && (this.history[i - 1] as Chunk).seq >= seq) i--;
    return this.history.slice(i);
  }

  get oldestId(): string | undefined {
    return (this.history[this.historyStart] as Chunk | undefined)?.id;
  }
}

/**
 * What a kept event counts towards `maxMemory` on top of its encoded bytes: the Chunk, its id and
 * the string's header take some 250 bytes of heap each (measured with 200 000 small events).
 */
const EVENT_OVERHEAD = 256;

/** Options of the in-memory broker: those of every broker, and its bound on all history. */
export interface MemoryBrokerOptions extends BrokerOptions {
  /**
   * Bytes the history of every token may hold together (encoded events plus 256 bytes each, and
   * whatever {@link MemoryBroker.waitingBytes} reports); past it the oldest events of any token are
   * dropped first, and a replay from there gets the gap signal. The newest event is always kept.
   * `0` for no bound. Defaults to 256 MiB.
   */
  maxMemory?: number | undefined;
}

/** The in-memory broker. */
export class MemoryBroker implements Broker {
  /**
   * Bytes held for events outside the history (the listener's subscriber queues), which count
   * towards `maxMemory` as well. Set by the listener; none by default.
   */
  waitingBytes: () => number = () => 0;
  /**
   * Told when a token's history is let go of with no request to trigger it (its grace ended),
   * with the bytes it held: the listener then has the memory collected.
   */
  onHistoryReleased: ((bytes: number) => void) | undefined = undefined;
  private readonly tokens = new Map<string, TokenState>();
  private readonly mode: StreamMode;
  private readonly historyCount: number;
  private readonly historyBytes: number;
  private readonly graceMs: number;
  private readonly gapEvent: string | undefined;
  private readonly maxMemory: number;
  /** Bytes of every token's history, with EVENT_OVERHEAD per event; and the events. */
  private keptBytes = 0;
  private keptCount = 0;
  /** Events dropped to stay within `maxMemory`. */
  private evictedCount = 0;
  /**
   * Every kept event in the order it was kept, oldest first from `orderStart`: its token and
   * sequence number. An entry whose event was dropped since (by its token's own limits, or with
   * its token) stays until it reaches the front or the list is pruned.
   */
  private order: (TokenState | undefined)[] = [];
  private orderSeqs: number[] = [];
  private orderStart = 0;
  private nextSeq = clockSeq();
  private streamCount = 0;
  private eventsAccepted = 0;
  private readonly onSubscriberClose = (subscriber: Subscriber): void =>
    this.unsubscribe(subscriber);

  /**
   * @param options See {@link BrokerOptions}.
   * @throws TypeError or RangeError for an invalid option.
   */
  constructor(options: MemoryBrokerOptions = {}) {
    const resolved = resolveBrokerOptions(options);
    this.maxMemory = resolveMaxMemory(options.maxMemory);
    this.mode = resolved.mode;
    this.historyCount = resolved.history;
    this.historyBytes = resolved.historyBytes;
    this.graceMs = resolved.graceMs;
    this.gapEvent = resolved.gapEvent;
  }

  subscribe(subscriber: Subscriber, lastEventId: string | undefined): 'ok' | 'conflict' {
    const token = subscriber.token;
    let state = this.tokens.get(token);
    let inherited: Chunk[] | undefined;
    if (state !== undefined && state.subscribers.length > 0) {
      if (this.mode === 'single') return 'conflict';
      if (this.mode === 'takeover') {
        // The newest subscriber wins: the old streams end, and what they had not sent yet goes here.
        for (const old of state.subscribers) {
          old.onClose = undefined;
          old.context.takenOver++;
          const unsent = old.detach();
          if (unsent.length > 0) inherited = unsent;
          this.streamCount--;
        }
        state.subscribers = [];
      }
    }
    if (state === undefined) {
      state = new TokenState(token);
      this.tokens.set(token, state);
    }
    if (state.graceTimer !== undefined) {
      clearTimeout(state.graceTimer);
      state.graceTimer = undefined;
    }
    subscriber.open();
    if (state.retryMs !== undefined) subscriber.write(retryChunk(state.retryMs));
    let replay: Chunk[] | undefined;
    if (lastEventId !== undefined && lastEventId !== '') {
      replay = state.after(lastEventId);
      if (replay === undefined) {
        debug('token %s: Last-Event-ID %s is not kept, sending what is', token, lastEventId);
        subscriber.write(gapChunk(lastEventId, state.oldestId, this.gapEvent));
        replay = state.since(0);
      }
    } else if (state.undeliveredFrom !== 0) {
      replay = state.since(state.undeliveredFrom);
    } else {
      replay = inherited;
    }
    if (replay !== undefined) for (const chunk of replay) subscriber.write(chunk, true);
    if (subscriber.isClosed) {
      // The client went away during the hand-over: what it missed is still kept.
      if (state.subscribers.length === 0 && state.graceTimer === undefined) this.startGrace(state);
      return 'ok';
    }
    state.undeliveredFrom = 0;
    state.subscribers.push(subscriber);
    subscriber.onClose = this.onSubscriberClose;
    this.streamCount++;
    return 'ok';
  }

  private unsubscribe(subscriber: Subscriber): void {
    const state = this.tokens.get(subscriber.token);
    if (state === undefined) return;
    const index = state.subscribers.indexOf(subscriber);
    if (index === -1) return;
    state.subscribers.splice(index, 1);
    this.streamCount--;
    if (state.subscribers.length === 0) this.startGrace(state);
  }

  private startGrace(state: TokenState): void {
    if (this.graceMs === 0) {
      this.dropToken(state);
      return;
    }
    state.graceTimer = setTimeout(() => {
      if (state.subscribers.length === 0 && this.tokens.get(state.token) === state) {
        const bytes = this.dropToken(state);
        if (bytes > 0) this.onHistoryReleased?.(bytes);
      }
    }, this.graceMs);
    state.graceTimer.unref();
  }

  /**
   * Forgets a token and its history.
   * @returns The bytes its history counted.
   */
  private dropToken(state: TokenState): number {
    this.tokens.delete(state.token);
    state.isDropped = true;
    const bytes = state.historyBytes + state.count * EVENT_OVERHEAD;
    this.keptBytes -= bytes;
    this.keptCount -= state.count;
    // Entries of `order` still point at the state until they are pruned: let go of its events now.
    state.history = [];
    state.historyStart = 0;
    state.historyBytes = 0;
    return bytes;
  }

  /**
   * Keeps an event in its token's history: drops the token's oldest past its own limits, then the
   * oldest of any token while everything kept (and waiting) is over `maxMemory`.
   */
  private keep(state: TokenState, chunk: Chunk): void {
    state.push(chunk);
    this.keptBytes += chunk.size + EVENT_OVERHEAD;
    this.keptCount++;
    this.order.push(state);
    this.orderSeqs.push(chunk.seq);
    while (
      state.count > this.historyCount ||
      (state.historyBytes > this.historyBytes && state.count > 0)
    ) {
      this.forget(state.dropOldest());
    }
    if (this.keptBytes > this.maxMemory - this.waitingBytes()) this.evict(chunk.seq);
    else if (this.order.length - this.orderStart > 2 * this.keptCount + 1024) this.pruneOrder();
  }

  private forget(chunk: Chunk): void {
    this.keptBytes -= chunk.size + EVENT_OVERHEAD;
    this.keptCount--;
  }

  /** Drops the oldest events of any token, but not the one just kept, until within `maxMemory`. */
  private evict(newestSeq: number): void {
    const order = this.order;
    const seqs = this.orderSeqs;
    const limit = this.maxMemory - this.waitingBytes();
    let start = this.orderStart;
    let dropped = 0;
    while (this.keptBytes > limit && start < order.length) {
      const state = order[start] as TokenState;
      const seq = seqs[start] as number;
      if (seq === newestSeq) break;
      order[start++] = undefined;
      // The token's own limits drop its oldest first, so an entry still kept is its oldest.
      if (!state.isDropped && state.oldestSeq === seq) {
        this.forget(state.dropOldest());
        dropped++;
      }
    }
    this.evictedCount += dropped;
    if (dropped > 0) debug('history over maxMemory: dropped its %d oldest events', dropped);
    this.orderStart = start;
    if (start > 1024 && start * 2 > order.length) {
      this.order = order.slice(start);
      this.orderSeqs = seqs.slice(start);
      this.orderStart = 0;
    }
  }

  /** Removes the entries of `order` whose events are no longer kept. */
  private pruneOrder(): void {
    const order: TokenState[] = [];
    const seqs: number[] = [];
    for (let i = this.orderStart; i < this.order.length; i++) {
      const state = this.order[i] as TokenState;
      const seq = this.orderSeqs[i] as number;
      if (!state.isDropped && seq >= state.oldestSeq) {
        order.push(state);
        seqs.push(seq);
      }
    }
    this.order = order;
    this.orderSeqs = seqs;
    this.orderStart = 0;
  }

  publish(event: Event): PublishOutcome {
    const state = this.tokens.get(event.target);
    const live = state?.subscribers.length ?? 0;
    // Nobody connected and nobody expected back (or nothing may be kept): refuse.
    if (state === undefined || (live === 0 && this.historyCount === 0)) {
      return { status: 404, id: null, subscribers: 0 };
    }
    event.seq = this.nextSeq++;
    const chunk = encodeEventChunk(event);
    state.lastEventId = chunk.id;
    this.eventsAccepted++;
    if (this.historyCount > 0) this.keep(state, chunk);
    if (live === 0) {
      if (state.undeliveredFrom === 0) state.undeliveredFrom = chunk.seq;
      return { status: 202, id: chunk.id ?? null, subscribers: 0 };
    }
    const subscribers = state.subscribers;
    if (live === 1) {
      const subscriber = subscribers[0] as Subscriber;
      subscriber.context.corkSingleWrites = true;
      subscriber.write(chunk);
      subscriber.context.corkSingleWrites = false;
    } else {
      // Encode once for a fan-out; a single subscriber's socket encodes the text as it writes it.
      chunk.share();
      for (let i = 0; i < subscribers.length; i++) (subscribers[i] as Subscriber).write(chunk);
    }
    return { status: 200, id: chunk.id ?? null, subscribers: live };
  }

  finish(token: string): PublishOutcome {
    const state = this.tokens.get(token);
    const live = state?.subscribers.length ?? 0;
    if (state === undefined || live === 0) return { status: 404, id: null, subscribers: 0 };
    // The streams leave the token now, not when their responses emit `close` a tick or more later:
    // an event published meanwhile is then kept for the next subscriber (202) instead of being
    // handed to a stream that is ending (and lost), and a quick reconnection is not refused (423).
    const ending = state.subscribers;
    state.subscribers = [];
    this.streamCount -= ending.length;
    for (const subscriber of ending) {
      subscriber.onClose = undefined;
      subscriber.end();
    }
    this.startGrace(state);
    return { status: 200, id: null, subscribers: live };
  }

  retry(token: string, ms: number): PublishOutcome {
    const state = this.tokens.get(token);
    if (state === undefined) return { status: 404, id: null, subscribers: 0 };
    state.retryMs = ms;
    const live = state.subscribers.length;
    if (live === 0) return { status: 202, id: null, subscribers: 0 };
    const chunk = retryChunk(ms);
    chunk.share();
    for (const subscriber of state.subscribers) subscriber.write(chunk);
    return { status: 200, id: null, subscribers: live };
  }

  presence(token: string): Presence {
    const state = this.tokens.get(token);
    const subscribers = state?.subscribers.length ?? 0;
    return {
      token,
      subscribers,
      connected: subscribers > 0,
      lastEventId: state?.lastEventId ?? null,
    };
  }

  stats(): BrokerStats {
    return {
      tokens: this.tokens.size,
      streams: this.streamCount,
      eventsAccepted: this.eventsAccepted,
      historyBytes: this.keptBytes,
      historyEvents: this.keptCount,
      historyEvicted: this.evictedCount,
    };
  }

  async close(): Promise<void> {
    for (const state of this.tokens.values()) {
      if (state.graceTimer !== undefined) clearTimeout(state.graceTimer);
      for (const subscriber of [...state.subscribers]) subscriber.end();
    }
  }
}
