/**
 * The listener's options, once: their defaults, their validation, and the resolved object every
 * other part of the listener reads. The CLI takes its defaults from here too.
 */
import { StringEvent, type EventClass } from '../events.js';
import { assertFieldValue } from '../wire/encoder.js';
import { checkJwtOptions, createJwtAuthorizer, type Authorize, type JwtOptions } from './auth.js';
import type { Broker, BrokerOptions, StreamMode } from './broker.js';
import { normalizePrefix } from './routes.js';
import type { ListenerStats } from './stats.js';

/** Options for `createListener()`. */
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
  /**
   * When set, POST and `/stats` need `Authorization: Bearer <publishSecret>` (else `401`). With
   * `jwt` or `authorize` as well, the secret still lets a POST (and `/stats`) through.
   */
  publishSecret?: string | undefined;
  /**
   * Signed grants (JWT) decide who may subscribe, publish and read `/stats`: see {@link JwtOptions}
   * and the README's "Authorization" section. Not with `authorize`.
   */
  jwt?: JwtOptions | undefined;
  /**
   * A rule of your own for who may subscribe, publish and read `/stats` (a session lookup, say),
   * asked before a stream opens or a POST's body is read. Not with `jwt`, which is built on it.
   */
  authorize?: Authorize | undefined;
  /** Open streams allowed at once; past it, `503` with `Retry-After`. Defaults to no limit. */
  maxConnections?: number | undefined;
  /**
   * Bytes the listener may hold for events: the in-memory broker's history of every token together,
   * plus the events waiting in the queues of slow subscribers. Past it, the oldest history of any
   * token goes first (a replay from there gets the gap signal); a POST that would take the events
   * waiting for subscribers past it gets `503` with `Retry-After`. Each kept event counts its
   * encoded bytes plus 256 for its bookkeeping. With another broker (Redis) the history lives there,
   * bounded by that server's own settings, and only the waiting events count. `0` for no bound.
   * Defaults to 256 MiB.
   */
  maxMemory?: number | undefined;
  /** Serves a small demo page at `/`. Defaults to false. */
  demo?: boolean | undefined;
  /**
   * Serves `GET /metrics` in the Prometheus text format (prom-client), with the same access rule
   * as `/stats`. Defaults to false.
   */
  metrics?: boolean | undefined;
  /**
   * Announces every stream that opens or closes (on any other token) as a `join` or `leave` event,
   * `{"token","subscribers"}`, published to this token. Defaults to none.
   */
  presenceToken?: string | undefined;
  /**
   * Under `--workers`, where `/metrics` and `/stats` are gathered from every worker.
   * @internal
   */
  gather?: ClusterGather | undefined;
  /**
   * A broker to use instead of the in-memory one (for example a Redis broker). The broker options
   * (`mode`, `history`, `historyBytes`, `graceMs`, `gapEvent`) then belong to that broker: giving
   * them here as well is a TypeError.
   */
  broker?: Broker | undefined;
  /**
   * Once large request bodies (16 KiB or more each) add up to half the JavaScript heap left live
   * by the last collection (at least 4 MiB), ask V8 for a full garbage collection, so that their
   * buffers and the history's old events go back to the allocator instead of piling up (see
   * `reclaim.ts`). This switches V8's `--expose-gc` on for a moment and forces collections in the
   * whole process, so a library leaves it off unless asked; the CLI turns it on. Defaults to false.
   */
  reclaimBodies?: boolean | undefined;
  /** TLS options for `listen()`: with `key` and `cert`, it serves HTTPS. */
  tls?: { key: string | Buffer; cert: string | Buffer } | undefined;
  /**
   * With `tls`, `listen()` offers HTTP/2 and HTTP/1.1 on the same port, chosen by ALPN (`h2`,
   * `http/1.1`): over HTTP/2 a browser is not held to six streams per origin. `false` offers
   * HTTP/1.1 only. Plain HTTP is always HTTP/1.1. Defaults to true.
   */
  http2?: boolean | undefined;
  /**
   * Over plain HTTP, `listen()` reads simple POSTs (`Content-Length` bodies to an event route)
   * and simple stream GETs (`GET <prefix>/<LISTEN>/<token>`, no body) itself and hands every other
   * connection to node:http at its first other request, which costs less CPU per POST and per
   * opened stream, and less memory per open stream (see `transports/front.ts`). The answers are
   * the same; what differs is that those requests emit no `'request'` event on `listener.server`. `false` leaves every request to
   * node:http. Has no effect with `tls` or on `listener.handler`. Defaults to true.
   */
  fastPath?: boolean | undefined;
}

/**
 * How a worker of `--workers` gets the whole listener's `/metrics` and `/stats` (the CLI makes it).
 * @internal
 */
export interface ClusterGather {
  metrics(): Promise<string>;
  stats(): Promise<ListenerStats>;
}

/** The defaults of every listener and broker option with one. */
export const DEFAULTS = {
  keepaliveMs: 15000,
  maxBuffer: 1024 * 1024,
  maxBody: 1024 * 1024,
  mode: 'single' as StreamMode,
  history: 1000,
  historyBytes: 8 * 1024 * 1024,
  graceMs: 60000,
  maxMemory: 256 * 1024 * 1024,
} as const;

/** Broker options with their defaults applied and checked. */
export interface ResolvedBrokerOptions {
  readonly mode: StreamMode;
  readonly history: number;
  readonly historyBytes: number;
  readonly graceMs: number;
  readonly gapEvent: string | undefined;
}

/** Listener options with their defaults applied and checked: what the listener's parts read. */
export interface ResolvedListenerOptions {
  readonly eventClass: EventClass;
  readonly keepaliveMs: number;
  readonly maxBuffer: number;
  readonly maxBody: number;
  /** Infinity when there is no limit. */
  readonly maxConnections: number;
  /** Infinity when there is no bound. */
  readonly maxMemory: number;
  /** Normalised: `/p`, or `''` for none. */
  readonly prefix: string;
  readonly corsOrigins: readonly string[];
  readonly publishSecret: string | undefined;
  /** The hook that authorizes requests: `authorize`, or the one made from `jwt`. */
  readonly authorize: Authorize | undefined;
  readonly demo: boolean;
  readonly metrics: boolean;
  readonly presenceToken: string | undefined;
  /** @internal */
  readonly gather: ClusterGather | undefined;
  readonly reclaimBodies: boolean;
  readonly tls: ListenerOptions['tls'];
  readonly http2: boolean;
  readonly fastPath: boolean;
  /** The broker given, or undefined for an in-memory one made with {@link brokerOptions}. */
  readonly broker: Broker | undefined;
  readonly brokerOptions: ResolvedBrokerOptions;
}

const BROKER_OPTION_NAMES = ['mode', 'history', 'historyBytes', 'graceMs', 'gapEvent'] as const;
const MODES: readonly StreamMode[] = ['single', 'multi', 'takeover'];

/**
 * Applies the defaults to broker options and checks them.
 * @throws RangeError or TypeError naming the option and the value received.
 */
export function resolveBrokerOptions(options: BrokerOptions = {}): ResolvedBrokerOptions {
  const mode = options.mode ?? DEFAULTS.mode;
  if (!MODES.includes(mode)) {
    throw new TypeError(`\`mode\` must be one of ${MODES.join(', ')}, got ${String(mode)}`);
  }
  if (options.gapEvent !== undefined) assertFieldValue('gapEvent', options.gapEvent);
  return {
    mode,
    history: checkInteger('history', options.history ?? DEFAULTS.history, 0, 'events'),
    historyBytes: checkInteger(
      'historyBytes',
      options.historyBytes ?? DEFAULTS.historyBytes,
      0,
      'bytes',
    ),
    graceMs: checkInteger('graceMs', options.graceMs ?? DEFAULTS.graceMs, 0, 'milliseconds'),
    gapEvent: options.gapEvent,
  };
}

/**
 * Applies the defaults to listener options and checks them.
 * @throws TypeError or RangeError for an invalid option, naming it and the value received.
 */
export function resolveListenerOptions(options: ListenerOptions = {}): ResolvedListenerOptions {
  const eventClass = options.eventClass ?? StringEvent;
  checkEventClass(eventClass);
  if (options.broker !== undefined) {
    const given = BROKER_OPTION_NAMES.filter((name) => options[name] !== undefined);
    if (given.length > 0) {
      throw new TypeError(
        `${given.map((name) => `\`${name}\``).join(', ')} ${given.length === 1 ? 'is an option' : 'are options'} of the broker: with \`broker\`, give ${given.length === 1 ? 'it' : 'them'} to the broker instead`,
      );
    }
  }
  const maxConnections = options.maxConnections ?? Infinity;
  if (maxConnections !== Infinity) checkInteger('maxConnections', maxConnections, 1, '');
  if (options.jwt !== undefined && options.authorize !== undefined) {
    throw new TypeError('`jwt` and `authorize` do not go together: `jwt` is an `authorize` rule');
  }
  if (options.authorize !== undefined && typeof options.authorize !== 'function') {
    throw new TypeError(`\`authorize\` must be a function, got ${typeof options.authorize}`);
  }
  if (options.jwt !== undefined) checkJwtOptions(options.jwt);
  return {
    eventClass,
    keepaliveMs: checkInteger(
      'keepalive',
      options.keepalive ?? DEFAULTS.keepaliveMs,
      0,
      'milliseconds',
    ),
    maxBuffer: checkInteger('maxBuffer', options.maxBuffer ?? DEFAULTS.maxBuffer, 0, 'bytes'),
    maxBody: checkInteger('maxBody', options.maxBody ?? DEFAULTS.maxBody, 0, 'bytes'),
    maxConnections,
    maxMemory: resolveMaxMemory(options.maxMemory),
    prefix: normalizePrefix(options.prefix),
    corsOrigins: options.cors === undefined ? [] : [options.cors].flat(),
    publishSecret: options.publishSecret,
    authorize: options.jwt === undefined ? options.authorize : createJwtAuthorizer(options.jwt),
    demo: options.demo === true,
    metrics: options.metrics === true,
    presenceToken: options.presenceToken === '' ? undefined : options.presenceToken,
    gather: options.gather,
    reclaimBodies: options.reclaimBodies === true,
    tls: options.tls,
    http2: options.http2 !== false,
    fastPath: options.fastPath !== false,
    broker: options.broker,
    brokerOptions: resolveBrokerOptions(options.broker === undefined ? options : {}),
  };
}

/**
 * Applies the default to `maxMemory` and checks it.
 * @returns The bound in bytes, Infinity for none (`0`).
 * @throws RangeError naming the option and the value received.
 */
export function resolveMaxMemory(value: number | undefined): number {
  const bytes = checkInteger('maxMemory', value ?? DEFAULTS.maxMemory, 0, 'bytes');
  return bytes === 0 ? Infinity : bytes;
}

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
