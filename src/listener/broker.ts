/**
 * The broker: the one place that knows tokens, their subscribers, their history and the ids.
 * The listener owns HTTP; the broker owns delivery. The in-memory broker is the embedded default;
 * a Redis-backed one implements the same interface for several listener processes.
 */
import type { Event } from '../events.js';
import {
  assertFieldValue,
  encodeComment,
  encodeEvent,
  encodeRetry,
  encodeTrustedEvent,
} from '../wire/encoder.js';
import { Chunk } from './chunk.js';
import type { Subscriber } from './subscriber.js';

/** How a token's subscribers share it. */
export type StreamMode = 'single' | 'multi' | 'takeover';

/** What became of a published event. */
export interface PublishOutcome {
  /** `200` delivered to live subscriber(s); `202` kept for a reconnecting one; `404` nobody. */
  status: 200 | 202 | 404;
  /** The event's `id:` value, or null for classes without ids (and for `close` / `retry`). */
  id: string | null;
  /** Live subscribers the event went to (every process, for a shared broker). */
  subscribers: number;
}

/** Counters reported by `/stats`. */
export interface BrokerStats {
  tokens: number;
  streams: number;
  eventsAccepted: number;
  [key: string]: number | string | boolean;
}

/** Whether a token is connected now (`GET /stats/<token>`). */
export interface Presence {
  token: string;
  /** Live streams of the token (in every process, for a shared broker). */
  subscribers: number;
  connected: boolean;
  /** The id of the token's last event, or null (no event yet, or a class without ids). */
  lastEventId: string | null;
}

/** The options every broker takes. */
export interface BrokerOptions {
  /** `single` (423 for a second subscriber), `multi` or `takeover`. Defaults to `single`. */
  mode?: StreamMode | undefined;
  /** Events kept per token for replay. Defaults to `1000`. */
  history?: number | undefined;
  /** Bytes kept per token for replay. Defaults to 8 MiB. */
  historyBytes?: number | undefined;
  /** How long a token's history is kept after its last subscriber left, in ms. Defaults to `60000`. */
  graceMs?: number | undefined;
  /** Event type of the in-band gap signal, or undefined for a comment only. */
  gapEvent?: string | undefined;
}

/** The interface between the listener and a token registry. */
export interface Broker {
  /**
   * Registers a subscriber and sends it what it missed: the events after `lastEventId`, or, without
   * one, the events kept while nobody was connected.
   * @returns `conflict` when the token already has a live subscriber in `single` mode.
   */
  subscribe(
    subscriber: Subscriber,
    lastEventId: string | undefined,
  ): 'ok' | 'conflict' | Promise<'ok' | 'conflict'>;
  /** Publishes an event: assigns its sequence number, keeps it in history, delivers it. */
  publish(event: Event): PublishOutcome | Promise<PublishOutcome>;
  /** Ends the token's streams cleanly (the FINISH action). */
  finish(token: string): PublishOutcome | Promise<PublishOutcome>;
  /** Sends `retry:` to the token's streams and to whoever subscribes next (the RETRY action). */
  retry(token: string, ms: number): PublishOutcome | Promise<PublishOutcome>;
  /** Counters for `/stats`. */
  stats(): BrokerStats;
  /** Whether `token` is connected, and its last event id. */
  presence(token: string): Presence | Promise<Presence>;
  /**
   * For a broker shared by several processes: tells `onLost` each token whose streams were lost
   * with a process that died, so that their departure can be announced. Optional.
   */
  watchDepartures?(onLost: (token: string) => void): void;
  /** Ends every stream and stops timers. */
  close(): Promise<void>;
}

/**
 * The first sequence number of this process: microseconds since the epoch, so that ids keep
 * increasing across restarts of the listener as long as it sent fewer than a million events a
 * second on average, and an old Last-Event-ID can never match a new event by accident.
 */
export function clockSeq(): number {
  return Date.now() * 1000;
}

/**
 * Encodes a published event into a Chunk, after its sequence number was assigned.
 * @throws WireFormatError when a custom class's id contains CR, LF or NUL.
 */
export function encodeEventChunk(event: Event): Chunk {
  const id = event.id;
  if (id !== undefined) assertFieldValue('id', id);
  const lines = event.value;
  const data = lines.length === 1 ? (lines[0] as string) : lines.join('\n');
  // The action (the event type) was checked once when the listener started.
  return new Chunk(encodeTrustedEvent(id, event.action, data), event.seq, id);
}

/** The in-band signal that a Last-Event-ID is unknown or older than what is kept. */
export function gapChunk(
  lastEventId: string,
  oldestId: string | undefined,
  gapEvent: string | undefined,
): Chunk {
  let block = encodeComment(
    `events after id ${JSON.stringify(lastEventId)} are no longer kept; oldest kept id: ${oldestId ?? 'none'}`,
  );
  if (gapEvent !== undefined) {
    block += encodeEvent({
      event: gapEvent,
      data: JSON.stringify({ lastEventId, oldestId: oldestId ?? null }),
    });
  }
  return new Chunk(block);
}

/** A `retry:` block. */
export function retryChunk(ms: number): Chunk {
  return new Chunk(encodeRetry(ms));
}
