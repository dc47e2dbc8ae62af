/**
 * EventSourceClient: a reconnecting Server-Sent Events client for Node.js, built on undici for
 * HTTP and the package's own WHATWG parser. It behaves like a browser's `EventSource` (the
 * reference), then adds what command-line and server-side users need: headers, basic auth, TLS
 * options, timeouts, a maximum event size, backoff on passing server trouble, and an async iterator.
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html
 */
import { Agent, interceptors, request, type Dispatcher } from 'undici';
import { debugClient as debug } from './debug.js';
import { ContentTypeError, HttpStatusError, ReadTimeoutError } from './errors.js';
import { createParser, type ParsedEvent, type Parser } from './wire/parser.js';

/** One event received by an {@link EventSourceClient}, as a plain object. */
export interface ClientEvent {
  /**
   * The event's last event ID, or `null` while it is empty (no `id:` seen yet, or reset by an empty
   * `id:` field). This is what `--json` prints.
   */
  id: string | null;
  /** The event type: the `event:` field, or `message` when there was none. */
  event: string;
  /** The data: every `data:` line joined with LF. */
  data: string;
  /** The last event ID string as the spec defines it: `''` while there is none. */
  lastEventId: string;
}

/** Options for {@link EventSourceClient}. */
export interface EventSourceClientOptions {
  /** Extra request headers. They may override `Accept` and `Cache-Control`. */
  headers?: Record<string, string> | Iterable<readonly [string, string]> | undefined;
  /** User name for HTTP basic authentication. Defaults to none (or the URL's user info). */
  username?: string | undefined;
  /** Password for HTTP basic authentication (with `username`). Defaults to `''`. */
  password?: string | undefined;
  /** A last event ID to start from: sent as `Last-Event-ID` on the first connection already. */
  lastEventId?: string | undefined;
  /** The reconnection time in milliseconds until the server sends `retry:`. Defaults to `3000`. */
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
   * The most characters one event may hold; a bigger one is discarded with an `error` event
   * (`EventTooLargeError`) so that a server that never ends an event cannot grow the client's
   * memory. Defaults to `16777216` (16 Mi characters).
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

/**
 * What an {@link EventSourceClient} dispatches for each event, named by its type: shaped like a
 * browser's `MessageEvent` (`type`, `data`, `lastEventId`, `origin`, `target`), plus `id` and `event`.
 * It is a plain object rather than a DOM `Event`, whose construction alone costs more than parsing
 * the event; events typed `open` or `error` by the server are the exception and go through
 * `EventTarget` as real `Event`s.
 */
export class EventSourceMessageEvent {
  // Fields are declared, not initialized, and each is assigned once in the constructor: one
  // object per event, built without the property definitions that class field syntax adds.
  /** The event type. */
  declare readonly type: string;
  /** The event's data. */
  declare readonly data: string;
  /** The last event ID string (`''` when none). */
  declare readonly lastEventId: string;
  /** The last event ID, or `null` when empty. */
  declare readonly id: string | null;
  /** The event type (the same as `type`). */
  declare readonly event: string;
  /** The origin of the URL the client connected to. */
  declare readonly origin: string;
  /** The client that dispatched the event. */
  declare readonly target: EventSourceClient;
  /** The client that dispatched the event. */
  declare readonly currentTarget: EventSourceClient;
  /** Set by `stopImmediatePropagation()`: no further listener is called. */
  declare isStopped: boolean;
  /**
   * @param type The event type.
   * @param data The event's data.
   * @param lastEventId The last event ID string (`''` when none).
   * @param origin The origin of the URL the client connected to.
   * @param target The client that dispatches the event.
   */
  constructor(
    type: string,
    data: string,
    lastEventId: string,
    origin: string,
    target: EventSourceClient,
  ) {
    this.type = type;
    this.data = data;
    this.lastEventId = lastEventId;
    this.id = lastEventId === '' ? null : lastEventId;
    this.event = type;
    this.origin = origin;
    this.target = target;
    this.currentTarget = target;
    this.isStopped = false;
  }
  /** Calls no further listener for this event. */
  stopImmediatePropagation(): void {
    this.isStopped = true;
  }
  /** Does nothing: the event is not cancelable (as in browsers). */
  preventDefault(): void {}
  /** Always `false`: the event is not cancelable. */
  get defaultPrevented(): boolean {
    return false;
  }
}

/** A listener for an {@link EventSourceClient}'s events. */
export type EventSourceListener =
  | ((event: EventSourceMessageEvent) => void)
  | { handleEvent(event: EventSourceMessageEvent): void };

interface Registration {
  listener: EventSourceListener;
  capture: boolean;
  once: boolean;
}

/**
 * The `error` event: the connection was lost or failed, or an event was too large. `readyState`
 * tells whether the client is reconnecting (`CONNECTING`), still open, or `CLOSED`.
 */
export class EventSourceErrorEvent extends Event {
  /** What went wrong; `undefined` when the stream simply ended. */
  readonly error: Error | undefined;
  /** Whether a reconnection is scheduled. */
  readonly willReconnect: boolean;
  /** The delay before that reconnection, in milliseconds. */
  readonly delayMs: number | undefined;
  constructor(error: Error | undefined, willReconnect: boolean, delayMs?: number) {
    super('error');
    this.error = error;
    this.willReconnect = willReconnect;
    this.delayMs = delayMs;
  }
}

type Listener = ((event: Event) => void) | { handleEvent(event: Event): void } | null;
type Handler = Listener | EventSourceListener;

// How one connection attempt ended.
type Outcome =
  | { kind: 'closed' }
  | { kind: 'ended' }
  | { kind: 'no-content'; error: HttpStatusError }
  | { kind: 'failed'; error: Error; isPassing: boolean; retryAfterMs?: number | undefined };

interface IteratorState {
  queue: ClientEvent[];
  head: number;
  waiting:
    { resolve: (r: IteratorResult<ClientEvent>) => void; reject: (e: unknown) => void } | undefined;
}

const CONNECTING = 0;
const OPEN = 1;
const CLOSED = 2;
// An async iterator that falls this many events behind pauses the socket until it catches up.
const HIGH_WATER_MARK = 2048;
const LOW_WATER_MARK = 256;
const MAX_ERROR_BODY = 4096;
// [non-spec] Backoff never starts below this, so `retry: 0` with a failing server is no tight loop.
const MIN_BACKOFF_MS = 100;
const PASSING_STATUSES = new Set([500, 502, 503, 504]);

/**
 * A reconnecting SSE client. It connects as soon as it is created (on the next tick, so listeners
 * and iterators added right away see everything), like a browser's `EventSource`.
 *
 * Events arrive three ways: `addEventListener(type)` (`message`, named events, `open`, `error`),
 * the `onEvent` option (every event as a plain object), and `for await (const event of client)`
 * (ends when the client closes, throws the error that stopped it; leaving the loop closes the client).
 *
 * ```ts
 * const client = new EventSourceClient('http://127.0.0.1:8888/poll/token');
 * for await (const { event, data, id } of client) console.log(event, id, data);
 * ```
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#the-eventsource-interface
 */
export class EventSourceClient extends EventTarget {
  static readonly CONNECTING = CONNECTING;
  static readonly OPEN = OPEN;
  static readonly CLOSED = CLOSED;
  readonly CONNECTING = CONNECTING;
  readonly OPEN = OPEN;
  readonly CLOSED = CLOSED;

  /** The URL given (reconnections go back to it, not to where a redirect led). */
  readonly url: string;
  /**
   * Settles when the client is closed for good: resolves after `close()`, a `204`, or a stream
   * end with reconnection off; rejects with the error that stopped it otherwise.
   */
  readonly closed: Promise<void>;

  #readyState: number = CONNECTING;
  #retryMs: number;
  readonly #reconnect: boolean;
  readonly #keepReconnecting: boolean;
  readonly #maxRetryMs: number;
  readonly #connectTimeoutMs: number;
  readonly #readTimeoutMs: number;
  readonly #headers: Record<string, string>;
  readonly #dispatcher: Dispatcher;
  readonly #ownAgent: Agent | undefined;
  readonly #origin: string;
  readonly #parser: Parser;
  readonly #onEvent: ((event: ClientEvent) => void) | undefined;
  readonly #signal: AbortSignal | undefined;
  readonly #iterators = new Set<IteratorState>();
  // Listeners of event types other than `open` and `error`, called directly (see
  // EventSourceMessageEvent). Arrays are replaced, never changed, so a dispatch can run over one
  // while a listener adds or removes another.
  readonly #messageListeners = new Map<string, Registration[]>();
  readonly #handlers = new Map<string, Handler>();
  #attempt: AbortController | undefined;
  #body: Dispatcher.ResponseData['body'] | undefined;
  #isPaused = false;
  // Paused by the caller (pause()), as opposed to by a lagging async iterator.
  #isPausedByCaller = false;
  #retryTimer: NodeJS.Timeout | undefined;
  #wakeUp: (() => void) | undefined;
  #error: Error | undefined;
  #isStopped = false;
  #resolveClosed!: () => void;
  #rejectClosed!: (error: Error) => void;

  /**
   * @param url The stream's URL (http or https). User info in it becomes basic authentication.
   * @param options See {@link EventSourceClientOptions}.
   */
  constructor(url: string | URL, options: EventSourceClientOptions = {}) {
    super();
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
    let username = options.username;
    let password = options.password;
    if (parsed.username || parsed.password) {
      username ??= decodeURIComponent(parsed.username);
      password ??= decodeURIComponent(parsed.password);
      parsed.username = '';
      parsed.password = '';
    }
    this.url = parsed.href;
    this.#origin = parsed.origin;

    this.#retryMs = checkMs(options.retryMs, 'retryMs', 3000);
    this.#maxRetryMs = checkMs(options.maxRetryMs, 'maxRetryMs', 30000);
    this.#connectTimeoutMs = checkMs(options.connectTimeoutMs, 'connectTimeoutMs', 30000);
    this.#readTimeoutMs = checkMs(options.readTimeoutMs, 'readTimeoutMs', 0);
    this.#keepReconnecting = options.keepReconnecting ?? false;
    this.#reconnect = this.#keepReconnecting || (options.reconnect ?? true);
    const maxEventLength = options.maxEventLength ?? 16 * 1024 * 1024;
    if (!(maxEventLength > 0)) {
      throw new RangeError(`\`maxEventLength\` must be a positive number, got ${maxEventLength}`);
    }
    const maxRedirections = checkMs(options.maxRedirections, 'maxRedirections', 20);

    // [spec] Set request's header list to `Accept: text/event-stream`. [spec] Set request's cache
    // mode to "no-store" (which, sent to a server, is the `Cache-Control: no-cache` browsers send).
    const headers: Record<string, string> = {
      accept: 'text/event-stream',
      'cache-control': 'no-cache',
    };
    if (options.headers !== undefined) {
      const entries =
        Symbol.iterator in options.headers ? options.headers : Object.entries(options.headers);
      for (const [name, value] of entries) headers[name.toLowerCase()] = value;
    }
    if (username !== undefined) {
      const token = Buffer.from(`${username}:${password ?? ''}`, 'utf8').toString('base64');
      headers.authorization = `Basic ${token}`;
    }
    this.#headers = headers;

    const isHttp2 = options.http2 ?? false;
    if (typeof isHttp2 !== 'boolean') {
      throw new TypeError(`\`http2\` must be a boolean, got ${JSON.stringify(isHttp2)}`);
    }
    if (options.dispatcher !== undefined) {
      // The dispatcher was built with its own protocols; quietly ignoring the wish would leave
      // the caller on HTTP/1.1 without knowing.
      if (isHttp2) {
        throw new TypeError(
          '`http2` and `dispatcher` cannot be combined: create the dispatcher with `allowH2: true` instead',
        );
      }
      this.#dispatcher = options.dispatcher;
    } else {
      this.#ownAgent = new Agent({
        // HTTP/2 is offered by ALPN on TLS connections only; plain http stays HTTP/1.1.
        ...(isHttp2 ? { allowH2: true } : {}),
        connect: {
          rejectUnauthorized: options.rejectUnauthorized ?? true,
          ...(options.ca !== undefined ? { ca: options.ca } : {}),
          ...(this.#connectTimeoutMs > 0 ? { timeout: this.#connectTimeoutMs } : {}),
        },
        // Our own timers watch connecting and reading: undici's body timeout would cut a stream
        // that is merely quiet, and our read timeout is optional and counts keepalive comments.
        bodyTimeout: 0,
        headersTimeout: 0,
      });
      this.#dispatcher = this.#ownAgent;
    }
    // [spec] fetch follows redirects; reconnections still start from the URL given.
    if (maxRedirections > 0) {
      this.#dispatcher = this.#dispatcher.compose(interceptors.redirect({ maxRedirections }));
    }

    this.#onEvent = options.onEvent;
    this.#parser = createParser(
      {
        onEvent: this.#handleEvent,
        // [spec] If the field value consists of only ASCII digits, then interpret the field value
        // as an integer in base ten, and set the event stream's reconnection time to that integer.
        onRetry: (ms) => {
          this.#retryMs = ms;
        },
        onError: (error) => this.#dispatchError(error, false),
      },
      // The parser holds the starting ID, as if an earlier stream had carried it (and refuses
      // one with CR, LF or NUL with a TypeError).
      { maxEventLength, lastEventId: options.lastEventId },
    );

    this.closed = new Promise<void>((resolve, reject) => {
      this.#resolveClosed = resolve;
      this.#rejectClosed = reject;
    });
    // Whoever does not await `closed` learns of errors through `error` events or the iterator.
    this.closed.catch(() => undefined);

    this.#signal = options.signal;
    if (this.#signal?.aborted) {
      this.close();
      return;
    }
    this.#signal?.addEventListener('abort', this.#onAbort, { once: true });
    setImmediate(() => void this.#run());
  }

  /** `CONNECTING` (0), `OPEN` (1) or `CLOSED` (2). */
  get readyState(): number {
    return this.#readyState;
  }

  /** The last event ID string (`''` when none): what `Last-Event-ID` carries on reconnection. */
  get lastEventId(): string {
    return this.#parser.lastEventId;
  }

  /** The current reconnection time in milliseconds (the server's `retry:` overrides the option). */
  get retryMs(): number {
    return this.#retryMs;
  }

  /** The error that stopped the client, if one did. */
  get error(): Error | undefined {
    return this.#error;
  }

  /** Handler for `open` events, as on a browser's EventSource. */
  get onopen(): Listener {
    return (this.#handlers.get('open') as Listener | undefined) ?? null;
  }
  set onopen(handler: Listener) {
    this.#setHandler('open', handler);
  }
  /** Handler for `message` events (events without an `event:` field). */
  get onmessage(): EventSourceListener | null {
    return (this.#handlers.get('message') as EventSourceListener | undefined) ?? null;
  }
  set onmessage(handler: EventSourceListener | null) {
    this.#setHandler('message', handler);
  }
  /** Handler for `error` events. */
  get onerror(): Listener {
    return (this.#handlers.get('error') as Listener | undefined) ?? null;
  }
  set onerror(handler: Listener) {
    this.#setHandler('error', handler);
  }

  /**
   * Adds a listener, as on any `EventTarget`: `open`, `error`, `message` or a named event type.
   * The options `once`, `capture` and `signal` work as usual.
   */
  override addEventListener(
    type: 'open' | 'error',
    listener: Listener,
    options?: Parameters<EventTarget['addEventListener']>[2],
  ): void;
  override addEventListener(
    type: string,
    listener: EventSourceListener | null,
    options?: Parameters<EventTarget['addEventListener']>[2],
  ): void;
  override addEventListener(
    type: string,
    listener: Handler | Parameters<EventTarget['addEventListener']>[1],
    options?: Parameters<EventTarget['addEventListener']>[2],
  ): void {
    if (type === 'open' || type === 'error' || listener === null || listener === undefined) {
      super.addEventListener(
        type,
        listener as Parameters<EventTarget['addEventListener']>[1],
        options,
      );
      return;
    }
    const capture = typeof options === 'boolean' ? options : (options?.capture ?? false);
    const once = typeof options === 'object' && options.once === true;
    const signal = typeof options === 'object' ? options.signal : undefined;
    if (signal?.aborted) return;
    const registrations = this.#messageListeners.get(type) ?? [];
    if (registrations.some((r) => r.listener === listener && r.capture === capture)) return;
    const registration = { listener: listener as EventSourceListener, capture, once };
    this.#messageListeners.set(type, [...registrations, registration]);
    signal?.addEventListener('abort', () => this.#unregister(type, registration), { once: true });
  }

  /** Removes a listener added with `addEventListener`. */
  override removeEventListener(
    type: 'open' | 'error',
    listener: Listener,
    options?: Parameters<EventTarget['removeEventListener']>[2],
  ): void;
  override removeEventListener(
    type: string,
    listener: EventSourceListener | null,
    options?: Parameters<EventTarget['removeEventListener']>[2],
  ): void;
  override removeEventListener(
    type: string,
    listener: Handler | Parameters<EventTarget['removeEventListener']>[1],
    options?: Parameters<EventTarget['removeEventListener']>[2],
  ): void {
    if (type === 'open' || type === 'error' || listener === null || listener === undefined) {
      super.removeEventListener(
        type,
        listener as Parameters<EventTarget['removeEventListener']>[1],
        options,
      );
      return;
    }
    const capture = typeof options === 'boolean' ? options : (options?.capture ?? false);
    const registration = this.#messageListeners
      .get(type)
      ?.find((r) => r.listener === listener && r.capture === capture);
    if (registration !== undefined) this.#unregister(type, registration);
  }

  #unregister(type: string, registration: Registration): void {
    const remaining = (this.#messageListeners.get(type) ?? []).filter((r) => r !== registration);
    if (remaining.length > 0) this.#messageListeners.set(type, remaining);
    else this.#messageListeners.delete(type);
  }

  // Calls the listeners of one event type with a plain MessageEvent-shaped object.
  #dispatchMessage(registrations: Registration[], event: EventSourceMessageEvent): void {
    // An indexed loop: until V8 optimizes this function, for...of costs an iterator per event.
    for (let i = 0; i < registrations.length; i++) {
      const registration = registrations[i] as Registration;
      if (registration.once) this.#unregister(event.type, registration);
      const listener = registration.listener;
      try {
        if (typeof listener === 'function') listener.call(this, event);
        else listener.handleEvent(event);
      } catch (error) {
        // As EventTarget does: report the error without keeping the other listeners from the event.
        process.nextTick(() => {
          throw error;
        });
      }
      if (event.isStopped) return;
    }
  }

  /**
   * Closes the connection at once and for good: no event is delivered afterwards, iterators end.
   * [spec] The close() method must abort any instances of the fetch algorithm started for this
   * EventSource object, and must set the readyState attribute to CLOSED.
   */
  close(): void {
    this.#stop(undefined);
  }

  /**
   * Stops reading from the connection until {@link resume}: backpressure for a consumer that
   * cannot keep up (a slow stdout). Events already received are still delivered; a paused stream
   * does not count as silent for the read timeout.
   */
  pause(): void {
    this.#isPausedByCaller = true;
    this.#body?.pause();
  }

  /** Reads from the connection again after {@link pause}. */
  resume(): void {
    this.#isPausedByCaller = false;
    if (!this.#isPaused) this.#body?.resume();
  }

  /** Every event, whatever its type; see the class description. */
  [Symbol.asyncIterator](): AsyncIterableIterator<ClientEvent> {
    const state: IteratorState = { queue: [], head: 0, waiting: undefined };
    if (!this.#isStopped) this.#iterators.add(state);
    const iterator: AsyncIterableIterator<ClientEvent> = {
      next: () => {
        if (state.head < state.queue.length) {
          const value = state.queue[state.head] as ClientEvent;
          state.queue[state.head++] = undefined as unknown as ClientEvent;
          if (state.head === state.queue.length) {
            state.queue = [];
            state.head = 0;
          }
          if (this.#isPaused && state.queue.length - state.head <= LOW_WATER_MARK) this.#resume();
          return Promise.resolve({ value, done: false });
        }
        if (!this.#iterators.has(state)) {
          return this.#error !== undefined
            ? Promise.reject(this.#error)
            : Promise.resolve({ value: undefined, done: true });
        }
        return new Promise((resolve, reject) => {
          state.waiting = { resolve, reject };
        });
      },
      return: () => {
        this.#iterators.delete(state);
        this.close();
        return Promise.resolve({ value: undefined, done: true });
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  #setHandler(type: string, handler: Handler): void {
    const previous = this.#handlers.get(type);
    if (previous) this.removeEventListener(type, previous as EventSourceListener);
    if (handler) {
      this.#handlers.set(type, handler);
      this.addEventListener(type, handler as EventSourceListener);
    } else {
      this.#handlers.delete(type);
    }
  }

  #onAbort = (): void => {
    this.close();
  };

  // The hot path: one call per dispatched event. It makes one object per consumer kind that
  // is present, and none for those that are not.
  #handleEvent = (parsed: ParsedEvent): void => {
    if (this.#readyState !== OPEN) return;
    const { id, event: type, data } = parsed;
    // Every consumer gets the event being dispatched, even if one of them calls close().
    if (this.#onEvent !== undefined || this.#iterators.size > 0) {
      const event: ClientEvent = { id: id === '' ? null : id, event: type, data, lastEventId: id };
      if (this.#iterators.size > 0) this.#enqueue(event);
      if (this.#onEvent !== undefined) this.#onEvent(event);
    }
    // [spec] Create an event that uses the MessageEvent interface, with the event type, data, the
    // origin and the last event ID string; dispatch it at the EventSource object.
    const registrations = this.#messageListeners.get(type);
    if (registrations !== undefined) {
      this.#dispatchMessage(
        registrations,
        new EventSourceMessageEvent(type, data, id, this.#origin, this),
      );
    } else if (type === 'open' || type === 'error') {
      // A server-sent event named like a connection event reaches those listeners, as in browsers.
      this.dispatchEvent(Object.assign(new Event(type), { data, lastEventId: id }));
    }
  };

  #enqueue(event: ClientEvent): void {
    for (const state of this.#iterators) {
      if (state.waiting !== undefined) {
        const { resolve } = state.waiting;
        state.waiting = undefined;
        resolve({ value: event, done: false });
      } else {
        state.queue.push(event);
        if (!this.#isPaused && state.queue.length - state.head > HIGH_WATER_MARK) this.#pause();
      }
    }
  }

  #pause(): void {
    this.#isPaused = true;
    this.#body?.pause();
  }

  #resume(): void {
    this.#isPaused = false;
    if (!this.#isPausedByCaller) this.#body?.resume();
  }

  #dispatchError(error: Error | undefined, willReconnect: boolean, delayMs?: number): void {
    debug(
      'error (reconnect: %s, delay: %s): %s',
      willReconnect,
      delayMs,
      error?.message ?? 'stream ended',
    );
    this.dispatchEvent(new EventSourceErrorEvent(error, willReconnect, delayMs));
  }

  // Stops for good: with an error to report, or none (close(), 204, a clean end).
  #stop(error: Error | undefined): void {
    if (this.#isStopped) return;
    this.#isStopped = true;
    this.#readyState = CLOSED;
    this.#error = error;
    this.#attempt?.abort();
    this.#attempt = undefined;
    if (this.#body !== undefined) discardBody(this.#body);
    this.#body = undefined;
    if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer);
    this.#wakeUp?.();
    this.#signal?.removeEventListener('abort', this.#onAbort);
    void this.#ownAgent?.destroy().catch((e: unknown) => debug('closing the agent failed: %O', e));
    for (const state of this.#iterators) {
      this.#iterators.delete(state);
      if (state.waiting === undefined) continue;
      const { resolve, reject } = state.waiting;
      state.waiting = undefined;
      if (error !== undefined) reject(error);
      else resolve({ value: undefined, done: true });
    }
    if (error !== undefined) this.#rejectClosed(error);
    else this.#resolveClosed();
  }

  async #run(): Promise<void> {
    let failureCount = 0;
    let hasOpened = false;
    while (this.#readyState !== CLOSED) {
      const outcome = await this.#connect();
      if (this.#readyState === CLOSED || outcome.kind === 'closed') return;
      if (this.#readyState === OPEN) hasOpened = true;
      let delayMs: number;
      let error: Error | undefined;
      if (outcome.kind === 'no-content') {
        // [spec] Clients will reconnect if the connection is closed; a client can be told to stop
        // reconnecting using the HTTP 204 No Content response code.
        this.#readyState = CLOSED;
        this.#dispatchError(outcome.error, false);
        this.#stop(undefined);
        return;
      }
      if (outcome.kind === 'ended') {
        // [spec] When a user agent is to reestablish the connection: wait a delay equal to the
        // reconnection time of the event source.
        failureCount = 0;
        error = undefined;
        delayMs = this.#retryMs;
        if (!this.#reconnect) {
          // [non-spec] Reconnection turned off: the end of the stream is the end.
          this.#readyState = CLOSED;
          this.#dispatchError(undefined, false);
          this.#stop(undefined);
          return;
        }
      } else {
        error = outcome.error;
        // [non-spec] 500, 502, 503, 504, a dropped or silent connection, and (once a stream was
        // open) an unreachable server are passing trouble; anything else fails the connection
        // unless `keepReconnecting` is on.
        const isPassing =
          outcome.isPassing ||
          (hasOpened &&
            !(error instanceof ContentTypeError) &&
            !(error instanceof HttpStatusError));
        if (!this.#reconnect || (!isPassing && !this.#keepReconnecting)) {
          // [spec] When a user agent is to fail the connection, the user agent must queue a task
          // which sets the readyState attribute to CLOSED and fires an event named error.
          this.#readyState = CLOSED;
          this.#dispatchError(error, false);
          this.#stop(error);
          return;
        }
        failureCount++;
        // [spec] Optionally, wait some more. In particular, if the previous attempt failed, then
        // user agents might introduce an exponential backoff delay.
        // [non-spec] Capped exponential backoff with jitter, and at least what Retry-After asks.
        const base = Math.max(this.#retryMs, MIN_BACKOFF_MS);
        const capped = Math.min(this.#maxRetryMs, base * 2 ** Math.min(failureCount - 1, 30));
        delayMs = Math.round(capped / 2 + (Math.random() * capped) / 2);
        if (outcome.retryAfterMs !== undefined) delayMs = Math.max(delayMs, outcome.retryAfterMs);
      }
      // [spec] Set the readyState attribute to CONNECTING. Fire an event named error.
      this.#readyState = CONNECTING;
      this.#dispatchError(error, true, delayMs);
      if (this.#readyState === CLOSED) return;
      await new Promise<void>((resolve) => {
        this.#wakeUp = resolve;
        this.#retryTimer = setTimeout(resolve, delayMs);
      });
      this.#wakeUp = undefined;
      this.#retryTimer = undefined;
    }
  }

  // One connection attempt, from the request to the end of the stream.
  async #connect(): Promise<Outcome> {
    const attempt = new AbortController();
    this.#attempt = attempt;
    const headers = { ...this.#headers };
    const lastEventId = this.#parser.lastEventId;
    // [spec] If the event source's last event ID string is not the empty string, set
    // `Last-Event-ID`/last event ID string, encoded as UTF-8, in request's header list.
    if (lastEventId !== '') headers['last-event-id'] = lastEventId;
    debug('connecting to %s (Last-Event-ID: %s)', this.url, lastEventId || '-');
    let connectTimer: NodeJS.Timeout | undefined;
    if (this.#connectTimeoutMs > 0) {
      connectTimer = setTimeout(() => {
        attempt.abort(new Error(`connecting took longer than ${this.#connectTimeoutMs} ms`));
      }, this.#connectTimeoutMs);
    }
    let response: Dispatcher.ResponseData;
    try {
      response = await request(this.url, {
        method: 'GET',
        headers,
        dispatcher: this.#dispatcher,
        signal: attempt.signal,
        bodyTimeout: 0,
        headersTimeout: 0,
      });
    } catch (error) {
      if (this.#attempt !== attempt) return { kind: 'closed' };
      return { kind: 'failed', error: toError(error), isPassing: false };
    } finally {
      clearTimeout(connectTimer);
    }
    if (this.#attempt !== attempt) {
      discardBody(response.body);
      return { kind: 'closed' };
    }
    const { statusCode, body } = response;
    if (statusCode === 204) {
      discardBody(body);
      return { kind: 'no-content', error: new HttpStatusError(204, '', this.url) };
    }
    if (statusCode !== 200) {
      // [spec] If res's status is not 200 ... then fail the connection.
      const text = await readText(body);
      if (this.#attempt !== attempt) return { kind: 'closed' };
      return {
        kind: 'failed',
        error: new HttpStatusError(statusCode, text, this.url),
        isPassing: PASSING_STATUSES.has(statusCode),
        retryAfterMs: parseRetryAfter(response.headers['retry-after']),
      };
    }
    const contentType = String(response.headers['content-type'] ?? '');
    // [spec] ... or if res's `Content-Type` is not `text/event-stream`, then fail the connection.
    if (contentType.split(';', 1)[0]?.trim().toLowerCase() !== 'text/event-stream') {
      discardBody(body);
      return {
        kind: 'failed',
        error: new ContentTypeError(contentType, this.url),
        isPassing: false,
      };
    }

    // [spec] Otherwise, announce the connection: set the readyState attribute to OPEN and fire an
    // event named open.
    this.#readyState = OPEN;
    this.#body = body;
    this.#parser.reset();
    debug('open: %s', this.url);
    this.dispatchEvent(new Event('open'));
    if (this.#attempt !== attempt) return { kind: 'closed' };
    if (this.#isPaused || this.#isPausedByCaller) body.pause();

    const parser = this.#parser;
    const readTimeoutMs = this.#readTimeoutMs;
    let lastByteAt = readTimeoutMs > 0 ? Date.now() : 0;
    let readTimer: NodeJS.Timeout | undefined;
    const outcome = await new Promise<Outcome>((resolve) => {
      if (readTimeoutMs > 0) {
        // One timer that re-arms itself for the time left, instead of a timer reset per chunk.
        const check = (): void => {
          // A paused stream is silent because we stopped reading, not because the server did.
          if (this.#isPaused || this.#isPausedByCaller) lastByteAt = Date.now();
          const silentMs = Date.now() - lastByteAt;
          if (silentMs >= readTimeoutMs) {
            resolve({
              kind: 'failed',
              error: new ReadTimeoutError(readTimeoutMs),
              isPassing: true,
            });
            discardBody(body);
          } else {
            readTimer = setTimeout(check, readTimeoutMs - silentMs);
          }
        };
        readTimer = setTimeout(check, readTimeoutMs);
      }
      body.on('data', (chunk: Buffer) => {
        if (readTimeoutMs > 0) lastByteAt = Date.now();
        parser.feed(chunk);
      });
      body.once('end', () => resolve({ kind: 'ended' }));
      body.once('error', (error: Error) => {
        resolve({ kind: 'failed', error, isPassing: true });
      });
      body.once('close', () => resolve({ kind: 'ended' }));
    });
    clearTimeout(readTimer);
    // [spec] If the file ends in the middle of an event, before the final empty line, the
    // incomplete event is not dispatched.
    parser.end();
    if (this.#attempt !== attempt) return { kind: 'closed' };
    this.#attempt = undefined;
    this.#body = undefined;
    debug('stream ended (%s)', outcome.kind);
    return outcome;
  }
}

function checkMs(value: number | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`\`${name}\` must be a non-negative integer, got ${value}`);
  }
  return value;
}

function toError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/**
 * Drops a response body. Destroying an unfinished undici body emits an abort error; nobody wants
 * it (we are the ones giving up), but without a listener it would crash the process.
 */
function discardBody(body: Dispatcher.ResponseData['body']): void {
  body.on('error', (error: Error) => debug('discarded body: %s', error.message));
  body.destroy();
}

// Reads at most MAX_ERROR_BODY bytes of an error response, for the message.
async function readText(body: Dispatcher.ResponseData['body']): Promise<string> {
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
