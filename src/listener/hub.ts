/**
 * The core of the listener: it decides every answer, once, for every transport.
 *
 * A transport (node:http, the fast path, HTTP/2) turns its own request into a {@link RequestHead}
 * and asks {@link Hub.decide}: the answer is complete, or the POST's body is to be read and given
 * to {@link Hub.finishPost}, or a stream is to be opened with {@link Hub.openStream} over the
 * transport's own {@link Subscriber}. The transport then only translates: the answer into its
 * bytes, its stream's writes and closes into the subscriber's. Nothing here knows node:http.
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html
 */
import { debugListener as debug } from '../debug.js';
import { PublishError, flattenError } from '../errors.js';
import { DataFormatError } from '../events.js';
import { encodeComment } from '../wire/encoder.js';
import { MAX_RETRY_MS } from '../wire/retry.js';
import { Answers, EVENT_METHODS, type Answer } from './answers.js';
import { AccessCheck, type Access } from './access.js';
import type { Broker, PublishOutcome } from './broker.js';
import { Chunk } from './chunk.js';
import { renderDemoPage } from './demo.js';
import { MemoryBroker } from './memory-broker.js';
import type { ResolvedListenerOptions } from './options.js';
import { PostBody, Receiving } from './post-body.js';
import { GrantExpiry, announce } from './presence.js';
import { BodyAssembler, BodyReclaimer, LARGE_BODY, garbageCollector } from './reclaim.js';
import { parseTarget } from './routes.js';
import { createMetrics, type Metrics } from './metrics.js';
import { collectStats, type ListenerStats } from './stats.js';
import type { Subscriber, SubscriberContext } from './subscriber.js';

export type { Answer } from './answers.js';
export { PostBody } from './post-body.js';

/** What the core needs of a request, whatever carried it. */
export interface RequestHead {
  readonly method: string;
  /** The request target: path and query (`/poll/42?lastEventId=7`). */
  readonly target: string;
  readonly origin: string | undefined;
  readonly authorization: string | undefined;
  /** The `Cookie` header (an access token may be there). */
  readonly cookie: string | undefined;
  /** The `Last-Event-ID` header. */
  readonly lastEventId: string | undefined;
  /** The declared body length, NaN when none was declared. */
  readonly contentLength: number;
  /** `Access-Control-Request-Headers`, for a preflight. */
  readonly requestHeaders: string | undefined;
}

/** What a transport does with a request. */
export type Decision =
  /** Write this answer (and drop any body). */
  | { readonly kind: 'answer'; readonly answer: Answer }
  /** Read the body into a {@link PostBody}, then answer what {@link Hub.finishPost} says. */
  | { readonly kind: 'post'; readonly token: string; readonly action: string }
  /** Make a subscriber with these headers and give it to {@link Hub.openStream}. */
  | StreamDecision
  /** Not a route of the listener (a middleware's `next()`). */
  | { readonly kind: 'pass' };

/** A stream to open: its token, where to resume, its headers, and when its grant ends. */
export interface StreamDecision {
  readonly kind: 'stream';
  readonly token: string;
  readonly lastEventId: string | undefined;
  readonly headers: readonly string[];
  /** When the stream's access grant expires (ms since the epoch): the stream ends then. */
  readonly expiresAt: number | undefined;
}

const KEEPALIVE = new Chunk(encodeComment());
KEEPALIVE.share();

/** The core: routes, refusals, publishing, streams, counters. One per listener. */
export class Hub {
  readonly options: ResolvedListenerOptions;
  readonly broker: Broker;
  readonly answers: Answers;
  readonly context: SubscriberContext;
  /** The bodies of POSTs still arriving, counted towards `maxMemory` with the queues. */
  private readonly receiving = new Receiving();
  isClosing = false;
  private readonly actions: ReadonlySet<string>;
  private readonly reclaimer: BodyReclaimer | undefined;
  private readonly assembler = new BodyAssembler();
  private readonly keepaliveTimer: NodeJS.Timeout | undefined;
  /** Keepalive ticks in one keepalive interval. */
  private readonly keepaliveTicks: number;
  private readonly startedAt = Date.now();
  private readonly rootAnswer: Answer;
  private readonly access: AccessCheck;
  /** The Prometheus metrics, when they are on. */
  readonly metrics: Metrics | undefined;
  /** Ends the streams whose access grant expires. */
  private readonly expiry: GrantExpiry;

  constructor(options: ResolvedListenerOptions) {
    this.options = options;
    this.broker = options.broker ?? this.makeMemoryBroker();
    this.answers = new Answers(options);
    this.actions = new Set(options.eventClass.ACTIONS);
    // The collector is looked up at the first collection: most listeners never see a large body.
    this.reclaimer = options.reclaimBodies
      ? new BodyReclaimer(() => garbageCollector()?.())
      : undefined;
    this.context = {
      maxBuffer: options.maxBuffer,
      streams: new Set(),
      corkSingleWrites: false,
      delivered: 0,
      dropped: 0,
      queuedBytes: 0,
      refusedForMemory: 0,
      cutOff: 0,
      replayed: 0,
      expired: 0,
      takenOver: 0,
      onLeave: undefined,
    };
    if (options.metrics) {
      const metrics = createMetrics(this.context, this.broker, options.gather !== undefined);
      this.metrics = metrics;
      this.answers.onRefusal = (status) => metrics.countAnswer(status);
    }
    const presenceToken = options.presenceToken;
    if (presenceToken !== undefined) {
      this.context.onLeave = (subscriber) =>
        announce(this.broker, options.eventClass, presenceToken, 'leave', subscriber.token);
      this.broker.watchDepartures?.((token) =>
        announce(this.broker, options.eventClass, presenceToken, 'leave', token),
      );
    }
    // One shared timer for every stream, ticking KEEPALIVE_TICKS times per interval: a stream gets
    // a comment at the tick that ends the interval it has been silent for. Ticking once per interval
    // would let a stream written to just after a tick stay silent for almost two intervals.
    const keepaliveMs = options.keepaliveMs;
    const tickMs = Math.max(1, Math.floor(keepaliveMs / KEEPALIVE_TICKS));
    this.keepaliveTicks = Math.floor(keepaliveMs / tickMs);
    this.keepaliveTimer =
      keepaliveMs > 0 ? setInterval(() => this.sendKeepalives(), tickMs).unref() : undefined;
    this.access = new AccessCheck(this.answers, options.authorize);
    this.expiry = new GrantExpiry(this.context);
    this.rootAnswer = this.makeRootAnswer();
  }

  /**
   * Decides what to do with a request. Synchronous unless an access check has to wait (a JWT seen
   * for the first time, an `authorize` hook that answers later); the promise never rejects.
   * @param head The request.
   * @param canPass Whether an unknown path may go to someone else (a middleware's `next`).
   */
  decide(head: RequestHead, canPass: boolean): Decision | Promise<Decision> {
    const { route, lastEventId } = parseTarget(head.target, this.options.prefix);
    const method = head.method;
    if (route.kind === 'none') {
      return canPass ? PASS : answer(this.answers.notFound);
    }
    if (route.kind === 'bad-token') return answer(this.answers.badToken);
    // A preflight, the root page and the demo need no grant.
    if (method === 'OPTIONS') {
      return answer(this.answers.preflight(head.origin, head.requestHeaders));
    }
    if (route.kind === 'event') {
      const { token, action } = route;
      if (method === 'POST') {
        const refusal = this.refusePost(
          token,
          action,
          head.target,
          head.authorization,
          head.cookie,
          head.contentLength,
        );
        if (refusal instanceof Promise) {
          return refusal.then((found) =>
            found === undefined ? post(token, action) : answer(found),
          );
        }
        return refusal === undefined ? post(token, action) : answer(refusal);
      }
      if (method === 'GET') {
        if (action !== this.options.eventClass.LISTEN) {
          return answer({
            status: 301,
            body: 'Moved Permanently',
            headers: ['Location', `${this.options.prefix}/`],
          });
        }
        const resumeFrom = head.lastEventId ?? lastEventId;
        const access = this.access.check('subscribe', token, undefined, head);
        if (access instanceof Promise) {
          return access.then((found) => this.decideStream(token, resumeFrom, head.origin, found));
        }
        return this.decideStream(token, resumeFrom, head.origin, access);
      }
    } else if (method === 'GET') {
      if (route.kind === 'metrics' || route.kind === 'presence') {
        if (route.kind === 'metrics' && this.metrics === undefined)
          return answer(this.answers.metricsOff);
        const access = this.access.check('admin', undefined, undefined, head);
        const token = route.kind === 'presence' ? route.token : undefined;
        if (access instanceof Promise)
          return access.then((found) => this.operatorAnswer(found, token));
        return this.operatorAnswer(access, token);
      }
      if (route.kind === 'stats') {
        const access = this.access.check('admin', undefined, undefined, head);
        if (access instanceof Promise) return access.then((found) => this.statsDecision(found));
        return this.statsDecision(access);
      }
      return answer(this.rootAnswer);
    }
    return answer({
      status: 405,
      body: 'Method not allowed',
      headers: ['Allow', route.kind === 'event' ? EVENT_METHODS : 'GET'],
    });
  }

  /**
   * The answer to a POST that is refused before its body is read (`401`/`403` without the right to
   * publish, `404` for an unknown action, `413` when the declared length is too large), or
   * undefined to read the body. A promise when the access check has to wait; it never rejects.
   */
  refusePost(
    token: string,
    action: string,
    target: string,
    authorization: string | undefined,
    cookie: string | undefined,
    declaredLength: number,
  ): Answer | undefined | Promise<Answer | undefined> {
    const access = this.access.check('publish', token, action, { target, authorization, cookie });
    if (access instanceof Promise) {
      return access.then((found) => this.refuseAllowedPost(found, action, declaredLength));
    }
    return this.refuseAllowedPost(access, action, declaredLength);
  }

  private refuseAllowedPost(
    access: Access,
    action: string,
    declaredLength: number,
  ): Answer | undefined {
    if (typeof access === 'object') return access;
    if (!this.actions.has(action)) return this.answers.unknownAction;
    if (declaredLength > this.options.maxBody) return this.answers.tooLarge;
    if (declaredLength >= LARGE_BODY && this.isOverMemory(declaredLength)) {
      return this.answers.memoryFull;
    }
    return undefined;
  }

  /** `/metrics` (no token) or `/stats/<token>`, once access was checked. */
  private async operatorAnswer(access: Access, token: string | undefined): Promise<Decision> {
    if (typeof access === 'object') return answer(access);
    try {
      if (token !== undefined) {
        return answer({ status: 200, body: JSON.stringify(await this.broker.presence(token)) });
      }
      const metrics = this.metrics as Metrics;
      const gather = this.options.gather;
      const body = gather === undefined ? (await metrics.scrape()).body : await gather.metrics();
      return answer({ status: 200, body, contentType: metrics.registry.contentType });
    } catch (error) {
      return answer(this.answers.error(token === undefined ? 'metrics' : 'presence', error));
    }
  }

  private statsDecision(access: Access): Decision | Promise<Decision> {
    if (typeof access === 'object') return answer(access);
    const gather = this.options.gather;
    if (gather === undefined) return answer({ status: 200, body: JSON.stringify(this.stats()) });
    return gather.stats().then(
      (stats) => answer({ status: 200, body: JSON.stringify(stats) }),
      (error: unknown) => answer(this.answers.error('stats', error)),
    );
  }

  /**
   * Answers a POST once its body is complete: `413` past `maxBody`, `503` once the hub is closing
   * (the body arrived too late to be delivered or kept), else publishes it. Synchronous
   * for the in-memory broker; the promise of a broker that needs I/O never rejects. The body is
   * forgotten (reset) before this returns.
   */
  finishPost(token: string, action: string, body: PostBody): Answer | Promise<Answer> {
    const { first, rest, size, startedAt } = body;
    body.reset();
    const metrics = this.metrics;
    if (metrics !== undefined) {
      const answered = this.finishBody(token, action, first, rest, size);
      const began = startedAt === 0 ? performance.now() : startedAt;
      if (answered instanceof Promise) {
        return answered.then((result) => {
          metrics.observePublish(began);
          return result;
        });
      }
      metrics.observePublish(began);
      return answered;
    }
    return this.finishBody(token, action, first, rest, size);
  }

  private finishBody(
    token: string,
    action: string,
    first: Buffer | undefined,
    rest: Buffer[] | undefined,
    size: number,
  ): Answer | Promise<Answer> {
    try {
      if (size > this.options.maxBody) return this.answers.tooLarge;
      // Once closing, the streams are ending and the process is about to exit: an event kept for
      // replay now would be lost with it, so it is neither delivered nor kept, and says so.
      if (this.isClosing) return this.answers.shuttingDown;
      if (this.isOverMemory(size)) return this.answers.memoryFull;
      const text =
        rest !== undefined
          ? this.assembler.decode(rest, size)
          : first === undefined
            ? ''
            : first.toString('utf8');
      return this.publishBody(token, action, text);
    } finally {
      // Every body counts, refused or not: its buffers are garbage now either way.
      this.reclaimer?.handled(size);
    }
  }

  /**
   * Whether an event of `size` bytes would take what waits for slow subscribers, with the bodies
   * still arriving, past `maxMemory`: the history can make room for it, these cannot.
   */
  private isOverMemory(size: number): boolean {
    const waiting = this.context.queuedBytes + this.receiving.bytes;
    if (waiting + size <= this.options.maxMemory) return false;
    this.context.refusedForMemory++;
    return true;
  }

  /**
   * The in-memory broker, bounded by `maxMemory` together with the subscribers' queues; the history
   * of a token whose grace ended is collected at once when the listener reclaims memory.
   */
  private makeMemoryBroker(): MemoryBroker {
    const broker = new MemoryBroker({
      ...this.options.brokerOptions,
      maxMemory: this.options.maxMemory === Infinity ? 0 : this.options.maxMemory,
    });
    broker.waitingBytes = () => this.context.queuedBytes;
    broker.onHistoryReleased = (bytes) => this.reclaimer?.released(bytes);
    return broker;
  }

  /** A new, empty POST body for a transport to fill. */
  newBody(): PostBody {
    return new PostBody(this.options.maxBody, this.receiving, this.metrics !== undefined);
  }

  /** Publishes a complete POST body and says what to answer (see {@link finishPost}). */
  private publishBody(token: string, action: string, body: string): Answer | Promise<Answer> {
    let outcome: PublishOutcome | Promise<PublishOutcome>;
    try {
      outcome = this.accept(token, action, body);
    } catch (error) {
      return this.answers.error(`POST ${action}/${token}`, error);
    }
    if (outcome instanceof Promise) {
      return outcome.then(
        (result) => this.outcomeAnswer(token, action, result),
        (error: unknown) => this.answers.error(`POST ${action}/${token}`, error),
      );
    }
    return this.outcomeAnswer(token, action, outcome);
  }

  /** The answer to an accepted POST, counted when metrics are on (events, not close or retry). */
  private outcomeAnswer(token: string, action: string, outcome: PublishOutcome): Answer {
    const metrics = this.metrics;
    if (metrics !== undefined && outcome.status !== 404) {
      const { FINISH, RETRY } = this.options.eventClass;
      if (action !== FINISH && action !== RETRY) metrics.countEvent();
    }
    return this.answers.outcome(token, action, outcome);
  }

  /**
   * Turns a POST into a broker call. Synchronous for the in-memory broker (no promise or microtask
   * per event); a broker that needs I/O returns a promise.
   * @throws PublishError for a refused action or body.
   */
  accept(token: string, action: string, body: string): PublishOutcome | Promise<PublishOutcome> {
    const eventClass = this.options.eventClass;
    if (!this.actions.has(action)) throw new PublishError(404, this.answers.unknownAction.body);
    if (action === eventClass.FINISH) return this.broker.finish(token);
    if (action === eventClass.RETRY) {
      const text = body.trim();
      // Past MAX_RETRY_MS (24 h) clients clamp the delay anyway (and a timer would overflow).
      if (!/^[0-9]+$/.test(text) || !(Number(text) <= MAX_RETRY_MS)) {
        throw new PublishError(
          400,
          `Data is not properly formatted: retry must be a non-negative integer of at most ${MAX_RETRY_MS} (milliseconds), got ${JSON.stringify(body)}`,
        );
      }
      return this.broker.retry(token, Number(text));
    }
    let event;
    try {
      event = new eventClass(token, action, body);
    } catch (error) {
      if (error instanceof DataFormatError) {
        throw new PublishError(400, error.message, { cause: error });
      }
      throw error;
    }
    return this.broker.publish(event);
  }

  private decideStream(
    token: string,
    lastEventId: string | undefined,
    origin: string | undefined,
    access: Access,
  ): Decision {
    if (typeof access === 'object') return answer(access);
    if (this.isClosing) return answer(this.answers.shuttingDown);
    if (this.context.streams.size >= this.options.maxConnections) {
      return answer(this.answers.tooManyStreams);
    }
    return {
      kind: 'stream',
      token,
      lastEventId,
      headers: this.answers.streamHeaders(origin),
      expiresAt: access,
    };
  }

  /**
   * Gives a transport's new subscriber to the broker, which opens it (and replays what it missed)
   * or refuses it: the subscriber then answers `423`, or the broker's error.
   */
  openStream(subscriber: Subscriber, decision: StreamDecision, origin: string | undefined): void {
    const { token, lastEventId, expiresAt } = decision;
    const done = (outcome: 'ok' | 'conflict'): void => {
      if (outcome === 'conflict') {
        this.refuse(subscriber, this.answers.alreadyConnected, origin);
        return;
      }
      debug('subscribed to %s%s', token, lastEventId === undefined ? '' : ` after ${lastEventId}`);
      const presenceToken = this.options.presenceToken;
      if (presenceToken !== undefined && !subscriber.isClosed) {
        announce(this.broker, this.options.eventClass, presenceToken, 'join', token);
      }
      if (expiresAt !== undefined && !subscriber.isClosed) this.expiry.endAt(subscriber, expiresAt);
    };
    const fail = (error: unknown): void => {
      debug('subscribe to %s failed: %s', token, flattenError(error));
      this.refuse(subscriber, this.answers.error(`subscribe to ${token}`, error), origin);
    };
    try {
      const outcome = this.broker.subscribe(subscriber, lastEventId);
      if (typeof outcome === 'string') done(outcome);
      else outcome.then(done, fail);
    } catch (error) {
      fail(error);
    }
  }

  private refuse(subscriber: Subscriber, answer: Answer, origin: string | undefined): void {
    subscriber.refuse(answer, this.answers.headersFor(answer, origin));
  }

  /** The counters of `GET /stats`. */
  stats(): ListenerStats {
    return collectStats(this.context, this.broker, this.startedAt, this.receiving.bytes);
  }

  /** Refuses new streams and ends the open ones (the broker's streams end with it). */
  async close(): Promise<void> {
    if (this.isClosing) return;
    this.isClosing = true;
    if (this.keepaliveTimer !== undefined) clearInterval(this.keepaliveTimer);
    this.expiry.stop();
    this.reclaimer?.stop();
    await this.broker.close();
    for (const subscriber of this.context.streams) subscriber.end();
  }

  /**
   * One keepalive tick. A stream last written to between two ticks has its count at
   * `keepaliveTicks` no later than `keepaliveMs` after that write, so it is never silent longer
   * than `keepaliveMs` (plus the timer's lateness), and no sooner than one tick before.
   */
  private sendKeepalives(): void {
    const ticks = this.keepaliveTicks;
    for (const subscriber of this.context.streams) {
      if (++subscriber.silentTicks >= ticks) subscriber.write(KEEPALIVE);
    }
  }

  private makeRootAnswer(): Answer {
    const { prefix, eventClass, demo } = this.options;
    if (demo) {
      return {
        status: 200,
        body: renderDemoPage(
          prefix,
          eventClass.LISTEN,
          eventClass.ACTIONS,
          eventClass.contentType,
          this.options.authorize !== undefined,
        ),
        contentType: 'text/html; charset=utf-8',
      };
    }
    return {
      status: 200,
      body: `eventsource-listener (${eventClass.name})\nSubscribe: GET ${prefix}/${eventClass.LISTEN}/<token>\nPublish:   POST ${prefix}/<action>/<token> (actions: ${eventClass.ACTIONS.join(', ')})\nStats:     GET ${prefix}/stats\n`,
    };
  }
}

const PASS: Decision = { kind: 'pass' };
/**
 * Keepalive ticks per interval: a stream's silence then lies between 3/4 of the interval and the
 * interval, and idle streams still get one comment per interval.
 */
const KEEPALIVE_TICKS = 4;

function answer(value: Answer): Decision {
  return { kind: 'answer', answer: value };
}

function post(token: string, action: string): Decision {
  return { kind: 'post', token, action };
}
