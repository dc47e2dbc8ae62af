/**
 * `sendRequest()`: POST one event to a listener at `/<action>/<token>`, the way the original
 * `eventsource-request` did, over undici with a keep-alive agent so that a program sending many
 * events reuses its connections.
 *
 * Per-call work is kept small on purpose (a benchmark holds it to 0.9x a bare `undici.request`
 * loop): no URL object per call when the target is given as host/port, the last parsed `url`
 * remembered, the body read once as text and parsed only when the server says it is JSON.
 */
import { Agent, type Dispatcher } from 'undici';
import { debugRequest } from './debug.js';
import { serverMessage } from './message.js';
import { normalizePrefix } from './listener/routes.js';

/** The reply our listener sends on success; other servers may answer anything. */
export interface RequestReply {
  token: string;
  action: string;
  id?: string | number | null;
  subscribers?: number;
  [key: string]: unknown;
}

/** What a successful (2xx) send resolves to. */
export interface SendRequestResult {
  /** The HTTP status, 200 to 299. */
  status: number;
  /** The response headers, names in lower case. */
  headers: Dispatcher.ResponseData['headers'];
  /** The response body as text, exactly as received (possibly empty). */
  body: string;
  /** The body parsed as JSON when the response is `application/json` (or `+json`); otherwise `undefined`. */
  reply: RequestReply | undefined;
}

/** Options shared by `sendRequest()` and `sendRequestTo()`. */
export interface RequestOptions {
  /**
   * The event data. A string or bytes are sent as they are; any other value (object, array,
   * number, boolean, `null`) is sent JSON-encoded with `Content-Type: application/json`.
   * Defaults to `undefined`: an empty body.
   */
  data?: unknown;
  /**
   * Checks that string or byte `data` is valid JSON before anything is sent (throws a `TypeError`
   * otherwise), then sends it unchanged with `Content-Type: application/json`. Defaults to `false`
   * (strings go as `text/plain; charset=utf-8`).
   */
  json?: boolean;
  /** Extra request headers; they override the ones this function sets. Defaults to none. */
  headers?: Record<string, string> | Iterable<readonly [string, string]>;
  /** HTTP Basic user name (`-u`). Basic auth is sent only when `user` is set. */
  user?: string;
  /** HTTP Basic password, used with `user`. Defaults to `''`. */
  password?: string;
  /**
   * Sent as `Authorization: Bearer <bearer>`: a JWT with a publish grant, or the listener's
   * `--publish-secret`. Ignored when `user` is set.
   */
  bearer?: string;
  /** The older name of {@link bearer}; `bearer` wins when both are given. */
  secret?: string;
  /**
   * The undici dispatcher to send with. Defaults to one keep-alive `Agent` shared by every call in
   * the process; use `createRequestAgent()` for TLS options or a connection limit.
   */
  dispatcher?: Dispatcher;
  /**
   * Offer HTTP/2 as well as HTTP/1.1 (undici's `allowH2`) on the shared agent: over https the
   * server picks one by ALPN; over plain http the request stays HTTP/1.1. Calls with `http2: true`
   * share a second keep-alive agent of their own. Not together with `dispatcher` (a `TypeError`):
   * give that one `allowH2` itself, or use `createRequestAgent({ http2: true })`. Defaults to `false`.
   */
  http2?: boolean;
  /**
   * Milliseconds to wait for the response headers, and then between chunks of the body, before
   * failing with `RequestTimeoutError`. Connecting is bounded by the agent (`connectTimeoutMs`).
   * Defaults to undici's own limits (300 000 ms).
   */
  timeoutMs?: number;
  /** Aborts the request; the promise then rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** Options of `sendRequest()`: what to send and where. */
export interface SendRequestOptions extends RequestOptions {
  /** The target token (the subscriber's channel); URL-encoded into the path. */
  token: string;
  /** The action, e.g. `'ping'`, `'listen'`, `'finish'`; URL-encoded into the path. */
  action: string;
  /** Listener host. Defaults to `'127.0.0.1'`. Ignored when `url` is set. */
  host?: string;
  /** Listener port. Defaults to `8888`. Ignored when `url` is set. */
  port?: number;
  /** Path prefix the listener was started with (`-x`), e.g. `'/events'`. Defaults to `''`. Ignored when `url` is set. */
  prefix?: string;
  /** Use `https`. Defaults to `false`. Ignored when `url` is set. */
  ssl?: boolean;
  /**
   * Base URL that replaces scheme, host, port and prefix, e.g. `'https://push.example.com/events'`;
   * the request goes to `<url>/<action>/<token>`.
   */
  url?: string | URL;
}

/** Options of `createRequestAgent()`. */
export interface RequestAgentOptions {
  /** PEM certificate authorities to trust instead of Node's bundled ones. */
  ca?: string | Buffer | (string | Buffer)[];
  /** Accept any server certificate. Defaults to `false`: certificates are validated. */
  insecure?: boolean;
  /** Most connections per origin. Defaults to unlimited; `1` keeps a batch on one connection. */
  connections?: number;
  /** How long to wait for a connection. Defaults to `10000`. */
  connectTimeoutMs?: number;
  /** How long an idle connection is kept for reuse. Defaults to `4000` (undici's default). */
  keepAliveTimeoutMs?: number;
  /**
   * Offer HTTP/2 as well as HTTP/1.1 (undici's `allowH2`): over https the server picks one by
   * ALPN, and requests to it share one multiplexed session; plain http stays HTTP/1.1.
   * Defaults to `false`.
   */
  http2?: boolean;
}

/** The server answered with a status outside 2xx. */
export class RequestError extends Error {
  override readonly name = 'RequestError';
  readonly code = 'ERR_EVENTSOURCE_REQUEST';
  /**
   * @param status The HTTP status received.
   * @param serverMessage The server's message: the body without HTML, on one line (or the status text when empty).
   * @param body The response body as received.
   * @param url The URL that answered.
   */
  constructor(
    readonly status: number,
    readonly serverMessage: string,
    readonly body: string,
    readonly url: string,
  ) {
    super(`Unable to send request (${status}): ${serverMessage}`);
  }
}

/** No response (or no further body) within `timeoutMs`. */
export class RequestTimeoutError extends Error {
  override readonly name = 'RequestTimeoutError';
  readonly code = 'ERR_EVENTSOURCE_REQUEST_TIMEOUT';
  constructor(
    readonly timeoutMs: number,
    options?: { cause?: unknown },
  ) {
    super(`no response within ${timeoutMs} ms`, options);
  }
}

let defaultAgent: Agent | undefined;
let defaultHttp2Agent: Agent | undefined;

/** Created on first use, so importing the module opens nothing. */
function getDefaultAgent(): Agent {
  defaultAgent ??= new Agent();
  return defaultAgent;
}

/**
 * The shared agent of `http2: true` calls, also created on first use. It is a second agent rather
 * than `allowH2` on the first, so that the default stays exactly HTTP/1.1.
 */
function getDefaultHttp2Agent(): Agent {
  defaultHttp2Agent ??= new Agent({ allowH2: true });
  return defaultHttp2Agent;
}

/**
 * Creates a keep-alive undici `Agent` for `sendRequest()`'s `dispatcher` option, with TLS settings
 * and a connection limit. Create it once and reuse it; close it with `agent.close()`.
 * @param options See `RequestAgentOptions`.
 * @returns A new `Agent`.
 */
export function createRequestAgent(options: RequestAgentOptions = {}): Agent {
  const connect: {
    rejectUnauthorized?: boolean;
    ca?: RequestAgentOptions['ca'];
    timeout?: number;
  } = {};
  if (options.insecure) connect.rejectUnauthorized = false;
  if (options.ca !== undefined) connect.ca = options.ca;
  if (options.connectTimeoutMs !== undefined) connect.timeout = options.connectTimeoutMs;
  if (options.http2 !== undefined && typeof options.http2 !== 'boolean') {
    throw new TypeError(`\`http2\` must be a boolean, got ${JSON.stringify(options.http2)}`);
  }
  return new Agent({
    connect,
    ...(options.http2 ? { allowH2: true } : {}),
    ...(options.connections !== undefined ? { connections: options.connections } : {}),
    ...(options.keepAliveTimeoutMs !== undefined
      ? { keepAliveTimeout: options.keepAliveTimeoutMs }
      : {}),
  });
}

/**
 * Sends one event: `POST <scheme>://<host>:<port><prefix>/<action>/<token>` with `data` as the body.
 * @param options Token, action, data and where to send them; see `SendRequestOptions`.
 * @returns The status, headers, body and parsed reply when the server answers 2xx.
 * @throws {RequestError} When the server answers another status (`status`, `serverMessage`).
 * @throws {RequestTimeoutError} When `timeoutMs` passes without a response.
 * @throws {TypeError} On a missing token or action, invalid JSON with `json: true`, or `http2`
 * together with `dispatcher`.
 * Network failures are undici's errors (`connect ECONNREFUSED ...`); `flattenError()` makes them one line.
 */
export async function sendRequest(options: SendRequestOptions): Promise<SendRequestResult> {
  const { token, action } = options;
  if (typeof token !== 'string' || token === '') {
    throw new TypeError(`\`token\` must be a non-empty string, got ${JSON.stringify(token)}`);
  }
  if (typeof action !== 'string' || action === '') {
    throw new TypeError(`\`action\` must be a non-empty string, got ${JSON.stringify(action)}`);
  }
  let origin: string;
  let basePath: string;
  if (options.url !== undefined) {
    const base = parseBase(options.url);
    origin = base.origin;
    basePath = base.path;
  } else {
    const host = options.host ?? '127.0.0.1';
    // An IPv6 literal needs brackets in an origin.
    const hostPart = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
    origin = `${options.ssl ? 'https' : 'http'}://${hostPart}:${options.port ?? 8888}`;
    basePath = normalizePrefix(options.prefix);
  }
  return post(
    origin,
    `${basePath}/${encodeURIComponent(action)}/${encodeURIComponent(token)}`,
    options,
  );
}

/**
 * Sends one event to a full URL, e.g. `http://127.0.0.1:8888/ping/my-token`, as it is.
 * @param url The target URL (http or https).
 * @param options Data and request options; see `RequestOptions`.
 * @returns As `sendRequest()`.
 * @throws As `sendRequest()`.
 */
export async function sendRequestTo(
  url: string | URL,
  options: RequestOptions = {},
): Promise<SendRequestResult> {
  const target = parseTarget(url);
  return post(target.origin, target.path, options);
}

interface ParsedUrl {
  input: string;
  origin: string;
  path: string;
}

// One-entry caches: a program sending many events usually repeats the same URL.
let lastBase: ParsedUrl | undefined;
let lastTarget: ParsedUrl | undefined;

function parseBase(url: string | URL): ParsedUrl {
  const input = String(url);
  if (lastBase?.input === input) return lastBase;
  const parsed = parseHttpUrl(input, 'url');
  lastBase = { input, origin: parsed.origin, path: normalizePrefix(parsed.pathname) };
  return lastBase;
}

function parseTarget(url: string | URL): ParsedUrl {
  const input = String(url);
  if (lastTarget?.input === input) return lastTarget;
  const parsed = parseHttpUrl(input, 'url');
  lastTarget = { input, origin: parsed.origin, path: `${parsed.pathname}${parsed.search}` };
  return lastTarget;
}

function parseHttpUrl(input: string, name: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(input);
  } catch {
    throw new TypeError(`\`${name}\` must be an http or https URL, got ${JSON.stringify(input)}`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new TypeError(`\`${name}\` must be an http or https URL, got ${JSON.stringify(input)}`);
  }
  return parsed;
}

/** `'events/'`, `'/events'` and `'/events/'` all become `'/events'`; `''` and `'/'` become `''`. */

const JSON_TYPE = 'application/json';
const TEXT_TYPE = 'text/plain; charset=utf-8';

async function post(
  origin: string,
  path: string,
  options: RequestOptions,
): Promise<SendRequestResult> {
  const { data } = options;
  const dispatcher = pickDispatcher(options);
  let body: string | Uint8Array | undefined;
  let contentType: string | undefined;
  if (data === undefined) {
    body = undefined;
  } else if (typeof data === 'string' || data instanceof Uint8Array) {
    body = data;
    if (options.json) {
      assertJson(data);
      contentType = JSON_TYPE;
    } else if (data.length > 0) {
      contentType = TEXT_TYPE;
    }
  } else {
    body = JSON.stringify(data);
    contentType = JSON_TYPE;
  }

  const headers: Record<string, string> = {};
  if (contentType) headers['content-type'] = contentType;
  if (options.user !== undefined) {
    const credentials = `${options.user}:${options.password ?? ''}`;
    headers.authorization = `Basic ${Buffer.from(credentials, 'utf8').toString('base64')}`;
  } else {
    const bearer = options.bearer ?? options.secret;
    if (bearer !== undefined) headers.authorization = `Bearer ${bearer}`;
  }
  if (options.headers) {
    const extra = options.headers;
    const entries = isIterable(extra) ? extra : Object.entries(extra);
    for (const [name, value] of entries) headers[name.toLowerCase()] = value;
  }

  if (debugRequest.enabled) debugRequest('POST %s%s', origin, path);
  const request: Dispatcher.RequestOptions = {
    origin,
    path,
    method: 'POST',
    headers,
    body: body ?? null,
  };
  if (options.signal) request.signal = options.signal;
  const { timeoutMs } = options;
  if (timeoutMs !== undefined) {
    request.headersTimeout = timeoutMs;
    request.bodyTimeout = timeoutMs;
  }

  let status: number;
  let responseHeaders: Dispatcher.ResponseData['headers'];
  let text: string;
  try {
    const response = await dispatcher.request(request);
    status = response.statusCode;
    responseHeaders = response.headers;
    text = await response.body.text();
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    if (
      timeoutMs !== undefined &&
      (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT')
    ) {
      throw new RequestTimeoutError(timeoutMs, { cause: error });
    }
    throw error;
  }
  const type = responseHeaders['content-type'];
  const isJson = typeof type === 'string' && /[/+]json\b/i.test(type);
  if (status < 200 || status > 299) {
    if (debugRequest.enabled) debugRequest('%s%s answered %d: %s', origin, path, status, text);
    throw new RequestError(
      status,
      serverMessage(status, text, typeof type === 'string' ? type : '', isJson),
      text,
      origin + path,
    );
  }
  let reply: RequestReply | undefined;
  if (isJson && text !== '') {
    try {
      reply = JSON.parse(text) as RequestReply;
    } catch (error) {
      // A 2xx with a broken JSON body still delivered the event; `body` keeps the text.
      debugRequest('reply from %s%s is not valid JSON: %O', origin, path, error);
    }
  }
  return { status, headers: responseHeaders, body: text, reply };
}

/** The caller's dispatcher, or the shared agent for the protocols asked for. */
function pickDispatcher(options: RequestOptions): Dispatcher {
  const { http2 } = options;
  if (http2 !== undefined && typeof http2 !== 'boolean') {
    throw new TypeError(`\`http2\` must be a boolean, got ${JSON.stringify(http2)}`);
  }
  if (options.dispatcher !== undefined) {
    // The dispatcher's protocols are its own; ignoring the wish would send HTTP/1.1 unannounced.
    if (http2) {
      throw new TypeError(
        '`http2` and `dispatcher` cannot be combined: create the dispatcher with `allowH2: true` (or `createRequestAgent({ http2: true })`) instead',
      );
    }
    return options.dispatcher;
  }
  return http2 ? getDefaultHttp2Agent() : getDefaultAgent();
}

function isIterable(value: object): value is Iterable<readonly [string, string]> {
  return typeof (value as { [Symbol.iterator]?: unknown })[Symbol.iterator] === 'function';
}

function assertJson(data: string | Uint8Array): void {
  const text = typeof data === 'string' ? data : Buffer.from(data).toString('utf8');
  try {
    JSON.parse(text);
  } catch (error) {
    throw new TypeError(`\`data\` is not valid JSON: ${(error as Error).message}`, {
      cause: error,
    });
  }
}
