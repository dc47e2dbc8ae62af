/**
 * How long an {@link EventSourceClient} waits before it reconnects: after a stream that ended
 * cleanly, or after a failed attempt.
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#reestablish-the-connection
 */
import { clampRetryMs } from '../wire/retry.js';

/**
 * The delay before the next connection attempt, within `MIN_RETRY_MS` (100 ms) and `MAX_RETRY_MS`
 * (24 h) whatever the server's `retry:` or `Retry-After` asked: every wait goes through here.
 * @param retryMs The reconnection time (the option, or the server's `retry:`).
 * @param maxRetryMs The cap of the backoff.
 * @param failureCount Failed attempts since the last stream that ended cleanly; `0` after a clean end.
 * @param retryAfterMs What the last response's `Retry-After` asked for, if anything.
 * @returns The delay in milliseconds.
 */
export function reconnectDelayMs(
  retryMs: number,
  maxRetryMs: number,
  failureCount: number,
  retryAfterMs: number | undefined,
): number {
  // [spec] When a user agent is to reestablish the connection: wait a delay equal to the
  // reconnection time of the event source.
  // [non-spec] Clamped, so that `retry: 0` is no tight loop and a huge `retry:` no timer overflow.
  if (failureCount === 0) return clampRetryMs(retryMs);
  // [spec] Optionally, wait some more. In particular, if the previous attempt failed, then
  // user agents might introduce an exponential backoff delay.
  // [non-spec] Capped exponential backoff with jitter, and at least what Retry-After asks.
  const base = clampRetryMs(retryMs);
  const capped = Math.min(maxRetryMs, base * 2 ** Math.min(failureCount - 1, 30));
  const delayMs = Math.round(capped / 2 + (Math.random() * capped) / 2);
  return clampRetryMs(retryAfterMs !== undefined ? Math.max(delayMs, retryAfterMs) : delayMs);
}
