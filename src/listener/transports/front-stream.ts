/**
 * An event stream served by the fast path (`front.ts`): a {@link Subscriber} over the socket of a
 * fast-path connection, with no node:http request or response behind it. The connection writes
 * the head and the end (it knows whether the connection lives on after the stream); the stream
 * writes its blocks straight to the socket, already framed as HTTP/1.1 chunks (see `Chunk`).
 *
 * An idle stream so holds the socket, its connection and this record, where node:http keeps an
 * IncomingMessage, a ServerResponse, its parser and their headers for the stream's whole life
 * (the memory per idle subscriber in BENCHMARKS.md).
 */
import type net from 'node:net';
import type { Chunk } from '../chunk.js';
import type { Answer } from '../hub.js';
import { Subscriber, type SubscriberContext } from '../subscriber.js';

/** What the stream needs of its connection (`front-connection.ts`). */
export interface StreamConnection {
  readonly socket: net.Socket;
  /** The stream the connection serves now, if any: a stream it no longer serves is over. */
  readonly stream: FrontSubscriber | undefined;
  /** Writes the stream's head (status 200 and `headers`). */
  openStream(headers: readonly string[]): void;
  /** Answers the request instead of a stream (a `423`, a broker's error). */
  refuseStream(answer: Answer, headers: readonly string[]): void;
  /** Writes the last chunk; the connection then serves its next request, or closes. */
  endStream(): void;
}

/** A stream over a fast-path connection. */
export class FrontSubscriber extends Subscriber {
  /** Set by {@link waitForDrain}: the connection's 'drain' then flushes the queue. */
  private isWaitingForDrain = false;
  /** Whether the head was written: from then on the connection's close is the stream's. */
  isOpen = false;

  constructor(
    token: string,
    context: SubscriberContext,
    headers: readonly string[],
    private readonly connection: StreamConnection,
  ) {
    super(token, context, headers);
  }

  refuse(answer: Answer, headers: readonly string[]): void {
    if (this.connection.stream === this) this.connection.refuseStream(answer, headers);
  }

  protected openSink(headers: readonly string[]): void {
    this.isOpen = true;
    if (this.connection.stream !== this) {
      // The connection closed while the broker decided: close once open() has counted the
      // stream (it adds it to the open streams after this returns).
      process.nextTick(closeStream, this);
      return;
    }
    this.connection.openStream(headers);
  }

  protected send(chunk: Chunk): boolean {
    const socket = this.connection.socket;
    if (this.context.corkSingleWrites && socket.writableCorked === 0) {
      // As on node:http (node-http.ts): the event leaves with the publisher's reply, one wake-up.
      socket.cork();
      process.nextTick(uncorkSocket, socket);
    }
    return socket.write(chunk.framed);
  }

  protected waitForDrain(): void {
    this.isWaitingForDrain = true;
  }

  /** The socket drained (the connection listens for 'drain' once for every stream it serves). */
  drained(): void {
    if (!this.isWaitingForDrain) return;
    this.isWaitingForDrain = false;
    this.flush();
  }

  protected sinkBufferedBytes(): number {
    return this.connection.socket.writableLength;
  }

  protected endSink(): void {
    if (this.connection.stream === this) this.connection.endStream();
  }

  protected destroySink(): void {
    // As node:http destroys the response's socket (a takeover's old stream a second after its
    // end, even if the connection went back to keep-alive), unless it carries another stream now.
    const current = this.connection.stream;
    if (current === this || current === undefined) this.connection.socket.destroy();
  }

  /** The connection closed, or its client ended its side: the stream is over. */
  connectionClosed(): void {
    // A stream not yet open closes when the broker opens it (openSink).
    if (this.isOpen) this.handleClose();
  }
}

function closeStream(subscriber: FrontSubscriber): void {
  subscriber.handleClose();
}

function uncorkSocket(socket: net.Socket): void {
  socket.uncork();
}
