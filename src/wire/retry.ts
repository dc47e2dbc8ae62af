/**
 * The bounds of a reconnection time, shared by the client (which clamps every delay it waits to
 * them) and the listener (which refuses a `retry` POST past the ceiling), so that both apply the
 * same rule.
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#reestablish-the-connection
 */

/**
 * [non-spec] The shortest wait before a reconnection, in milliseconds: `retry: 0` from a server
 * that ends every stream cleanly would otherwise be a tight reconnection loop.
 */
export const MIN_RETRY_MS = 100;

/**
 * [non-spec] The longest wait before a reconnection, in milliseconds (24 hours). Node's timers
 * take at most 2 ** 31 - 1 ms (about 24.8 days) and turn anything longer into 1 ms, with a
 * `TimeoutOverflowWarning`; a day is far past any sensible reconnection time and well inside.
 */
export const MAX_RETRY_MS = 24 * 60 * 60 * 1000;

/**
 * A reconnection time brought within {@link MIN_RETRY_MS} and {@link MAX_RETRY_MS}.
 * @param ms A delay in milliseconds: any number, `Infinity` included (a `retry:` of many digits).
 * @returns The delay to wait, in milliseconds.
 */
export function clampRetryMs(ms: number): number {
  if (!(ms > MIN_RETRY_MS)) return MIN_RETRY_MS;
  return ms < MAX_RETRY_MS ? Math.round(ms) : MAX_RETRY_MS;
}
