/**
 * The node:http transport: IncomingMessage and ServerResponse to the core and back. It serves
 * HTTP/1.x from `http.createServer`, `https.createServer`, the HTTP/1.1 side of the HTTP/2 server
 * and Express-style middleware; every decision is the core's (`hub.ts`).
 */
import type http from 'node:http';
import type { Socket } from 'node:net';
import { debugListener as debug } from '../../debug.js';
import type { Answer, Decision, Hub, RequestHead } from '../hub.js';
import type { Chunk } from '../chunk.js';
import { Subscriber, type SubscriberContext } from '../subscriber.js';
import { closesConnection } from './front-connection.js';
import { readPost } from './read-post.js';

/** A handler that also works as Express/Connect middleware (it calls `next()` for other paths). */
export type ListenerHandler = (
  req: http.IncomingMessage,
  res: http.ServerResponse,
  next?: (error?: unknown) => void,
) => void;

/** Makes the request handler of `hub`. */
export function createNodeHttpHandler(hub: Hub): ListenerHandler {
  return (req, res, next) => {
    const headers = req.headers;
    const lastEventId = headers['last-event-id'];
    const head: RequestHead = {
      method: req.method ?? 'GET',
      target: req.url ?? '/',
      origin: headers.origin,
      authorization: headers.authorization,
      cookie: headers.cookie,
      lastEventId: typeof lastEventId === 'string' ? lastEventId : undefined,
      contentLength: Number(headers['content-length']),
      requestHeaders: headers['access-control-request-headers'],
    };
    const decision = hub.decide(head, next !== undefined);
    if (decision instanceof Promise) {
      void decision.then((found) => act(hub, found, req, res, next));
    } else act(hub, decision, req, res, next);
  };
}

/** Does what the core decided for a request. */
function act(
  hub: Hub,
  decision: Decision,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  next: ((error?: unknown) => void) | undefined,
): void {
  const origin = req.headers.origin;
  switch (decision.kind) {
    case 'pass':
      next?.();
      return;
    case 'answer':
      if (closesConnection(decision.answer)) {
        // node:http ends the connection once this answer is out, but its parser reads on until
        // then: stop reading (what it would still parse is never answered, see whenAnswerable).
        req.socket.pause();
      } else {
        // A body that will not be read is drained, so the connection can serve the next request.
        req.resume();
      }
      writeAnswer(hub, res, decision.answer, origin);
      return;
    case 'post':
      // No 'error' listener: an aborted request without one is destroyed quietly by Node, and
      // the reply it would have had is no longer wanted.
      readPost(
        hub,
        req,
        decision.token,
        decision.action,
        () => req.destroy(),
        (result) => writeAnswer(hub, res, result, origin),
        (publish) => whenAnswerable(res, publish),
      );
      return;
    case 'stream':
      hub.openStream(
        new NodeHttpSubscriber(decision.token, hub.context, decision.headers, res),
        decision,
        origin,
      );
  }
}

/**
 * Calls `publish` once `res` can be written, never if it cannot: an event is published only if
 * its publisher can get the answer. node:http emits a request as soon as its head is parsed and
 * reads on, so a complete POST may belong to a connection that is already lost:
 * - bytes after it in the same read that node refuses: node answers `400` alone and destroys the
 *   socket before the body's 'end';
 * - an earlier answer with `Connection: close` (a `413`, node's own `400` to a request without
 *   `Host`, a `Proxy-Connection: close`): the response waits in node's queue for a socket that
 *   ends with that earlier answer, and never gets it.
 * So a pipelined POST is published when its response gets the socket (the earlier answers are
 * out, as the fast path does it), and only while the socket can still be written.
 */
function whenAnswerable(res: http.ServerResponse, publish: () => void): void {
  if (res.destroyed) {
    debug('POST not published: its connection closed before the body was complete');
    return;
  }
  const socket = res.socket;
  if (socket === null) {
    // Queued behind earlier responses; 'socket' comes when they are out (never, if one closes).
    res.once('socket', () => whenAnswerable(res, publish));
    return;
  }
  if (socket.destroyed || !socket.writable) {
    debug('POST not published: its connection can no longer be answered');
    return;
  }
  publish();
}

/** Writes a complete answer. */
function writeAnswer(
  hub: Hub,
  res: http.ServerResponse,
  answer: Answer,
  origin: string | undefined,
): void {
  writeHead(res, answer, hub.answers.headersFor(answer, origin));
}

function writeHead(res: http.ServerResponse, answer: Answer, headers: readonly string[]): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(answer.status, headers as string[]);
  res.end(answer.body);
}

const kSubscriber = Symbol('eventsource.subscriber');

/**
 * A stream over a ServerResponse. Events are written straight to the socket, already framed as
 * HTTP/1.1 chunks (see `Chunk`), so that each write costs one socket write and no per-response
 * framing; the response itself only sends the head and the last chunk.
 */
export class NodeHttpSubscriber extends Subscriber {
  private socket: Socket | null = null;
  private isChunked = false;

  constructor(
    token: string,
    context: SubscriberContext,
    headers: readonly string[],
    private readonly res: http.ServerResponse,
  ) {
    super(token, context, headers);
  }

  refuse(answer: Answer, headers: readonly string[]): void {
    writeHead(this.res, answer, headers);
  }

  protected openSink(headers: readonly string[]): void {
    const res = this.res;
    res.writeHead(200, headers as string[]);
    res.flushHeaders();
    // A response only has its socket once earlier pipelined responses on the connection finished;
    // without it, writes go through the response (slower, same bytes).
    this.socket = res.socket;
    this.isChunked =
      (res as http.ServerResponse & { chunkedEncoding?: boolean }).chunkedEncoding === true;
    (res as unknown as Record<symbol, Subscriber>)[kSubscriber] = this;
    if (res.destroyed) this.handleClose();
    else {
      res.once('close', onResponseClose);
      // A response queued behind another one (a pipelined GET behind a stream) emits no 'close'
      // when its connection closes before it got the socket: the stream would stay subscribed for
      // ever. The connection's 'close' ends it (a second handleClose after the response's is a no-op).
      if (this.socket === null) res.req.socket.once('close', () => this.handleClose());
    }
  }

  protected send(chunk: Chunk): boolean {
    const socket = this.socket;
    if (socket === null) return this.res.write(chunk.raw);
    if (this.context.corkSingleWrites && socket.writableCorked === 0) {
      // Hold the bytes until the current tick ends, as Node does for every response it writes: the
      // event then leaves together with the publisher's reply, and the process reading both is
      // woken once instead of twice (on loopback that wake-up costs the sender more than the write).
      socket.cork();
      process.nextTick(uncorkSocket, socket);
    }
    return socket.write(this.isChunked ? chunk.framed : chunk.raw);
  }

  protected waitForDrain(): void {
    (this.socket ?? this.res).once('drain', () => this.flush());
  }

  protected sinkBufferedBytes(): number {
    return this.socket?.writableLength ?? this.res.writableLength;
  }

  protected endSink(): void {
    this.res.end();
  }

  protected destroySink(): void {
    (this.socket ?? this.res).destroy();
  }
}

function uncorkSocket(socket: Socket): void {
  socket.uncork();
}

// One shared listener for every response, rather than a closure per subscriber.
function onResponseClose(this: http.ServerResponse): void {
  (this as unknown as Record<symbol, Subscriber | undefined>)[kSubscriber]?.handleClose();
}
