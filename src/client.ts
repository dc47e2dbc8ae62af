/**
 * EventSourceClient: a reconnecting Server-Sent Events client for Node.js, built on undici for
 * HTTP and the package's own WHATWG parser. It behaves like a browser's `EventSource` (the
 * reference), then adds what command-line and server-side users need: headers, basic auth, TLS
 * options, timeouts, a maximum event size, backoff on passing server trouble, and an async iterator.
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html
 */
import type { Readable } from 'node:stream';
import { request, type Dispatcher } from 'undici';
import { debugClient as debug } from './debug.js';
import {
  ContentEncodingError,
  ContentTypeError,
  HttpStatusError,
  ReadTimeoutError,
} from './errors.js';
import { createParser, type ParsedEvent, type Parser } from './wire/parser.js';
import { clampRetryMs } from './wire/retry.js';
import {
  EventSourceErrorEvent,
  EventSourceMessageEvent,
  type ClientEvent,
} from './client/events.js';
import {
  addMessageListener,
  removeMessageListener,
  unregister,
  type EventSourceListener,
  type Handler,
  type Listener,
  type MessageListeners,
  type Registration,
} from './client/listeners.js';
import {
  resolveOptions,
  type EventSourceClientOptions,
  type ResolvedClientOptions,
} from './client/options.js';
import { reconnectDelayMs } from './client/backoff.js';
import {
  decodeBody,
  discardBody,
  isEventStream,
  readFailure,
  type Outcome,
} from './client/response.js';

export { EventSourceErrorEvent, EventSourceMessageEvent };
export type { ClientEvent, EventSourceClientOptions, EventSourceListener };

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
  readonly #options: ResolvedClientOptions;
  // Apart from #options, as it is read for every event.
  readonly #origin: string;
  readonly #parser: Parser;
  readonly #onEvent: ((event: ClientEvent) => void) | undefined;
  readonly #signal: AbortSignal | undefined;
  readonly #iterators = new Set<IteratorState>();
  // Listeners of event types other than `open` and `error`, called directly (see
  // EventSourceMessageEvent).
  readonly #messageListeners: MessageListeners = new Map();
  readonly #handlers = new Map<string, Handler>();
  #attempt: AbortController | undefined;
  #body: Readable | undefined;
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
    const resolved = resolveOptions(url, options);
    this.#options = resolved;
    this.url = resolved.url;
    this.#origin = resolved.origin;
    // [non-spec] Held within MIN_RETRY_MS and MAX_RETRY_MS (see wire/retry.ts), so that `retryMs`
    // and the delays reported in `error` events are the ones waited.
    this.#retryMs = clampRetryMs(resolved.retryMs);
    this.#onEvent = options.onEvent;
    this.#parser = createParser(
      {
        onEvent: this.#handleEvent,
        // [spec] If the field value consists of only ASCII digits, then interpret the field value
        // as an integer in base ten, and set the event stream's reconnection time to that integer.
        onRetry: (ms) => {
          this.#retryMs = clampRetryMs(ms);
        },
        onError: (error) => this.#dispatchError(error, false),
      },
      // The parser holds the starting ID, as if an earlier stream had carried it (and refuses
      // one with CR, LF or NUL with a TypeError).
      { maxEventLength: resolved.maxEventLength, lastEventId: options.lastEventId },
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

  /**
   * The current reconnection time in milliseconds (the server's `retry:` overrides the option),
   * within 100 ms and 24 h: a value outside is clamped to the nearer bound.
   */
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
    addMessageListener(this.#messageListeners, type, listener as EventSourceListener, options);
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
    removeMessageListener(this.#messageListeners, type, listener as EventSourceListener, options);
  }

  // Calls the listeners of one event type with a plain MessageEvent-shaped object.
  #dispatchMessage(registrations: Registration[], event: EventSourceMessageEvent): void {
    // An indexed loop: until V8 optimizes this function, for...of costs an iterator per event.
    for (let i = 0; i < registrations.length; i++) {
      const registration = registrations[i] as Registration;
      if (registration.once) unregister(this.#messageListeners, event.type, registration);
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
    void this.#options.ownAgent
      ?.destroy()
      .catch((e: unknown) => debug('closing the agent failed: %O', e));
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
        failureCount = 0;
        error = undefined;
        delayMs = reconnectDelayMs(this.#retryMs, this.#options.maxRetryMs, 0, undefined);
        if (!this.#options.reconnect) {
          // [non-spec] Reconnection turned off: the end of the stream is the end.
          this.#readyState = CLOSED;
          this.#dispatchError(undefined, false);
          this.#stop(undefined);
          return;
        }
      } else {
        error = outcome.error;
        // [non-spec] 500, 502, 503, 504, a dropped or silent connection (or one whose compressed
        // body stopped decoding), and (once a stream was open) an unreachable server are passing
        // trouble; anything else, a Content-Encoding the client does not decode among them, fails
        // the connection unless `keepReconnecting` is on.
        const isPassing =
          outcome.isPassing ||
          (hasOpened &&
            !(error instanceof ContentTypeError) &&
            !(error instanceof ContentEncodingError && error.cause === undefined) &&
            !(error instanceof HttpStatusError));
        if (!this.#options.reconnect || (!isPassing && !this.#options.keepReconnecting)) {
          // [spec] When a user agent is to fail the connection, the user agent must queue a task
          // which sets the readyState attribute to CLOSED and fires an event named error.
          this.#readyState = CLOSED;
          this.#dispatchError(error, false);
          this.#stop(error);
          return;
        }
        failureCount++;
        delayMs = reconnectDelayMs(
          this.#retryMs,
          this.#options.maxRetryMs,
          failureCount,
          outcome.retryAfterMs,
        );
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
    const { connectTimeoutMs } = this.#options;
    let connectTimer: NodeJS.Timeout | undefined;
    if (connectTimeoutMs > 0) {
      connectTimer = setTimeout(() => {
        attempt.abort(new Error(`connecting took longer than ${connectTimeoutMs} ms`));
      }, connectTimeoutMs);
    }
    let response: Dispatcher.ResponseData;
    try {
      response = await this.#request(attempt.signal);
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
    if (!isEventStream(response)) {
      const failure = await readFailure(response, this.url);
      return this.#attempt === attempt ? failure : { kind: 'closed' };
    }
    const body = decodeBody(response, this.url);
    if (body instanceof ContentEncodingError) {
      discardBody(response.body);
      return { kind: 'failed', error: body, isPassing: false };
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

    const outcome = await this.#read(body);
    // [spec] If the file ends in the middle of an event, before the final empty line, the
    // incomplete event is not dispatched.
    this.#parser.end();
    if (this.#attempt !== attempt) return { kind: 'closed' };
    this.#attempt = undefined;
    this.#body = undefined;
    debug('stream ended (%s)', outcome.kind);
    return outcome;
  }

  // Sends the GET of one connection attempt; the promise settles with the response headers.
  #request(signal: AbortSignal): Promise<Dispatcher.ResponseData> {
    const headers = { ...this.#options.headers };
    const lastEventId = this.#parser.lastEventId;
    // [spec] If the event source's last event ID string is not the empty string, set
    // `Last-Event-ID`/last event ID string, encoded as UTF-8, in request's header list.
    if (lastEventId !== '') headers['last-event-id'] = lastEventId;
    debug('connecting to %s (Last-Event-ID: %s)', this.url, lastEventId || '-');
    return request(this.url, {
      method: 'GET',
      headers,
      dispatcher: this.#options.dispatcher,
      signal,
      bodyTimeout: 0,
      headersTimeout: 0,
    });
  }

  // Feeds an open stream to the parser until it ends, fails, or stays silent for the read timeout.
  #read(body: Readable): Promise<Outcome> {
    const parser = this.#parser;
    const readTimeoutMs = this.#options.readTimeoutMs;
    let lastByteAt = readTimeoutMs > 0 ? Date.now() : 0;
    let readTimer: NodeJS.Timeout | undefined;
    return new Promise<Outcome>((resolve) => {
      const finish = (outcome: Outcome): void => {
        clearTimeout(readTimer);
        resolve(outcome);
      };
      if (readTimeoutMs > 0) {
        // One timer that re-arms itself for the time left, instead of a timer reset per chunk.
        const check = (): void => {
          // A paused stream is silent because we stopped reading, not because the server did.
          if (this.#isPaused || this.#isPausedByCaller) lastByteAt = Date.now();
          const silentMs = Date.now() - lastByteAt;
          if (silentMs >= readTimeoutMs) {
            finish({ kind: 'failed', error: new ReadTimeoutError(readTimeoutMs), isPassing: true });
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
      body.once('end', () => finish({ kind: 'ended' }));
      body.once('error', (error: Error) => {
        finish({ kind: 'failed', error, isPassing: true });
      });
      body.once('close', () => finish({ kind: 'ended' }));
    });
  }
}

function toError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
