import { flattenError } from '../../errors.js';

/** Seconds a client is asked to wait (`Retry-After`) while Redis reconnects or fails over. */
const RETRY_AFTER_SECONDS = 1;

/** Redis could not be reached or did not answer: the request is answered `503`. */
export class RedisUnavailableError extends Error {
  override readonly name = 'RedisUnavailableError';
  readonly code = 'ERR_EVENTSOURCE_REDIS_UNAVAILABLE';
  readonly status = 503;
  /** Sent as `Retry-After`: a reconnection or a failover usually takes a few seconds. */
  readonly retryAfterSeconds = RETRY_AFTER_SECONDS;
  /** @param cause The failure (an error, or a text saying what state Redis is in). */
  constructor(cause: unknown) {
    super(`Event store unavailable: ${describe(cause)}`, { cause });
  }
}

/**
 * An event was stored on the Redis primary, and may have been delivered, but fewer replicas than
 * `waitReplicas` confirmed it within `waitTimeoutMs` (Redis `WAIT`): the POST is answered `503`,
 * because the event would be lost if the primary failed now. It is not taken back: subscribers
 * may have received it, and it keeps its id, which no later event gets again. A publisher that
 * sends it again may so cause a double; the id in the message tells the two apart.
 */
export class RedisNotAcknowledgedError extends Error {
  override readonly name = 'RedisNotAcknowledgedError';
  readonly code = 'ERR_EVENTSOURCE_REDIS_NOT_ACKNOWLEDGED';
  readonly status = 503;
  readonly retryAfterSeconds = RETRY_AFTER_SECONDS;

  /**
   * @param id The event's id, or null for an event class without ids.
   * @param replicas The replicas that confirmed it (-1 when the connection failed first).
   * @param required `waitReplicas`.
   * @param timeoutMs `waitTimeoutMs`.
   * @param cause The failure of the `WAIT` command, when it failed.
   */
  constructor(
    readonly id: string | null,
    readonly replicas: number,
    readonly required: number,
    timeoutMs: number,
    cause?: unknown,
  ) {
    const what = id === null ? 'the event was stored' : `id ${id} was stored`;
    const why =
      cause === undefined
        ? `${replicas} of ${required} replica(s) confirmed it within ${timeoutMs} ms`
        : `the connection failed before ${required} replica(s) confirmed it (${describe(cause)})`;
    super(
      `Event not acknowledged: ${what}, but ${why}; it may have been delivered, and may be lost if the Redis primary fails`,
      cause === undefined ? undefined : { cause },
    );
  }
}

function describe(cause: unknown): string {
  const text = typeof cause === 'string' ? cause : flattenError(cause);
  return text === '' ? 'Redis is not connected' : text;
}
