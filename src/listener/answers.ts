/**
 * What the listener answers, apart from streams: complete answers, their headers (CORS included)
 * and the publish secret's check. Transports write these as they are; none of them builds a header
 * of its own.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { debugListener as debug } from '../debug.js';
import { PublishError, flattenError } from '../errors.js';
import type { PublishOutcome } from './broker.js';
import type { ResolvedListenerOptions } from './options.js';

/** A complete answer: status, body and the headers beyond those every answer has. */
export interface Answer {
  readonly status: number;
  readonly body: string;
  /** Extra headers as a flat list (name, value, ...), written after the common ones. */
  readonly headers?: readonly string[] | undefined;
  /** The body's type, when it is neither plain text nor a JSON reply (the demo page). */
  readonly contentType?: string | undefined;
}

const TEXT = 'text/plain; charset=utf-8';
/** `Bearer <credential>`, the scheme in any case. */
const BEARER = /^bearer[ \t]+(\S+)[ \t]*$/i;

/** The headers of every event stream, before CORS. */
const STREAM_HEADERS: readonly string[] = [
  'Content-Type',
  'text/event-stream',
  'Cache-Control',
  'no-cache, no-transform',
  'X-Accel-Buffering',
  'no',
];

/** The methods every event route allows. */
export const EVENT_METHODS = 'GET, POST, OPTIONS';

/** The answers a listener gives, for its options. */
export class Answers {
  private readonly corsOrigins: readonly string[];
  private readonly isAnyOrigin: boolean;
  private readonly secretDigest: Buffer | undefined;
  /** The JSON of each action name, made once: every 2xx reply to a POST carries it. */
  private readonly actionJson: Map<string, string>;

  // The answers refused before a body is read, and the usual refusals: one object each, made once.
  readonly unauthorized: Answer = {
    status: 401,
    body: 'Unauthorized: a valid Bearer secret is required',
    headers: ['WWW-Authenticate', 'Bearer realm="eventsource"'],
  };
  /** Names the actions this listener's event class accepts, so that a typo explains itself. */
  readonly unknownAction: Answer;
  /** Said at once, closing the connection, rather than reading a body that will be refused. */
  readonly tooLarge: Answer;
  readonly notConnected: Answer = { status: 404, body: 'Target is not connected' };
  /** Starts as the original's text (clients match on it), then says how to allow another. */
  readonly alreadyConnected: Answer = {
    status: 423,
    body: "Target is already connected (--multi lets several subscribers share a token, --takeover lets the newest replace it; mode 'multi' or 'takeover' in the library)",
  };
  readonly shuttingDown: Answer = {
    status: 503,
    body: 'Listener is shutting down',
    headers: ['Retry-After', '5'],
  };
  readonly tooManyStreams: Answer = {
    status: 503,
    body: 'Too many connections',
    headers: ['Retry-After', '5'],
  };
  /** An event that would take what waits for slow subscribers past `maxMemory`. */
  readonly memoryFull: Answer = {
    status: 503,
    body: 'Too much waiting for slow subscribers',
    headers: ['Retry-After', '5'],
  };
  readonly notFound: Answer = { status: 404, body: 'Not found' };
  /** `/metrics` on a listener without metrics: says how to turn them on. */
  readonly metricsOff: Answer = {
    status: 404,
    body: 'Not found (metrics are off: start the listener with --metrics, or metrics: true in the library)',
  };
  readonly forbidden: Answer = { status: 403, body: 'Forbidden' };
  readonly badToken: Answer = { status: 400, body: 'Bad token encoding' };

  /**
   * Told the status of every refusal (4xx, 5xx) as a transport writes it: every complete answer
   * goes through {@link headersFor}, so the metrics count them here, once.
   */
  onRefusal: ((status: number) => void) | undefined = undefined;

  constructor(options: ResolvedListenerOptions) {
    this.corsOrigins = options.corsOrigins;
    this.isAnyOrigin = options.corsOrigins.includes('*');
    this.secretDigest =
      options.publishSecret === undefined ? undefined : sha256(options.publishSecret);
    this.actionJson = new Map(
      options.eventClass.ACTIONS.map((action) => [action, JSON.stringify(action)]),
    );
    this.unknownAction = {
      status: 404,
      body: `Unknown action requested (this listener accepts: ${options.eventClass.ACTIONS.join(', ')})`,
    };
    this.tooLarge = {
      status: 413,
      body: `Request body is larger than ${options.maxBody} bytes`,
      headers: ['Connection', 'close'],
    };
  }

  /** Whether CORS allows `origin` (and so the answer carries CORS headers). */
  isAllowedOrigin(origin: string | undefined): origin is string {
    if (origin === undefined || this.corsOrigins.length === 0) return false;
    return this.isAnyOrigin || this.corsOrigins.includes(origin);
  }

  /** Whether a publish secret is set. */
  get hasSecret(): boolean {
    return this.secretDigest !== undefined;
  }

  /**
   * Whether an `Authorization` header carries the publish secret as a Bearer credential (the
   * scheme in any case, as RFC 7235 says). False when no secret is set.
   */
  hasPublishSecret(authorization: string | undefined): boolean {
    const digest = this.secretDigest;
    if (digest === undefined || authorization === undefined) return false;
    const match = BEARER.exec(authorization);
    // Compare digests: equal lengths, and the time taken says nothing about the secret.
    return match !== null && timingSafeEqual(sha256(match[1] as string), digest);
  }

  /**
   * The headers of a complete answer as a flat list (cheaper for Node than an object):
   * Content-Type and Content-Length (none for a 204), CORS for `origin`, then the answer's own.
   */
  headersFor(answer: Answer, origin: string | undefined): string[] {
    const { status, body } = answer;
    if (status >= 400) this.onRefusal?.(status);
    const headers =
      status === 204
        ? []
        : [
            'Content-Type',
            answer.contentType ??
              (status < 300 && body.charCodeAt(0) === 123 ? 'application/json' : TEXT),
            'Content-Length',
            String(Buffer.byteLength(body)),
          ];
    if (this.isAllowedOrigin(origin)) this.pushCors(headers, origin);
    const extra = answer.headers;
    if (extra !== undefined)
      for (let i = 0; i < extra.length; i++) headers.push(extra[i] as string);
    return headers;
  }

  /** The headers of an event stream for `origin`. */
  streamHeaders(origin: string | undefined): readonly string[] {
    if (!this.isAllowedOrigin(origin)) return STREAM_HEADERS;
    const headers = STREAM_HEADERS.slice();
    this.pushCors(headers, origin);
    return headers;
  }

  /** The answer to a preflight (`OPTIONS`) on an event route. */
  preflight(origin: string | undefined, requestHeaders: string | undefined): Answer {
    if (!this.isAllowedOrigin(origin))
      return { status: 204, body: '', headers: ['Allow', EVENT_METHODS] };
    return {
      status: 204,
      body: '',
      headers: [
        'Allow',
        EVENT_METHODS,
        'Access-Control-Allow-Methods',
        EVENT_METHODS,
        'Access-Control-Allow-Headers',
        requestHeaders ?? 'Content-Type, Authorization, Last-Event-ID',
        'Access-Control-Max-Age',
        '600',
      ],
    };
  }

  /** The answer to a POST the broker took (or refused with `404`). */
  outcome(token: string, action: string, outcome: PublishOutcome): Answer {
    if (outcome.status === 404) return this.notConnected;
    const id = outcome.id === null ? 'null' : JSON.stringify(outcome.id);
    return {
      status: outcome.status,
      body: `{"token":${JSON.stringify(token)},"action":${this.actionJson.get(action)},"id":${id},"subscribers":${outcome.subscribers}}`,
    };
  }

  /**
   * The answer to a failure: a PublishError's status and message, an error's own numeric `status`
   * (a broker that is unavailable says `503`) with its `retryAfterSeconds` as `Retry-After`, else `500`.
   */
  error(what: string, error: unknown): Answer {
    if (error instanceof PublishError) return { status: error.status, body: error.message };
    debug('%s failed: %s', what, flattenError(error));
    const { status, retryAfterSeconds } = error as {
      status?: unknown;
      retryAfterSeconds?: unknown;
    };
    if (typeof status !== 'number') return { status: 500, body: 'Internal error' };
    const headers =
      typeof retryAfterSeconds === 'number'
        ? ['Retry-After', String(retryAfterSeconds)]
        : undefined;
    return { status, body: (error as Error).message, headers };
  }

  /**
   * CORS headers for an allowed origin. `*` allows any origin to read, without credentials (the
   * Fetch spec refuses `*` with credentials, and echoing any origin with credentials would let
   * every site read the streams of a signed-in browser); a named origin is echoed with credentials,
   * so that `EventSource(url, { withCredentials: true })` sends its cookie.
   */
  private pushCors(headers: string[], origin: string): void {
    if (this.isAnyOrigin && !this.corsOrigins.includes(origin)) {
      headers.push('Access-Control-Allow-Origin', '*');
      return;
    }
    headers.push(
      'Access-Control-Allow-Origin',
      origin,
      'Access-Control-Allow-Credentials',
      'true',
      'Vary',
      'Origin',
    );
  }
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
