/**
 * The HTTP/2 transport: an Http2Stream to the core and back. Over HTTP/2 a browser opens as many
 * event streams to one origin as it likes on one connection (over HTTP/1.1 it stops at six), and
 * an idle stream costs a few objects instead of a socket.
 *
 * Every answer is the core's (`hub.ts`), translated: the status becomes `:status`, header names
 * are lowercased and the connection-specific ones (`Connection`, `Keep-Alive`, ...) are left out,
 * as RFC 9113 §8.2.2 requires. A stream that is cut off (a slow reader) is reset with
 * `RST_STREAM (CANCEL)`, which ends that stream only, not its siblings on the same connection.
 * @see https://www.rfc-editor.org/rfc/rfc9113
 */
import http2 from 'node:http2';
import { debugListener as debug } from '../../debug.js';
import type { Chunk } from '../chunk.js';
import type { Answer, Decision, Hub, RequestHead } from '../hub.js';
import { Subscriber, type SubscriberContext } from '../subscriber.js';
import { readPost } from './read-post.js';

/** Header names HTTP/2 forbids (RFC 9113 §8.2.2), lowercased. */
const CONNECTION_SPECIFIC = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
]);

/** Serves one HTTP/2 request stream. */
export function handleHttp2Stream(
  hub: Hub,
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
): void {
  stream.on('error', onStreamError);
  const lastEventId = headers['last-event-id'];
  const requestHeaders = headers['access-control-request-headers'];
  const cookie = headers.cookie;
  const head: RequestHead = {
    method: headers[':method'] ?? 'GET',
    target: headers[':path'] ?? '/',
    origin: headers.origin,
    authorization: headers.authorization,
    // HTTP/2 may split the Cookie header into several fields (RFC 9113 §8.2.3).
    cookie: Array.isArray(cookie) ? cookie.join('; ') : cookie,
    lastEventId: typeof lastEventId === 'string' ? lastEventId : undefined,
    contentLength: Number(headers['content-length']),
    requestHeaders: typeof requestHeaders === 'string' ? requestHeaders : undefined,
  };
  const decision = hub.decide(head, false);
  if (decision instanceof Promise) void decision.then((found) => act(hub, found, stream, head));
  else act(hub, decision, stream, head);
}

/** Does what the core decided for a request. */
function act(
  hub: Hub,
  decision: Decision,
  stream: http2.ServerHttp2Stream,
  head: RequestHead,
): void {
  const origin = head.origin;
  switch (decision.kind) {
    case 'pass': // decide() never passes when it cannot.
    case 'answer':
      if (decision.kind === 'answer') writeAnswer(hub, stream, decision.answer, origin);
      // A body that will not be read is drained, so that it does not hold the connection's window.
      stream.resume();
      return;
    case 'post':
      readPost(
        hub,
        stream,
        decision.token,
        decision.action,
        () => stream.close(http2.constants.NGHTTP2_CANCEL),
        (result) => writeAnswer(hub, stream, result, origin),
      );
      return;
    case 'stream':
      hub.openStream(
        new Http2Subscriber(decision.token, hub.context, decision.headers, stream),
        decision,
        origin,
      );
  }
}

function writeAnswer(
  hub: Hub,
  stream: http2.ServerHttp2Stream,
  answer: Answer,
  origin: string | undefined,
): void {
  respond(stream, answer, hub.answers.headersFor(answer, origin));
}

/** Sends a complete answer on `stream`, unless it is gone or already answered. */
function respond(
  stream: http2.ServerHttp2Stream,
  answer: Answer,
  headers: readonly string[],
): void {
  if (stream.destroyed || stream.headersSent) {
    if (!stream.destroyed) stream.end();
    return;
  }
  stream.respond(toHttp2Headers(answer.status, headers), { endStream: answer.body === '' });
  if (answer.body !== '') stream.end(answer.body);
}

/** The core's flat header list as an HTTP/2 header object. */
function toHttp2Headers(status: number, headers: readonly string[]): http2.OutgoingHttpHeaders {
  const result: http2.OutgoingHttpHeaders = { ':status': status };
  for (let i = 0; i < headers.length; i += 2) {
    const name = (headers[i] as string).toLowerCase();
    if (!CONNECTION_SPECIFIC.has(name)) result[name] = headers[i + 1] as string;
  }
  return result;
}

const kSubscriber = Symbol('eventsource.subscriber');

interface SubscribedStream extends http2.ServerHttp2Stream {
  [kSubscriber]?: Subscriber;
}

/** A stream over an Http2Stream: the SSE blocks are written as DATA, without HTTP/1.1 framing. */
export class Http2Subscriber extends Subscriber {
  constructor(
    token: string,
    context: SubscriberContext,
    headers: readonly string[],
    private readonly stream: SubscribedStream,
  ) {
    super(token, context, headers);
  }

  refuse(answer: Answer, headers: readonly string[]): void {
    respond(this.stream, answer, headers);
  }

  protected openSink(headers: readonly string[]): void {
    const stream = this.stream;
    if (!stream.destroyed) stream.respond(toHttp2Headers(200, headers));
    stream[kSubscriber] = this;
    if (stream.destroyed) this.handleClose();
    else stream.once('close', onStreamClose);
  }

  protected send(chunk: Chunk): boolean {
    return this.stream.write(chunk.raw);
  }

  protected waitForDrain(): void {
    this.stream.once('drain', () => this.flush());
  }

  protected sinkBufferedBytes(): number {
    return this.stream.writableLength;
  }

  protected endSink(): void {
    this.stream.end();
  }

  protected destroySink(): void {
    // RST_STREAM for this stream alone; the connection and its other streams go on.
    if (!this.stream.destroyed) this.stream.close(http2.constants.NGHTTP2_CANCEL);
  }
}

// Shared listeners for every stream, rather than closures per subscriber.
function onStreamClose(this: SubscribedStream): void {
  this[kSubscriber]?.handleClose();
}

function onStreamError(this: http2.ServerHttp2Stream, error: Error): void {
  // A client that resets its stream or goes away: the stream closes and its answer is moot.
  debug('HTTP/2 stream error: %s', error.message);
}
