/**
 * How long an {@link EventSourceClient} waits before it reconnects after a failed attempt.
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#reestablish-the-connection
 */

// [non-spec] Backoff never starts below this, so `retry: 0` with a failing server is no tight loop.
const MIN_BACKOFF_MS = 100;

/**
 * The delay before the next connection attempt after `failureCount` failures in a row.
 * @param retryMs The reconnection time (the option, or the server's `retry:`).
 * @param maxRetryMs The cap of the backoff.
 * @param failureCount Failed attempts since the last stream that ended cleanly, at least `1`.
 * @param retryAfterMs What the last response's `Retry-After` asked for, if anything.
 * @returns The delay in milliseconds.
 */
export function backoffDelayMs(
  retryMs: number,
  maxRetryMs: number,
  failureCount: number,
  retryAfterMs: number | undefined,
): number {
  // [spec] Optionally, wait some more. In particular, if the previous attempt failed, then
  // user agents might introduce an exponential backoff delay.
  // [non-spec] Capped exponential backoff with jitter, and at least what Retry-After asks.
  const base = Math.max(retryMs, MIN_BACKOFF_MS);
  const capped = Math.min(maxRetryMs, base * 2 ** Math.min(failureCount - 1, 30));
  const delayMs = Math.round(capped / 2 + (Math.random() * capped) / 2);
  return retryAfterMs !== undefined ? Math.max(delayMs, retryAfterMs) : delayMs;
}
