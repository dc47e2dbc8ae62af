export * from './redis/broker.js';
export { RedisUnavailableError } from './redis/errors.js';
