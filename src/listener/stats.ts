/**
 * The counters of `GET /stats`: the broker's, and those of this process's streams.
 */
import type { Broker } from './broker.js';
import type { SubscriberContext } from './subscriber.js';

/** Counters returned by `GET /stats`. */
export interface ListenerStats {
  streams: number;
  tokens: number;
  eventsAccepted: number;
  eventsDelivered: number;
  eventsDropped: number;
  subscribersCutOff: number;
  bytesBuffered: number;
  /**
   * Bytes of the in-memory broker's history, every token together (encoded events plus 256 each),
   * what `maxMemory` bounds; 0 with another broker.
   */
  historyBytes: number;
  /** Events dropped from the history to stay within `maxMemory` (0 with another broker). */
  historyEvicted: number;
  /** Bytes of events waiting in subscribers' queues, which count towards `maxMemory` too. */
  bytesQueued: number;
  /** Bytes of POST bodies still arriving, which count towards `maxMemory` too. */
  bytesReceiving: number;
  /** POSTs refused with `503` because of `maxMemory`. */
  postsRefusedForMemory: number;
  /** The process's resident memory. */
  rssBytes: number;
  uptimeSeconds: number;
  [key: string]: number | string | boolean;
}

/**
 * Collects the counters: the broker's own (a shared broker adds its connection state), then the
 * streams of this process.
 */
export function collectStats(
  context: SubscriberContext,
  broker: Broker,
  startedAt: number,
  receivingBytes: number,
): ListenerStats {
  let bytesBuffered = 0;
  for (const subscriber of context.streams) bytesBuffered += subscriber.bufferedBytes;
  const brokerStats = broker.stats();
  return {
    ...brokerStats,
    streams: context.streams.size,
    tokens: brokerStats.tokens,
    eventsAccepted: brokerStats.eventsAccepted,
    eventsDelivered: context.delivered,
    eventsDropped: context.dropped,
    subscribersCutOff: context.cutOff,
    bytesBuffered,
    historyBytes: Number(brokerStats.historyBytes ?? 0),
    historyEvicted: Number(brokerStats.historyEvicted ?? 0),
    bytesQueued: context.queuedBytes,
    bytesReceiving: receivingBytes,
    postsRefusedForMemory: context.refusedForMemory,
    rssBytes: process.memoryUsage.rss(),
    uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
  };
}
