/**
 * The listener: an HTTP request handler that speaks the original library's protocol.
 *
 * - `GET /<LISTEN>/<token>` opens an event stream for the token.
 * - `POST /<action>/<token>` publishes the body as an event (or ends the streams, or sends `retry:`).
 *
 * It owns sockets, timers and HTTP status codes; the broker owns tokens, history and delivery.
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html
 */
import http from 'node:http';
import https from 'node:https';
import { once } from 'node:events';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { debugListener as debug } from '../debug.js';
import { PublishError, flattenError } from '../errors.js';
import { DataFormatError, StringEvent, type EventClass } from '../events.js';
import { assertFieldValue, encodeComment } from '../wire/encoder.js';
import type { Broker, BrokerOptions, PublishOutcome } from './broker.js';
import { Chunk } from './chunk.js';
import { renderDemoPage } from './demo.js';
import { installFront, type Answer, type Front, type FrontApp } from './front.js';
import { MemoryBroker } from './memory-broker.js';
import { BodyAssembler, BodyReclaimer, garbageCollector } from './reclaim.js';
import { normalizePrefix, parseTarget } from './routes.js';
import { Subscriber, type SubscriberContext } from './subscriber.js';

/** Options for {@link createListener}. */
export interface ListenerOptions extends BrokerOptions {
  /** The Event class: what a POST becomes on the wire. Defaults to `StringEvent`. */
  eventClass?: EventClass | undefined;
  /** Milliseconds between keepalive comments on an idle stream; `0` turns them off. Defaults to `15000`. */
  keepalive?: number | undefined;
  /** Bytes that may wait for one subscriber before it is cut off. Defaults to 1 MiB. */
  maxBuffer?: number | undefined;
  /** Largest POST body accepted, in bytes (larger ones get `413`). Defaults to 1 MiB. */
  maxBody?: number | undefined;
  /** Mounts every route under `/<prefix>/`. Defaults to none. */
  prefix?: string | undefined;
  /** Origins allowed by CORS (`*` for any). Defaults to none (no CORS headers). */
  cors?: readonly string[] | string | undefined;
  /** When set, POST needs `Authorization: Bearer <publishSecret>` (else `401`). */
  publishSecret?: string | undefined;
  /** Open streams allowed at once; past it, `503` with `Retry-After`. Defaults to no limit. */
  maxConnections?: number | undefined;
  /** Serves a small demo page at `/`. Defaults to false. */
  demo?: boolean | undefined;
  /** A broker to use instead of the in-memory one (for example a Redis broker). */
  broker?: Broker | undefined;
  /**
   * Once large request bodies (16 KiB or more each) add up to half the JavaScript heap left live
   * by the last collection (at least 4 MiB), ask V8 for a full garbage collection, so that their
   * buffers and the history's old events go back to the allocator instead of piling up (see
   * `reclaim.ts`). Defaults to true; small events never trigger it.
   */
  reclaimBodies?: boolean | undefined;
  /** TLS options for {@link Listener.listen}: with `key` and `cert`, it serves HTTPS. */
  tls?: { key: string | Buffer; cert: string | Buffer } | undefined;
  /**
   * Over plain HTTP, {@link Listener.listen} reads simple POSTs (`Content-Length` bodies to an
   * event route) itself and hands every other connection to node:http at its first other request,
   * which costs about a quarter less CPU per POST (see `front.ts`). The answers are the same; what
   * differs is that those POSTs emit no `'request'` event on {@link Listener.server}. `false`
   * leaves every request to node:http. Has no effect with `tls` or on {@link Listener.handler}.
   * Defaults to true.
   */
  fastPath?: boolean | undefined;
}

/**
 * Options for tests only: not part of the public interface.
 * @internal
 */
export interface InternalListenerOptions extends ListenerOptions {
  /** node:http's `keepAliveTimeout` for {@link Listener.listen} (also the fast path's). */
  keepAliveTimeoutMs?: number | undefined;
}

/** Counters returned by `GET /stats`. */
export interface ListenerStats {
  streams: number;
  tokens: number;
  eventsAccepted: number;
  eventsDelivered: number;
  eventsDropped: number;
  subscribersCutOff: number;
  bytesBuffered: number;
  uptimeSeconds: number;
  [key: string]: number | string | boolean;
}

/** A handler that also works as Express/Connect middleware (it calls `next()` for other paths). */
export type ListenerHandler = (
  req: http.IncomingMessage,
  res: http.ServerResponse,
  next?: (error?: unknown) => void,
) => void;

/** What {@link createListener} returns. */
export interface Listener {
  /** The request handler, for `http.createServer(handler)`, `https` or Express. */
  readonly handler: ListenerHandler;
  /**
   * The server made by {@link listen}, if it was called. With the fast path it listens as usual,
   * but simple POSTs never reach its `'request'` event (see {@link ListenerOptions.fastPath}).
   */
  readonly server: http.Server | undefined;
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
   * Starts an HTTP(S) server with the handler.
   * @param port Defaults to `8888`; `0` picks a free port.
   * @param host Defaults to `0.0.0.0`.
   * @returns The URL it listens on, with the real port.
   */
  listen(port?: number, host?: string): Promise<string>;
  /** Stops accepting, ends every stream and closes the server (connections are cut after 500 ms). */
  close(): Promise<void>;
  /** The counters of `GET /stats`. */
  stats(): ListenerStats;
}

const TEXT = 'text/plain; charset=utf-8';
const KEEPALIVE = new Chunk(encodeComment());
KEEPALIVE.share();

/**
 * Checks a number option.
 * @throws RangeError naming the option and the value received.
 */
function checkInteger(name: string, value: number, min: number, unit: string): number {
  if (!Number.isSafeInteger(value) || value < min) {
    const what = min === 0 ? 'a non-negative integer' : `an integer >= ${min}`;
    throw new RangeError(`\`${name}\` must be ${what}${unit ? ` (${unit})` : ''}, got ${value}`);
  }
  return value;
}

/**
 * Refuses an Event class whose actions or ids could break the wire format.
 * @throws TypeError naming the class and the value.
 */
export function checkEventClass(eventClass: EventClass): void {
  const names: [string, unknown][] = [
    ['LISTEN', eventClass.LISTEN],
    ['FINISH', eventClass.FINISH],
    ['RETRY', eventClass.RETRY],
    ...eventClass.ACTIONS.map((action, i): [string, unknown] => [`ACTIONS[${i}]`, action]),
  ];
  for (const [name, value] of names) {
    if (typeof value !== 'string' || value === '' || /[\r\n\0/]/.test(value)) {
      throw new TypeError(
        `${eventClass.name}.${name} must be a non-empty string without CR, LF, NUL or "/", got ${JSON.stringify(value)}`,
      );
    }
  }
  // A probe event shows whether the class's ids can be written at all.
  let probe;
  try {
    probe = new eventClass('probe', eventClass.ACTIONS[0] ?? 'ping', '0');
  } catch {
    return; // The class refuses this body; its ids are checked per event instead.
  }
  probe.seq = 1;
  const id = probe.id;
  if (id !== undefined) {
    try {
      assertFieldValue('id', id);
    } catch (error) {
      throw new TypeError(
        `${eventClass.name} makes ids that break the wire format: ${(error as Error).message}`,
        { cause: error },
      );
    }
  }
}

/**
 * Creates a listener.
 * @param options See {@link ListenerOptions}.
 * @returns The handler and the means to publish, listen and close.
 * @throws TypeError or RangeError for invalid options.
 */
export function createListener(options: ListenerOptions = {}): Listener {
  const eventClass = options.eventClass ?? StringEvent;
  checkEventClass(eventClass);
  const keepaliveMs = checkInteger('keepalive', options.keepalive ?? 15000, 0, 'milliseconds');
  const maxBody = checkInteger('maxBody', options.maxBody ?? 1024 * 1024, 0, 'bytes');
  const maxBuffer = checkInteger('maxBuffer', options.maxBuffer ?? 1024 * 1024, 0, 'bytes');
  const maxConnections = options.maxConnections ?? Infinity;
  if (maxConnections !== Infinity) checkInteger('maxConnections', maxConnections, 1, '');
  checkInteger('history', options.history ?? 1000, 0, 'events');
  checkInteger('historyBytes', options.historyBytes ?? 8 * 1024 * 1024, 0, 'bytes');
  checkInteger('graceMs', options.graceMs ?? 60000, 0, 'milliseconds');
  if (options.gapEvent !== undefined) assertFieldValue('gapEvent', options.gapEvent);
  const prefix = normalizePrefix(options.prefix);
  const corsOrigins = options.cors === undefined ? [] : [options.cors].flat();
  const isAnyOrigin = corsOrigins.includes('*');
  const secretDigest =
    options.publishSecret === undefined ? undefined : sha256(`Bearer ${options.publishSecret}`);
  const broker = options.broker ?? new MemoryBroker(options);
  const actions = new Set(eventClass.ACTIONS);
  const tooLargeMessage = `Request body is larger than ${maxBody} bytes`;
  const startedAt = Date.now();
  // The collector is looked up at the first collection: most listeners never see a large body.
  const reclaimer =
    options.reclaimBodies === false ? undefined : new BodyReclaimer(() => garbageCollector()?.());
  const bodyAssembler = new BodyAssembler();

  const context: SubscriberContext = {
    maxBuffer,
    headers: {
      'Content-Type': 'text/event-stream',
      'Cache-Control': 'no-cache, no-transform',
      'X-Accel-Buffering': 'no',
    },
    streams: new Set(),
    corkSingleWrites: false,
    delivered: 0,
    dropped: 0,
    cutOff: 0,
  };

  // One shared timer for every stream: a stream that had no write since the last tick gets a comment.
  const keepaliveTimer =
    keepaliveMs > 0
      ? setInterval(() => {
          for (const subscriber of context.streams) {
            if (subscriber.isIdle) subscriber.write(KEEPALIVE);
            subscriber.isIdle = true;
          }
        }, keepaliveMs).unref()
      : undefined;

  let server: http.Server | undefined;
  let front: Front | undefined;
  let isClosing = false;

  function isAllowedOrigin(origin: string | undefined): origin is string {
    if (origin === undefined || corsOrigins.length === 0) return false;
    return isAnyOrigin || corsOrigins.includes(origin);
  }

  function corsHeaders(req: http.IncomingMessage): Record<string, string> | undefined {
    const origin = req.headers.origin;
    if (!isAllowedOrigin(origin)) return undefined;
    return {
      'Access-Control-Allow-Origin': origin,
      'Access-Control-Allow-Credentials': 'true',
      Vary: 'Origin',
    };
  }

  /**
   * The headers of a reply with a complete body, as a flat list (cheaper for Node than an object):
   * Content-Type, Content-Length, CORS for `origin`, then `extraHeaders`. Both transports use it.
   */
  function replyHeaders(
    origin: string | undefined,
    status: number,
    body: string,
    extraHeaders?: readonly string[],
  ): string[] {
    const headers = [
      'Content-Type',
      status < 300 && body.charCodeAt(0) === 123 ? 'application/json' : TEXT,
      'Content-Length',
      String(Buffer.byteLength(body)),
    ];
    if (isAllowedOrigin(origin)) {
      headers.push(
        'Access-Control-Allow-Origin',
        origin,
        'Access-Control-Allow-Credentials',
        'true',
        'Vary',
        'Origin',
      );
    }
    if (extraHeaders !== undefined) headers.push(...extraHeaders);
    return headers;
  }

  /** Answers a request with a complete body, through node:http. */
  function reply(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    status: number,
    body: string,
    extraHeaders?: readonly string[],
  ): void {
    if (res.headersSent) {
      res.end();
      return;
    }
    res.writeHead(status, replyHeaders(req.headers.origin, status, body, extraHeaders));
    res.end(body);
  }

  function writeAnswer(req: http.IncomingMessage, res: http.ServerResponse, answer: Answer): void {
    reply(req, res, answer.status, answer.body, answer.headers);
  }

  function isAuthorized(authorization: string | undefined): boolean {
    if (secretDigest === undefined) return true;
    // Compare digests: equal lengths, and the time taken says nothing about the secret.
    return authorization !== undefined && timingSafeEqual(sha256(authorization), secretDigest);
  }

  // The answers to a POST refused before its body is read: one object each, made once.
  const unauthorized: Answer = {
    status: 401,
    body: 'Unauthorized: a valid Bearer secret is required',
    headers: ['WWW-Authenticate', 'Bearer'],
  };
  const unknownAction: Answer = { status: 404, body: 'Unknown action requested' };
  // Say so at once and close the connection rather than read a body that will be refused.
  const tooLarge: Answer = { status: 413, body: tooLargeMessage, headers: ['Connection', 'close'] };
  const notConnected: Answer = { status: 404, body: 'Target is not connected' };

  /**
   * The answer to a POST that is refused before its body is read (`401`, `404` for an unknown
   * action, `413` when the declared length is too large), or undefined to read the body.
   */
  function refusePost(
    action: string,
    authorization: string | undefined,
    declaredLength: number,
  ): Answer | undefined {
    if (!isAuthorized(authorization)) return unauthorized;
    if (!actions.has(action)) return unknownAction;
    if (declaredLength > maxBody) return tooLarge;
    return undefined;
  }

  /**
   * Turns a POST into a broker call. Synchronous for the in-memory broker (no promise or microtask
   * per event); a broker that needs I/O returns a promise.
   * @throws PublishError for a refused action or body.
   */
  function accept(
    token: string,
    action: string,
    body: string,
  ): PublishOutcome | Promise<PublishOutcome> {
    if (!actions.has(action)) throw new PublishError(404, 'Unknown action requested');
    if (action === eventClass.FINISH) return broker.finish(token);
    if (action === eventClass.RETRY) {
      const text = body.trim();
      if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(Number(text))) {
        throw new PublishError(
          400,
          `Data is not properly formatted: retry must be a non-negative integer (milliseconds), got ${JSON.stringify(body)}`,
        );
      }
      return broker.retry(token, Number(text));
    }
    let event;
    try {
      event = new eventClass(token, action, body);
    } catch (error) {
      if (error instanceof DataFormatError)
        throw new PublishError(400, error.message, { cause: error });
      throw error;
    }
    return broker.publish(event);
  }

  async function publish(
    token: string,
    action: string,
    value: unknown = '',
  ): Promise<PublishOutcome> {
    const body = typeof value === 'string' ? value : JSON.stringify(value);
    const outcome = await accept(token, action, body);
    if (outcome.status === 404) throw new PublishError(404, 'Target is not connected');
    return outcome;
  }

  // The JSON of each action name, made once: every 2xx reply carries it.
  const actionJson = new Map(eventClass.ACTIONS.map((action) => [action, JSON.stringify(action)]));

  function outcomeAnswer(token: string, action: string, outcome: PublishOutcome): Answer {
    if (outcome.status === 404) return notConnected;
    const id = outcome.id === null ? 'null' : JSON.stringify(outcome.id);
    return {
      status: outcome.status,
      body: `{"token":${JSON.stringify(token)},"action":${actionJson.get(action)},"id":${id},"subscribers":${outcome.subscribers}}`,
    };
  }

  function errorAnswer(token: string, action: string, error: unknown): Answer {
    if (error instanceof PublishError) return { status: error.status, body: error.message };
    debug('POST %s/%s failed: %s', action, token, flattenError(error));
    const status = (error as { status?: unknown }).status;
    return typeof status === 'number'
      ? { status, body: (error as Error).message }
      : { status: 500, body: 'Internal error' };
  }

  /**
   * Publishes a complete POST body and says what to answer. Synchronous for the in-memory broker;
   * the promise of a broker that needs I/O never rejects (errors become answers too).
   */
  function publishBody(token: string, action: string, body: string): Answer | Promise<Answer> {
    let outcome: PublishOutcome | Promise<PublishOutcome>;
    try {
      outcome = accept(token, action, body);
    } catch (error) {
      return errorAnswer(token, action, error);
    }
    if (outcome instanceof Promise) {
      return outcome.then(
        (result) => outcomeAnswer(token, action, result),
        (error: unknown) => errorAnswer(token, action, error),
      );
    }
    return outcomeAnswer(token, action, outcome);
  }

  function handlePost(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    token: string,
    action: string,
  ): void {
    const refusal = refusePost(
      action,
      req.headers.authorization,
      Number(req.headers['content-length']),
    );
    if (refusal !== undefined) {
      writeAnswer(req, res, refusal);
      req.resume();
      return;
    }
    let first: Buffer | undefined;
    let rest: Buffer[] | undefined;
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBody) {
        if (size > maxBody * 4 + 65536) req.destroy();
      } else if (first === undefined) first = chunk;
      else (rest ??= [first]).push(chunk);
    });
    req.on('end', () => {
      try {
        finishPost(req, res, token, action, first, rest, size);
      } finally {
        // Every body counts, refused or not: its buffers are garbage now either way.
        first = rest = undefined;
        reclaimer?.handled(size);
      }
    });
    // No 'error' listener: an aborted request without one is destroyed quietly by Node, and the
    // reply it would have had is no longer wanted.
  }

  /** Answers a POST once its body is complete: `413` past --max-body, else publishes it. */
  function finishPost(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    token: string,
    action: string,
    first: Buffer | undefined,
    rest: Buffer[] | undefined,
    size: number,
  ): void {
    if (size > maxBody) {
      writeAnswer(req, res, tooLarge);
      return;
    }
    const body =
      rest !== undefined
        ? bodyAssembler.decode(rest, size)
        : first === undefined
          ? ''
          : first.toString('utf8');
    const answer = publishBody(token, action, body);
    if (answer instanceof Promise) answer.then((result) => writeAnswer(req, res, result));
    else writeAnswer(req, res, answer);
  }

  function handleSubscribe(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    token: string,
    queryLastEventId: string | undefined,
  ): void {
    if (isClosing) {
      reply(req, res, 503, 'Listener is shutting down', ['Retry-After', '5']);
      return;
    }
    if (context.streams.size >= maxConnections) {
      reply(req, res, 503, 'Too many connections', ['Retry-After', '5']);
      return;
    }
    const header = req.headers['last-event-id'];
    const lastEventId = typeof header === 'string' ? header : queryLastEventId;
    const subscriber = new Subscriber(token, res, context, corsHeaders(req));
    const done = (outcome: 'ok' | 'conflict'): void => {
      if (outcome === 'conflict') reply(req, res, 423, 'Target is already connected');
      else
        debug(
          'subscribed to %s%s',
          token,
          lastEventId === undefined ? '' : ` after ${lastEventId}`,
        );
    };
    const fail = (error: unknown): void => {
      debug('subscribe to %s failed: %s', token, flattenError(error));
      const status = (error as { status?: unknown }).status;
      reply(req, res, typeof status === 'number' ? status : 500, (error as Error).message);
    };
    try {
      const outcome = broker.subscribe(subscriber, lastEventId);
      if (typeof outcome === 'string') done(outcome);
      else outcome.then(done, fail);
    } catch (error) {
      fail(error);
    }
  }

  function stats(): ListenerStats {
    let bytesBuffered = 0;
    for (const subscriber of context.streams) bytesBuffered += subscriber.bufferedBytes;
    const brokerStats = broker.stats();
    return {
      ...brokerStats,
      streams: context.streams.size,
      tokens: brokerStats.tokens,
      eventsAccepted: brokerStats.eventsAccepted,
      eventsDelivered: context.delivered,
      eventsDropped: context.dropped,
      subscribersCutOff: context.cutOff,
      bytesBuffered,
      uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
    };
  }

  const handler: ListenerHandler = (req, res, next) => {
    const { route, lastEventId } = parseTarget(req.url ?? '/', prefix);
    const method = req.method;
    if (route.kind === 'none' || route.kind === 'bad-token') {
      if (next !== undefined && route.kind === 'none') {
        next();
        return;
      }
      req.resume();
      reply(
        req,
        res,
        route.kind === 'none' ? 404 : 400,
        route.kind === 'none' ? 'Not found' : 'Bad token encoding',
      );
      return;
    }
    if (method === 'OPTIONS') {
      req.resume();
      const cors = corsHeaders(req);
      res.writeHead(204, {
        Allow: 'GET, POST, OPTIONS',
        ...(cors === undefined
          ? {}
          : {
              ...cors,
              'Access-Control-Allow-Methods': 'GET, POST, OPTIONS',
              'Access-Control-Allow-Headers':
                req.headers['access-control-request-headers'] ??
                'Content-Type, Authorization, Last-Event-ID',
              'Access-Control-Max-Age': '600',
            }),
      });
      res.end();
      return;
    }
    if (route.kind === 'event') {
      if (method === 'GET') {
        if (route.action === eventClass.LISTEN) handleSubscribe(req, res, route.token, lastEventId);
        else reply(req, res, 301, 'Moved Permanently', ['Location', `${prefix}/`]);
        return;
      }
      if (method === 'POST') {
        handlePost(req, res, route.token, route.action);
        return;
      }
    } else if (method === 'GET') {
      if (route.kind === 'stats') reply(req, res, 200, JSON.stringify(stats()));
      else if (options.demo === true) {
        res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
        res.end(
          renderDemoPage(prefix, eventClass.LISTEN, eventClass.ACTIONS, eventClass.contentType),
        );
      } else {
        reply(
          req,
          res,
          200,
          `eventsource-listener (${eventClass.name})\nSubscribe: GET ${prefix}/${eventClass.LISTEN}/<token>\nPublish:   POST ${prefix}/<action>/<token> (actions: ${eventClass.ACTIONS.join(', ')})\nStats:     GET ${prefix}/stats\n`,
        );
      }
      return;
    }
    req.resume();
    reply(req, res, 405, 'Method not allowed', [
      'Allow',
      route.kind === 'event' ? 'GET, POST, OPTIONS' : 'GET',
    ]);
  };

  const frontApp: FrontApp = {
    prefix,
    refusePost,
    publishBody,
    replyHeaders,
    reclaimer,
    bodyAssembler,
  };

  async function listen(port = 8888, host = '0.0.0.0'): Promise<string> {
    const tls = options.tls;
    server =
      tls === undefined ? http.createServer(handler) : https.createServer({ ...tls }, handler);
    const keepAliveTimeoutMs = (options as InternalListenerOptions).keepAliveTimeoutMs;
    if (keepAliveTimeoutMs !== undefined) server.keepAliveTimeout = keepAliveTimeoutMs;
    if (tls === undefined && options.fastPath !== false) front = installFront(server, frontApp);
    server.listen(port, host);
    await Promise.race([
      once(server, 'listening'),
      once(server, 'error').then(([error]) => {
        throw error;
      }),
    ]);
    const address = server.address() as AddressInfo;
    const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    return `${tls === undefined ? 'http' : 'https'}://${shownHost}:${address.port}${prefix}/`;
  }

  async function close(): Promise<void> {
    if (isClosing) return;
    isClosing = true;
    if (keepaliveTimer !== undefined) clearInterval(keepaliveTimer);
    const closed =
      server === undefined
        ? Promise.resolve()
        : new Promise<void>((resolve) => server?.close(() => resolve()));
    // The fast path's idle connections end now, its busy ones after their answer.
    front?.close();
    // Streams end before server.close() can finish: it waits for every open connection.
    await broker.close();
    for (const subscriber of context.streams) subscriber.end();
    server?.closeIdleConnections();
    const timer = setTimeout(() => {
      server?.closeAllConnections();
      front?.destroyAll();
    }, 500);
    await closed;
    clearTimeout(timer);
  }

  return {
    handler,
    get server() {
      return server;
    },
    eventClass,
    publish,
    bufferEvent: publish,
    listen,
    close,
    stats,
  };
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
