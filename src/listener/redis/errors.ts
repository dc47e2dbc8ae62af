import { flattenError } from '../../errors.js';

/** Redis could not be reached or did not answer: the request is answered `503`. */
export class RedisUnavailableError extends Error {
  override readonly name = 'RedisUnavailableError';
  readonly code = 'ERR_EVENTSOURCE_REDIS_UNAVAILABLE';
  readonly status = 503;
  /** @param cause The failure (an error, or a text saying what state Redis is in). */
  constructor(cause: unknown) {
    super(`Event store unavailable: ${describe(cause)}`, { cause });
  }
}

function describe(cause: unknown): string {
  const text = typeof cause === 'string' ? cause : flattenError(cause);
  return text === '' ? 'Redis is not connected' : text;
}
