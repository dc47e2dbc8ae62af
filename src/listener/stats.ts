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
    uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
  };
}
