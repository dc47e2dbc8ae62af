export {
  createListener,
  checkEventClass,
  type Listener,
  type ListenerOptions,
  type ListenerStats,
  type ListenerHandler,
  type ListenerServer,
} from './listener.js';
export type { Broker, BrokerOptions, BrokerStats, PublishOutcome, StreamMode } from './broker.js';
export { MemoryBroker } from './memory-broker.js';
export type { Subscriber } from './subscriber.js';
export {
  createJwtAuthorizer,
  signAccessToken,
  type AccessDecision,
  type AccessGrant,
  type AccessKind,
  type AccessRefusal,
  type AccessRequest,
  type Authorize,
  type JwtOptions,
} from './auth.js';
export { parseTarget, normalizePrefix, type Route, type ParsedTarget } from './routes.js';
export { RedisBroker, createRedisBroker, type RedisBrokerOptions } from './redis/broker.js';
export { RedisNotAcknowledgedError, RedisUnavailableError } from './redis/errors.js';
