/**
 * The options of an {@link EventSourceClient}: what each means and defaults to, and their checking,
 * done once when the client is created. The request headers and the dispatcher are built here too,
 * since they follow from the options alone.
 */
import { Agent, interceptors, type Dispatcher } from 'undici';
import type { ClientEvent } from './events.js';

/** Options for {@link EventSourceClient}. */
export interface EventSourceClientOptions {
  /** Extra request headers. They may override `Accept` and `Cache-Control`. */
  headers?: Record<string, string> | Iterable<readonly [string, string]> | undefined;
  /** User name for HTTP basic authentication. Defaults to none (or the URL's user info). */
  username?: string | undefined;
  /** Password for HTTP basic authentication (with `username`). Defaults to `''`. */
  password?: string | undefined;
  /**
   * Sent as `Authorization: Bearer <bearer>` on every stream request (a listener's JWT or publish
   * secret). Not together with `username` (a `TypeError`). Defaults to none.
   */
  bearer?: string | undefined;
  /** A last event ID to start from: sent as `Last-Event-ID` on the first connection already. */
  lastEventId?: string | undefined;
  /**
   * The reconnection time in milliseconds until the server sends `retry:`. Every wait is held
   * within 100 ms and 24 h (see wire/retry.ts). Defaults to `3000`.
   */
  retryMs?: number | undefined;
  /**
   * Whether to reconnect when the stream ends or drops, as browsers do. Defaults to `true`. With
   * `false` the client closes when the first stream ends and stops at the first error.
   */
  reconnect?: boolean | undefined;
  /**
   * Keep reconnecting (with backoff) after errors too: a 4xx status, a wrong Content-Type, a server
   * that cannot be reached at all. Implies `reconnect`. Defaults to `false`.
   */
  keepReconnecting?: boolean | undefined;
  /** The cap of the exponential backoff after failures, in milliseconds. Defaults to `30000`. */
  maxRetryMs?: number | undefined;
  /** How long connecting may take, until the response headers arrive. `0` is off. Defaults to `30000`. */
  connectTimeoutMs?: number | undefined;
  /**
   * How long an open stream may stay silent (not a byte, not even a keepalive comment) before it
   * counts as dropped and the client reconnects. `0` is off. Defaults to `0` (off).
   */
  readTimeoutMs?: number | undefined;
  /**
   * The most UTF-16 code units one event may take, counted as the parser's `maxEventLength` does
   * (every line from its first `data` line on, field names and line ends included); a bigger one is
   * discarded with an `error` event (`EventTooLargeError`) so that a server that never ends an
   * event cannot grow the client's memory. Defaults to `16777216` (16 Mi).
   */
  maxEventLength?: number | undefined;
  /** How many redirects to follow. Defaults to `20` (as fetch). */
  maxRedirections?: number | undefined;
  /** Validate the server's TLS certificate. Defaults to `true`; `false` turns validation off. */
  rejectUnauthorized?: boolean | undefined;
  /** Certificate authorities to trust instead of Node's bundled ones (PEM). Defaults to none. */
  ca?: string | Buffer | (string | Buffer)[] | undefined;
  /**
   * Offer HTTP/2 as well as HTTP/1.1 (undici's `allowH2`): over https the server picks one by ALPN,
   * so a listener that speaks HTTP/2 carries the stream on a multiplexed session. Over plain http
   * the client stays on HTTP/1.1 (no cleartext h2c). Not together with `dispatcher`, whose
   * protocols are its own (a `TypeError`). Defaults to `false`.
   */
  http2?: boolean | undefined;
  /**
   * An undici dispatcher to send the requests through (a `ProxyAgent`, for instance). TLS and
   * connect options are then the dispatcher's own, and so is HTTP/2 (`allowH2`); `http2: true`
   * with a dispatcher is a `TypeError`. Defaults to an `Agent` the client owns.
   */
  dispatcher?: Dispatcher | undefined;
  /** Closes the client when aborted. */
  signal?: AbortSignal | undefined;
  /**
   * Called synchronously for every event, whatever its type: the fastest way to consume events.
   * Defaults to none.
   */
  onEvent?: ((event: ClientEvent) => void) | undefined;
}

/** The options of an {@link EventSourceClient}, checked and with their defaults filled in. */
export interface ResolvedClientOptions {
  /** The URL without user info (which went into `headers`). */
  url: string;
  origin: string;
  /** Every request header but `Last-Event-ID`, with lowercase names. */
  headers: Record<string, string>;
  retryMs: number;
  reconnect: boolean;
  keepReconnecting: boolean;
  maxRetryMs: number;
  connectTimeoutMs: number;
  readTimeoutMs: number;
  maxEventLength: number;
  /** What requests go through: the caller's dispatcher or `ownAgent`, with redirects composed in. */
  dispatcher: Dispatcher;
  /** The agent the client created, and destroys when it stops; none with a caller's dispatcher. */
  ownAgent: Agent | undefined;
}

/**
 * Parses the URL a stream is read from, and takes the user info out of it: credentials in the URL
 * become the Basic credentials unless the options give their own.
 * @throws TypeError for a URL that is not an absolute http(s) URL.
 */
export function parseUrl(
  url: string | URL,
  givenUsername: string | undefined,
  givenPassword: string | undefined,
): { parsed: URL; username: string | undefined; password: string | undefined } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(
      `\`url\` must be an absolute http(s) URL, got ${JSON.stringify(String(url))}`,
    );
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new TypeError(`\`url\` must be an http(s) URL, got ${JSON.stringify(parsed.href)}`);
  }
  let username = givenUsername;
  let password = givenPassword;
  if (parsed.username || parsed.password) {
    username ??= decodeURIComponent(parsed.username);
    password ??= decodeURIComponent(parsed.password);
    parsed.username = '';
    parsed.password = '';
  }
  return { parsed, username, password };
}

/**
 * Checks an {@link EventSourceClient}'s URL and options, fills in the defaults, and creates the
 * agent the client will own unless a dispatcher is given.
 * @param url The stream's URL (http or https). User info in it becomes basic authentication.
 * @param options See {@link EventSourceClientOptions}.
 * @returns The resolved options.
 * @throws TypeError for a URL that is not http(s), or `http2` that is not a boolean or comes with
 *   a `dispatcher`; RangeError for a number out of range.
 */
export function resolveOptions(
  url: string | URL,
  options: EventSourceClientOptions,
): ResolvedClientOptions {
  const { parsed, username, password } = parseUrl(url, options.username, options.password);

  const retryMs = checkMs(options.retryMs, 'retryMs', 3000);
  const maxRetryMs = checkMs(options.maxRetryMs, 'maxRetryMs', 30000);
  const connectTimeoutMs = checkMs(options.connectTimeoutMs, 'connectTimeoutMs', 30000);
  const readTimeoutMs = checkMs(options.readTimeoutMs, 'readTimeoutMs', 0);
  const keepReconnecting = options.keepReconnecting ?? false;
  const maxEventLength = options.maxEventLength ?? 16 * 1024 * 1024;
  if (!(maxEventLength > 0)) {
    throw new RangeError(`\`maxEventLength\` must be a positive number, got ${maxEventLength}`);
  }
  const maxRedirections = checkMs(options.maxRedirections, 'maxRedirections', 20);
  const headers = createHeaders(options.headers, username, password, options.bearer);
  const { dispatcher, ownAgent } = createDispatcher(options, connectTimeoutMs, maxRedirections);
  return {
    url: parsed.href,
    origin: parsed.origin,
    headers,
    retryMs,
    reconnect: keepReconnecting || (options.reconnect ?? true),
    keepReconnecting,
    maxRetryMs,
    connectTimeoutMs,
    readTimeoutMs,
    maxEventLength,
    dispatcher,
    ownAgent,
  };
}

function checkMs(value: number | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`\`${name}\` must be a non-negative integer, got ${value}`);
  }
  return value;
}

/**
 * The request headers: the two every event stream request carries, the caller's (which may
 * override them), and basic or bearer authentication. Names are lowercase.
 * @throws TypeError for a `bearer` with CR, LF or NUL, or together with `username`.
 */
export function createHeaders(
  extra: EventSourceClientOptions['headers'],
  username: string | undefined,
  password: string | undefined,
  bearer: string | undefined,
): Record<string, string> {
  // [spec] Set request's header list to `Accept: text/event-stream`. [spec] Set request's cache
  // mode to "no-store" (which, sent to a server, is the `Cache-Control: no-cache` browsers send).
  const headers: Record<string, string> = {
    accept: 'text/event-stream',
    'cache-control': 'no-cache',
  };
  if (extra !== undefined) {
    const entries = Symbol.iterator in extra ? extra : Object.entries(extra);
    for (const [name, value] of entries) headers[name.toLowerCase()] = value;
  }
  if (username !== undefined) {
    const token = Buffer.from(`${username}:${password ?? ''}`, 'utf8').toString('base64');
    headers.authorization = `Basic ${token}`;
  }
  if (bearer !== undefined) {
    if (typeof bearer !== 'string' || bearer === '' || /[\r\n\0]/.test(bearer)) {
      throw new TypeError(
        `\`bearer\` must be a non-empty string without CR, LF or NUL, got ${JSON.stringify(bearer)}`,
      );
    }
    if (username !== undefined) {
      throw new TypeError('`bearer` and `username` cannot be combined: both set `Authorization`');
    }
    headers.authorization = `Bearer ${bearer}`;
  }
  return headers;
}

// The caller's dispatcher, or an agent of our own for the TLS and HTTP/2 options; either way
// with redirects followed.
function createDispatcher(
  options: EventSourceClientOptions,
  connectTimeoutMs: number,
  maxRedirections: number,
): { dispatcher: Dispatcher; ownAgent: Agent | undefined } {
  const isHttp2 = options.http2 ?? false;
  if (typeof isHttp2 !== 'boolean') {
    throw new TypeError(`\`http2\` must be a boolean, got ${JSON.stringify(isHttp2)}`);
  }
  let dispatcher: Dispatcher;
  let ownAgent: Agent | undefined;
  if (options.dispatcher !== undefined) {
    // The dispatcher was built with its own protocols; quietly ignoring the wish would leave
    // the caller on HTTP/1.1 without knowing.
    if (isHttp2) {
      throw new TypeError(
        '`http2` and `dispatcher` cannot be combined: create the dispatcher with `allowH2: true` instead',
      );
    }
    dispatcher = options.dispatcher;
  } else {
    ownAgent = new Agent({
      // HTTP/2 is offered by ALPN on TLS connections only; plain http stays HTTP/1.1.
      ...(isHttp2 ? { allowH2: true } : {}),
      connect: {
        rejectUnauthorized: options.rejectUnauthorized ?? true,
        ...(options.ca !== undefined ? { ca: options.ca } : {}),
        ...(connectTimeoutMs > 0 ? { timeout: connectTimeoutMs } : {}),
      },
      // Our own timers watch connecting and reading: undici's body timeout would cut a stream
      // that is merely quiet, and our read timeout is optional and counts keepalive comments.
      bodyTimeout: 0,
      headersTimeout: 0,
    });
    dispatcher = ownAgent;
  }
  // [spec] fetch follows redirects; reconnections still start from the URL given.
  if (maxRedirections > 0) {
    dispatcher = dispatcher.compose(interceptors.redirect({ maxRedirections }));
  }
  return { dispatcher, ownAgent };
}
