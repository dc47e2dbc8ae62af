/**
 * The listener: what `createListener()` gives its user. The parts it is made of:
 *
 * - `options.ts`: defaults and checks, once.
 * - `hub.ts`: the core that decides every answer; `answers.ts` (headers, CORS, the publish
 *   secret) and `stats.ts` beside it.
 * - `transports/`: node:http (and Express), the fast path for simple POSTs, HTTP/2.
 * - `server.ts`: the server `listen()` makes, and how it stops.
 * - the broker (`memory-broker.ts`, `redis/`): tokens, history, ids, delivery.
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html
 */
import { PublishError } from '../errors.js';
import type { EventClass } from '../events.js';
import type { Presence, PublishOutcome } from './broker.js';
import { Hub } from './hub.js';
import { resolveListenerOptions, type ListenerOptions } from './options.js';
import { ServerRunner, type ListenerServer } from './server.js';
import type { ListenerStats } from './stats.js';
import { createNodeHttpHandler, type ListenerHandler } from './transports/node-http.js';

export { checkEventClass, type ListenerOptions } from './options.js';
export type { ListenerStats } from './stats.js';
export type { ListenerHandler } from './transports/node-http.js';
export type { ListenerServer } from './server.js';

/**
 * Options for tests only: not part of the public interface.
 * @internal
 */
export interface InternalListenerOptions extends ListenerOptions {
  /** node:http's `keepAliveTimeout` for {@link Listener.listen} (also the fast path's). */
  keepAliveTimeoutMs?: number | undefined;
}

/** What {@link createListener} returns. */
export interface Listener {
  /** The request handler, for `http.createServer(handler)`, `https` or Express. */
  readonly handler: ListenerHandler;
  /**
   * The server made by {@link listen}, if it was called: an `http.Server` over plain HTTP (with the
   * fast path it listens as usual, but simple POSTs never reach its `'request'` event, see
   * {@link ListenerOptions.fastPath}); with `tls`, an `Http2SecureServer` serving HTTP/2 and
   * HTTP/1.1, or an `https.Server` with `http2: false`.
   */
  readonly server: ListenerServer | undefined;
  /** The Event class in use. */
  readonly eventClass: EventClass;
  /**
   * Publishes an event from code, as a POST would.
   * @param token The target token.
   * @param action The action (must be in the class's ACTIONS).
   * @param value The data: a string, or any JSON value for the JSON classes.
   * @returns Status `200` (delivered) or `202` (kept), the id and the subscriber count.
   * @throws PublishError with the HTTP status (`400`, `404`) the POST would have had.
   */
  publish(token: string, action: string, value?: unknown): Promise<PublishOutcome>;
  /** The original library's name for {@link publish}. */
  bufferEvent(token: string, action: string, value?: unknown): Promise<PublishOutcome>;
  /**
   * Starts the listener's own server (see {@link server}).
   * @param port Defaults to `8888`; `0` picks a free port.
   * @param host Defaults to `0.0.0.0`.
   * @returns The URL it listens on, with the real port.
   */
  listen(port?: number, host?: string): Promise<string>;
  /** Stops accepting, ends every stream and closes the server (connections are cut after 500 ms). */
  close(): Promise<void>;
  /** The counters of `GET /stats`. */
  stats(): ListenerStats;
  /**
   * Whether a token is connected now (in every process, with a shared broker), as
   * `GET /stats/<token>` says.
   */
  presence(token: string): Promise<Presence>;
  /** The Prometheus scrape of `GET /metrics`; rejects when `metrics` is off. */
  metrics(): Promise<string>;
}

/**
 * Creates a listener.
 * @param options See {@link ListenerOptions}.
 * @returns The handler and the means to publish, listen and close.
 * @throws TypeError or RangeError for invalid options.
 */
export function createListener(options: ListenerOptions = {}): Listener {
  const hub = new Hub(resolveListenerOptions(options));
  const handler = createNodeHttpHandler(hub);
  let runner: ServerRunner | undefined;

  async function publish(
    token: string,
    action: string,
    value: unknown = '',
  ): Promise<PublishOutcome> {
    const body = typeof value === 'string' ? value : JSON.stringify(value);
    const outcome = await hub.accept(token, action, body);
    if (outcome.status === 404) throw new PublishError(404, 'Target is not connected');
    return outcome;
  }

  async function listen(port = 8888, host = '0.0.0.0'): Promise<string> {
    if (runner !== undefined) throw new Error('The listener is already listening');
    runner = new ServerRunner(
      hub,
      handler,
      (options as InternalListenerOptions).keepAliveTimeoutMs,
    );
    return runner.listen(port, host, hub.options.prefix);
  }

  async function close(): Promise<void> {
    if (hub.isClosing) return;
    if (runner === undefined) await hub.close();
    else await runner.close(() => hub.close());
  }

  return {
    handler,
    get server() {
      return runner?.server;
    },
    eventClass: hub.options.eventClass,
    publish,
    bufferEvent: publish,
    listen,
    close,
    stats: () => hub.stats(),
    presence: async (token) => hub.broker.presence(token),
    metrics: async () => {
      if (hub.metrics === undefined) throw new Error('metrics are off: pass `metrics: true`');
      return (await hub.metrics.scrape()).body;
    },
  };
}
