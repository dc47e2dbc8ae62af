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
  type PublishOutcome,
  type StreamMode,
} from './broker.js';
import type { Chunk } from './chunk.js';
import { resolveBrokerOptions } from './options.js';
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
  /** The last `retry` value, sent to every new subscriber. */
  retryMs: number | undefined = undefined;
  graceTimer: NodeJS.Timeout | undefined = undefined;

  constructor(readonly token: string) {}

  keep(chunk: Chunk, maxCount: number, maxBytes: number): void {
    this.history.push(chunk);
    this.historyBytes += chunk.size;
    while (
      this.history.length - this.historyStart > maxCount ||
      (this.historyBytes > maxBytes && this.history.length - this.historyStart > 0)
    ) {
      const dropped = this.history[this.historyStart] as Chunk;
      // Let go of the dropped event now: the slot is only reclaimed at the next compaction, and
      // until then it would keep a large event's bytes alive beyond --history-bytes.
      this.history[this.historyStart++] = undefined as unknown as Chunk;
      this.historyBytes -= dropped.size;
    }
    // Compact now and then, so dropped entries do not pile up at the front.
    if (this.historyStart > 64 && this.historyStart * 2 > this.history.length) {
      this.history = this.history.slice(this.historyStart);
      this.historyStart = 0;
    }
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

/** The in-memory broker. */
export class MemoryBroker implements Broker {
  private readonly tokens = new Map<string, TokenState>();
  private readonly mode: StreamMode;
  private readonly historyCount: number;
  private readonly historyBytes: number;
  private readonly graceMs: number;
  private readonly gapEvent: string | undefined;
  private nextSeq = clockSeq();
  private streamCount = 0;
  private eventsAccepted = 0;
  private readonly onSubscriberClose = (subscriber: Subscriber): void =>
    this.unsubscribe(subscriber);

  /**
   * @param options See {@link BrokerOptions}.
   * @throws TypeError or RangeError for an invalid option.
   */
  constructor(options: BrokerOptions = {}) {
    const resolved = resolveBrokerOptions(options);
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
      this.tokens.delete(state.token);
      return;
    }
    state.graceTimer = setTimeout(() => {
      if (state.subscribers.length === 0 && this.tokens.get(state.token) === state) {
        this.tokens.delete(state.token);
      }
    }, this.graceMs);
    state.graceTimer.unref();
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
    this.eventsAccepted++;
    if (this.historyCount > 0) state.keep(chunk, this.historyCount, this.historyBytes);
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

  stats(): BrokerStats {
    return {
      tokens: this.tokens.size,
      streams: this.streamCount,
      eventsAccepted: this.eventsAccepted,
    };
  }

  async close(): Promise<void> {
    for (const state of this.tokens.values()) {
      if (state.graceTimer !== undefined) clearTimeout(state.graceTimer);
      for (const subscriber of [...state.subscribers]) subscriber.end();
    }
  }
}
