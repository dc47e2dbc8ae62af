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
import { Answers, EVENT_METHODS, type Answer } from './answers.js';
import type { Broker, PublishOutcome } from './broker.js';
import { Chunk } from './chunk.js';
import { renderDemoPage } from './demo.js';
import { MemoryBroker } from './memory-broker.js';
import type { ResolvedListenerOptions } from './options.js';
import { BodyAssembler, BodyReclaimer, garbageCollector } from './reclaim.js';
import { parseTarget } from './routes.js';
import { collectStats, type ListenerStats } from './stats.js';
import type { Subscriber, SubscriberContext } from './subscriber.js';

export type { Answer } from './answers.js';

/** What the core needs of a request, whatever carried it. */
export interface RequestHead {
  readonly method: string;
  /** The request target: path and query (`/poll/42?lastEventId=7`). */
  readonly target: string;
  readonly origin: string | undefined;
  readonly authorization: string | undefined;
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
  | {
      readonly kind: 'stream';
      readonly token: string;
      readonly lastEventId: string | undefined;
      readonly headers: readonly string[];
    }
  /** Not a route of the listener (a middleware's `next()`). */
  | { readonly kind: 'pass' };

/** The body of a POST as it arrives: the pieces kept while within `maxBody`, and its size. */
export class PostBody {
  first: Buffer | undefined = undefined;
  rest: Buffer[] | undefined = undefined;
  size = 0;

  constructor(private readonly maxBody: number) {}

  /** Takes a piece (kept as is, not copied) unless the body is already over the limit. */
  add(piece: Buffer): void {
    this.size += piece.length;
    if (this.size > this.maxBody) return;
    if (this.first === undefined) this.first = piece;
    else (this.rest ??= [this.first]).push(piece);
  }

  /**
   * Whether reading on is pointless: far past the limit, the connection is better cut than
   * drained (a small excess is read so that the `413` reaches the client).
   */
  get isHopeless(): boolean {
    return this.size > this.maxBody * 4 + 65536;
  }

  /** Forgets the body, for the next request of a connection. */
  reset(): void {
    this.first = this.rest = undefined;
    this.size = 0;
  }
}

const KEEPALIVE = new Chunk(encodeComment());
KEEPALIVE.share();

/** The core: routes, refusals, publishing, streams, counters. One per listener. */
export class Hub {
  readonly options: ResolvedListenerOptions;
  readonly broker: Broker;
  readonly answers: Answers;
  readonly context: SubscriberContext;
  isClosing = false;
  private readonly actions: ReadonlySet<string>;
  private readonly reclaimer: BodyReclaimer | undefined;
  private readonly assembler = new BodyAssembler();
  private readonly keepaliveTimer: NodeJS.Timeout | undefined;
  private readonly startedAt = Date.now();
  private readonly rootAnswer: Answer;

  constructor(options: ResolvedListenerOptions) {
    this.options = options;
    this.broker = options.broker ?? new MemoryBroker(options.brokerOptions);
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
      cutOff: 0,
    };
    // One shared timer for every stream: a stream that had no write since the last tick gets a comment.
    this.keepaliveTimer =
      options.keepaliveMs > 0
        ? setInterval(() => this.sendKeepalives(), options.keepaliveMs).unref()
        : undefined;
    this.rootAnswer = this.makeRootAnswer();
  }

  /**
   * Decides what to do with a request.
   * @param head The request.
   * @param canPass Whether an unknown path may go to someone else (a middleware's `next`).
   */
  decide(head: RequestHead, canPass: boolean): Decision {
    const { route, lastEventId } = parseTarget(head.target, this.options.prefix);
    const method = head.method;
    if (route.kind === 'none') {
      return canPass ? PASS : answer(this.answers.notFound);
    }
    if (route.kind === 'bad-token') return answer(this.answers.badToken);
    if (method === 'OPTIONS') {
      return answer(this.answers.preflight(head.origin, head.requestHeaders));
    }
    if (route.kind === 'event') {
      const { token, action } = route;
      if (method === 'POST') {
        const refusal = this.refusePost(action, head.authorization, head.contentLength);
        return refusal === undefined ? { kind: 'post', token, action } : answer(refusal);
      }
      if (method === 'GET') {
        if (action !== this.options.eventClass.LISTEN) {
          return answer({
            status: 301,
            body: 'Moved Permanently',
            headers: ['Location', `${this.options.prefix}/`],
          });
        }
        return this.decideStream(token, head.lastEventId ?? lastEventId, head.origin);
      }
    } else if (method === 'GET') {
      if (route.kind === 'stats')
        return answer({ status: 200, body: JSON.stringify(this.stats()) });
      return answer(this.rootAnswer);
    }
    return answer({
      status: 405,
      body: 'Method not allowed',
      headers: ['Allow', route.kind === 'event' ? EVENT_METHODS : 'GET'],
    });
  }

  /**
   * The answer to a POST that is refused before its body is read (`401`, `404` for an unknown
   * action, `413` when the declared length is too large), or undefined to read the body.
   */
  refusePost(
    action: string,
    authorization: string | undefined,
    declaredLength: number,
  ): Answer | undefined {
    const answers = this.answers;
    if (!answers.isAuthorized(authorization)) return answers.unauthorized;
    if (!this.actions.has(action)) return answers.unknownAction;
    if (declaredLength > this.options.maxBody) return answers.tooLarge;
    return undefined;
  }

  /**
   * Answers a POST once its body is complete: `413` past `maxBody`, else publishes it. Synchronous
   * for the in-memory broker; the promise of a broker that needs I/O never rejects. The body is
   * forgotten (reset) before this returns.
   */
  finishPost(token: string, action: string, body: PostBody): Answer | Promise<Answer> {
    const { first, rest, size } = body;
    body.reset();
    try {
      if (size > this.options.maxBody) return this.answers.tooLarge;
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

  /** A new, empty POST body for a transport to fill. */
  newBody(): PostBody {
    return new PostBody(this.options.maxBody);
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
        (result) => this.answers.outcome(token, action, result),
        (error: unknown) => this.answers.error(`POST ${action}/${token}`, error),
      );
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
    if (!this.actions.has(action)) throw new PublishError(404, 'Unknown action requested');
    if (action === eventClass.FINISH) return this.broker.finish(token);
    if (action === eventClass.RETRY) {
      const text = body.trim();
      if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(Number(text))) {
        throw new PublishError(
          400,
          `Data is not properly formatted: retry must be a non-negative integer (milliseconds), got ${JSON.stringify(body)}`,
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
  ): Decision {
    if (this.isClosing) return answer(this.answers.shuttingDown);
    if (this.context.streams.size >= this.options.maxConnections) {
      return answer(this.answers.tooManyStreams);
    }
    return { kind: 'stream', token, lastEventId, headers: this.answers.streamHeaders(origin) };
  }

  /**
   * Gives a transport's new subscriber to the broker, which opens it (and replays what it missed)
   * or refuses it: the subscriber then answers `423`, or the broker's error.
   */
  openStream(
    subscriber: Subscriber,
    lastEventId: string | undefined,
    origin: string | undefined,
  ): void {
    const token = subscriber.token;
    const done = (outcome: 'ok' | 'conflict'): void => {
      if (outcome === 'conflict') this.refuse(subscriber, this.answers.alreadyConnected, origin);
      else
        debug(
          'subscribed to %s%s',
          token,
          lastEventId === undefined ? '' : ` after ${lastEventId}`,
        );
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
    return collectStats(this.context, this.broker, this.startedAt);
  }

  /** Refuses new streams and ends the open ones (the broker's streams end with it). */
  async close(): Promise<void> {
    if (this.isClosing) return;
    this.isClosing = true;
    if (this.keepaliveTimer !== undefined) clearInterval(this.keepaliveTimer);
    await this.broker.close();
    for (const subscriber of this.context.streams) subscriber.end();
  }

  private sendKeepalives(): void {
    for (const subscriber of this.context.streams) {
      if (subscriber.isIdle) subscriber.write(KEEPALIVE);
      subscriber.isIdle = true;
    }
  }

  private makeRootAnswer(): Answer {
    const { prefix, eventClass, demo } = this.options;
    if (demo) {
      return {
        status: 200,
        body: renderDemoPage(prefix, eventClass.LISTEN, eventClass.ACTIONS, eventClass.contentType),
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

function answer(value: Answer): Decision {
  return { kind: 'answer', answer: value };
}
