export * from './listener.js';
export * from './broker.js';
export { MemoryBroker } from './memory-broker.js';
export { Subscriber, type SubscriberContext } from './subscriber.js';
export { Chunk } from './chunk.js';
export { parseTarget, normalizePrefix, type Route, type ParsedTarget } from './routes.js';
export {
  RedisBroker,
  RedisUnavailableError,
  createRedisBroker,
  type RedisBrokerOptions,
} from './redis-broker.js';
