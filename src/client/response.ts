/**
 * What the client makes of a response: the body of an event stream, decoded if it came compressed,
 * or the outcome of a response that is not one (a status, a wrong Content-Type); and the small
 * helpers for response bodies it shares with the client.
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#sse-processing-model
 */
import { PassThrough, type Readable, type Transform } from 'node:stream';
import zlib from 'node:zlib';
import type { Dispatcher } from 'undici';
import { debugClient as debug } from '../debug.js';
import { ContentEncodingError, ContentTypeError, HttpStatusError } from '../errors.js';

type ResponseBody = Dispatcher.ResponseData['body'];

// Decoders that give out what they have after every chunk, and accept a stream cut short: an
// event stream is never "complete", and an event must not wait in a decoder for the next one.
const ZLIB_FLUSH = {
  flush: zlib.constants.Z_SYNC_FLUSH,
  finishFlush: zlib.constants.Z_SYNC_FLUSH,
} as const;
const BROTLI_FLUSH = {
  flush: zlib.constants.BROTLI_OPERATION_FLUSH,
  finishFlush: zlib.constants.BROTLI_OPERATION_FLUSH,
} as const;
const DECODERS: Record<string, () => Transform> = {
  gzip: () => zlib.createGunzip(ZLIB_FLUSH),
  'x-gzip': () => zlib.createGunzip(ZLIB_FLUSH),
  // RFC 9110's deflate: the zlib format (createUnzip() takes gzip in its place too, as browsers do).
  deflate: () => zlib.createUnzip(ZLIB_FLUSH),
  br: () => zlib.createBrotliDecompress(BROTLI_FLUSH),
};

/** How one connection attempt ended. */
export type Outcome =
  | { kind: 'closed' }
  | { kind: 'ended' }
  | { kind: 'no-content'; error: HttpStatusError }
  | { kind: 'failed'; error: Error; isPassing: boolean; retryAfterMs?: number | undefined };

const MAX_ERROR_BODY = 4096;
const PASSING_STATUSES = new Set([500, 502, 503, 504]);

/**
 * Whether a response carries an event stream, which the client then reads.
 * @param response The response to a connection attempt.
 * @returns `true` for status 200 with `Content-Type: text/event-stream`.
 */
export function isEventStream(response: Dispatcher.ResponseData): boolean {
  // [spec] If res's status is not 200, or if res's `Content-Type` is not `text/event-stream`,
  // then fail the connection.
  return response.statusCode === 200 && isEventStreamType(contentTypeOf(response));
}

/**
 * The outcome of a response that is not an event stream; its body is read (a status's, for the
 * message) or discarded.
 * @param response A response for which {@link isEventStream} is `false`.
 * @param url The URL the client connected to, for the error message.
 * @returns `no-content` for a 204 (which stops the client), `failed` otherwise.
 */
export async function readFailure(
  response: Dispatcher.ResponseData,
  url: string,
): Promise<Outcome> {
  const { statusCode, body } = response;
  if (statusCode === 204) {
    discardBody(body);
    return { kind: 'no-content', error: new HttpStatusError(204, '', url) };
  }
  if (statusCode !== 200) {
    const text = await readText(body);
    return {
      kind: 'failed',
      error: new HttpStatusError(statusCode, text, url),
      isPassing: PASSING_STATUSES.has(statusCode),
      retryAfterMs: parseRetryAfter(response.headers['retry-after']),
    };
  }
  discardBody(body);
  return {
    kind: 'failed',
    error: new ContentTypeError(contentTypeOf(response), url),
    isPassing: false,
  };
}

/**
 * The body of an event stream as text bytes: the response body itself, or, for a `Content-Encoding`
 * of `gzip`, `deflate` or `br` (or several, applied in order), a stream that decodes it chunk by
 * chunk. Destroying the stream returned destroys the response body too; a body that does not
 * decode makes it fail with a {@link ContentEncodingError}.
 * @param response A response for which {@link isEventStream} is `true`.
 * @param url The URL the client connected to, for error messages.
 * @returns The stream to read, or the error for an encoding the client does not decode (the
 *   response body is then left to the caller).
 */
export function decodeBody(
  response: Dispatcher.ResponseData,
  url: string,
): Readable | ContentEncodingError {
  const header = response.headers['content-encoding'];
  if (header === undefined) return response.body;
  const encoding = Array.isArray(header) ? header.join(', ') : header;
  // [non-spec] The spec reads the body through fetch, which decodes it; undici's request() does
  // not, so the client does here, as browsers would. A coding it cannot undo is an error: the
  // stream would otherwise parse as nothing at all, with no word.
  const decoders: Transform[] = [];
  for (const coding of encoding.toLowerCase().split(',').reverse()) {
    const name = coding.trim();
    if (name === '' || name === 'identity') continue;
    const create = DECODERS[name];
    if (create === undefined) return new ContentEncodingError(encoding, url);
    decoders.push(create());
  }
  const body = response.body;
  if (decoders.length === 0) return body;
  // The client reads a stream of its own, never a decoder: a decoder's error arrives there as a
  // ContentEncodingError, and destroying it (close(), a read timeout) takes the rest down too.
  const out = new PassThrough();
  let source: Readable = body;
  for (const decoder of decoders) {
    source.pipe(decoder);
    decoder.on('error', (error: Error) => {
      out.destroy(new ContentEncodingError(encoding, url, { cause: error }));
    });
    source = decoder;
  }
  source.pipe(out);
  body.on('error', (error: Error) => out.destroy(error));
  // pipe() ends the decoders when the body ends; a body closed before its end must end them too.
  body.on('close', () => {
    if (!body.readableEnded) out.destroy();
  });
  out.on('close', () => {
    for (const decoder of decoders) decoder.destroy();
    discardBody(body);
  });
  return out;
}

function contentTypeOf(response: Dispatcher.ResponseData): string {
  return String(response.headers['content-type'] ?? '');
}

function isEventStreamType(contentType: string): boolean {
  return contentType.split(';', 1)[0]?.trim().toLowerCase() === 'text/event-stream';
}

/**
 * Drops a response body. Destroying an unfinished undici body emits an abort error; nobody wants
 * it (we are the ones giving up), but without a listener it would crash the process.
 * @param body The body to drop.
 */
export function discardBody(body: Readable): void {
  body.on('error', (error: Error) => debug('discarded body: %s', error.message));
  body.destroy();
}

// Reads at most MAX_ERROR_BODY bytes of an error response, for the message.
async function readText(body: ResponseBody): Promise<string> {
  const chunks: Buffer[] = [];
  let length = 0;
  try {
    for await (const chunk of body) {
      chunks.push(chunk as Buffer);
      length += (chunk as Buffer).length;
      if (length >= MAX_ERROR_BODY) break;
    }
  } catch (error) {
    // The status is what matters; a body cut short still says what it can.
    debug('reading an error body failed: %O', error);
  }
  discardBody(body);
  return Buffer.concat(chunks).subarray(0, MAX_ERROR_BODY).toString('utf8').trim();
}

// `Retry-After`: delay-seconds or an HTTP-date.
function parseRetryAfter(value: string | string[] | undefined): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined) return undefined;
  if (/^\s*\d+\s*$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}
