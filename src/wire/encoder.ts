/**
 * The SSE encoder: events, comments and `retry:` lines as the exact text of a `text/event-stream`.
 *
 * Every block it returns ends with a blank line, so blocks can be concatenated in any order.
 * Data is split on CRLF, CR and LF and each line gets its own `data:` field, so no value can inject
 * a field or end an event early.
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#parsing-an-event-stream
 */
import { WireFormatError } from '../errors.js';
import { MAX_RETRY_MS } from './retry.js';

/** One event as it goes on the wire. */
export interface WireEvent {
  /** The `id:` field; omitted when undefined. Must not contain CR, LF or NUL. */
  id?: string | undefined;
  /** The `event:` field (the event type); omitted when undefined. Must not contain CR, LF or NUL. */
  event?: string | undefined;
  /** The data; each line (split on CRLF, CR, LF) becomes one `data:` field. */
  data: string;
  /** A `retry:` field in milliseconds; omitted when undefined. */
  retry?: number | undefined;
}

const LINE_BREAK = /\r\n|\r|\n/g;
const UNSAFE = /[\r\n\0]/;

/**
 * Throws when a value cannot be written as a single-line field.
 * @param name The field name, for the message.
 * @param value The value to check.
 * @throws WireFormatError when `value` contains CR, LF or NUL.
 * @throws TypeError when `value` is not a string.
 */
export function assertFieldValue(name: string, value: string): void {
  if (typeof value !== 'string') {
    throw new TypeError(`\`${name}\` must be a string, got ${typeof value}`);
  }
  if (UNSAFE.test(value)) {
    throw new WireFormatError(
      `\`${name}\` must not contain CR, LF or NUL, got ${JSON.stringify(value)}`,
    );
  }
}

/**
 * The `data:` lines of a value, one per line of the value.
 * A value without line breaks takes the fast path (no regular expression).
 */
function encodeData(data: string): string {
  if (data.indexOf('\n') === -1 && data.indexOf('\r') === -1) return `data: ${data}\n`;
  return `data: ${data.replace(LINE_BREAK, '\ndata: ')}\n`;
}

/**
 * Encodes one event as a complete SSE block (ending with a blank line).
 * @param event The fields to write.
 * @returns The text of the block.
 * @throws WireFormatError when `id` or `event` contains CR, LF or NUL.
 * @throws TypeError when `data`, `id` or `event` is not a string.
 * @throws RangeError when `retry` is not a non-negative integer.
 */
export function encodeEvent(event: WireEvent): string {
  // Checked here, not left to encodeData(): a number or an object would otherwise fail with
  // "data.indexOf is not a function", or be written as "[object Object]".
  if (typeof event.data !== 'string') {
    throw new TypeError(`\`data\` must be a string, got ${typeof event.data}`);
  }
  let out = '';
  if (event.id !== undefined) {
    assertFieldValue('id', event.id);
    out += `id: ${event.id}\n`;
  }
  if (event.event !== undefined) {
    assertFieldValue('event', event.event);
    out += `event: ${event.event}\n`;
  }
  if (event.retry !== undefined) out += encodeRetryField(event.retry);
  return `${out}${encodeData(event.data)}\n`;
}

/**
 * Encodes an event whose `id` and `event` are already known to be safe (checked once by the caller),
 * the listener's per-event path.
 * @param id The id, or undefined for none.
 * @param event The event type, or undefined for none.
 * @param data The data.
 * @returns The text of the block.
 */
export function encodeTrustedEvent(
  id: string | undefined,
  event: string | undefined,
  data: string,
): string {
  let out = id === undefined ? '' : `id: ${id}\n`;
  if (event !== undefined) out += `event: ${event}\n`;
  return `${out}${encodeData(data)}\n`;
}

/**
 * Encodes a comment: one `:` line per line of text, then a blank line. Clients ignore comments;
 * they keep proxies from closing an idle stream.
 * @param text The comment; empty gives `:` alone.
 * @returns The text of the block.
 */
export function encodeComment(text = ''): string {
  if (text === '') return ':\n\n';
  return `: ${text.replace(LINE_BREAK, '\n: ')}\n\n`;
}

function encodeRetryField(ms: number): string {
  // Past the ceiling every client of this package waits the ceiling anyway, and Node's timers turn
  // delays past 2^31 - 1 ms into 1 ms: the same bound as the listener's `retry` POST.
  if (!Number.isSafeInteger(ms) || ms < 0 || ms > MAX_RETRY_MS) {
    throw new RangeError(
      `\`retry\` must be a non-negative integer of at most ${MAX_RETRY_MS} (milliseconds, 24 h), got ${ms}`,
    );
  }
  return `retry: ${ms}\n`;
}

/**
 * Encodes a `retry:` block, which changes the client's reconnection delay without dispatching an event.
 * @param ms The delay in milliseconds.
 * @returns The text of the block.
 */
export function encodeRetry(ms: number): string {
  return `${encodeRetryField(ms)}\n`;
}
