/**
 * One open event stream: an ordered outgoing queue over a socket, with backpressure and a cut-off.
 *
 * Events are written straight to the socket (already framed, see `Chunk`), so each subscriber's
 * bytes leave at once, in one pass over the subscribers, instead of waiting behind a cork. When the
 * socket's buffer is full (`write()` returned false) further events wait in this subscriber's own
 * queue until `drain`; when the socket's buffer and the queue together exceed `maxBuffer` bytes, the
 * subscriber is cut off, so a client that stops reading cannot grow the listener's memory.
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { debugListener as debug } from '../debug.js';
import type { Chunk } from './chunk.js';

/** What every subscriber of one listener shares: limits, counters (for `/stats`), the open streams. */
export interface SubscriberContext {
  /** Bytes that may wait for one subscriber before it is cut off. */
  readonly maxBuffer: number;
  /** Headers of every event stream (content type, cache, CORS added per request). */
  readonly headers: Record<string, string>;
  /** Every open stream, for keepalive and shutdown. */
  readonly streams: Set<Subscriber>;
  /**
   * Whether a write is held until the end of the current tick (set by the broker while it
   * delivers to a single subscriber). A fan-out writes at once, so that the first subscribers do
   * not wait for the last ones.
   */
  corkSingleWrites: boolean;
  delivered: number;
  dropped: number;
  cutOff: number;
}

const kSubscriber = Symbol('eventsource.subscriber');

/** One open stream for one token. */
export class Subscriber {
  /** Chunks waiting for `drain`, oldest first; undefined while the socket accepts writes. */
  private queue: Chunk[] | undefined = undefined;
  private queuedBytes = 0;
  /** Bytes of replay waiting, allowed on top of `maxBuffer` until the queue is empty again. */
  private allowance = 0;
  /** Whether nothing was written since the last keepalive tick. */
  isIdle = false;
  /** Whether the stream has ended (or is ending); writes are refused. */
  isClosed = false;
  /** Set by the broker: called once when the stream closes, for whatever reason. */
  onClose: ((subscriber: Subscriber) => void) | undefined = undefined;
  private socket: Socket | null = null;
  private isChunked = false;

  /**
   * @param token The token subscribed to.
   * @param res The response; nothing is sent until {@link open}.
   * @param context What all subscribers of the listener share.
   * @param extraHeaders Headers for this response only (CORS), or undefined.
   */
  constructor(
    readonly token: string,
    private readonly res: ServerResponse,
    readonly context: SubscriberContext,
    private readonly extraHeaders: Record<string, string> | undefined,
  ) {}

  /**
   * Sends the event-stream headers at once; the broker calls this when it accepts the subscriber.
   * Until then the response can still answer an error (423).
   */
  open(): void {
    const res = this.res;
    res.writeHead(
      200,
      this.extraHeaders === undefined
        ? this.context.headers
        : { ...this.context.headers, ...this.extraHeaders },
    );
    res.flushHeaders();
    // A response only has its socket once earlier pipelined responses on the connection finished;
    // without it, writes go through the response (slower, same bytes).
    this.socket = res.socket;
    this.isChunked =
      (res as ServerResponse & { chunkedEncoding?: boolean }).chunkedEncoding === true;
    (res as unknown as Record<symbol, Subscriber>)[kSubscriber] = this;
    this.context.streams.add(this);
    if (res.destroyed) this.handleClose();
    else res.once('close', onResponseClose);
  }

  /**
   * Writes a chunk now, or queues it behind earlier ones when the socket is full.
   * @returns false when the subscriber is closed (the chunk was not taken).
   */
  write(chunk: Chunk, isReplay = false): boolean {
    if (this.isClosed) return false;
    this.isIdle = false;
    // A replay comes from the token's history, which holds those bytes anyway: it may queue past the
    // limit. The limit applies to what is already waiting, so one event larger than the limit still
    // goes to a reader that keeps up.
    if (isReplay) this.allowance += chunk.size;
    else if (this.queue === undefined)
      this.allowance = 0; // Nothing waits: no replay to allow for.
    else if (
      this.queuedBytes + (this.socket?.writableLength ?? this.res.writableLength) >
      this.context.maxBuffer + this.allowance
    ) {
      if (chunk.seq !== 0) this.context.dropped++;
      this.cutOff();
      return true;
    }
    if (this.queue !== undefined) {
      this.queue.push(chunk);
      this.queuedBytes += chunk.size;
      return true;
    }
    // Only events count (seq 0 marks keepalive comments, `retry:` lines and gap signals).
    if (chunk.seq !== 0) this.context.delivered++;
    if (!this.send(chunk)) {
      this.queue = [];
      (this.socket ?? this.res).once('drain', () => this.flush());
    }
    return true;
  }

  private send(chunk: Chunk): boolean {
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

  private flush(): void {
    const queue = this.queue;
    if (queue === undefined || this.isClosed) return;
    let index = 0;
    while (index < queue.length) {
      const chunk = queue[index++] as Chunk;
      this.queuedBytes -= chunk.size;
      if (chunk.seq !== 0) this.context.delivered++;
      if (!this.send(chunk)) break;
    }
    if (index === queue.length) {
      this.queue = undefined;
      this.queuedBytes = 0;
      this.allowance = 0;
      if (this.pendingEnd) this.end();
      return;
    }
    this.queue = queue.slice(index);
    (this.socket ?? this.res).once('drain', () => this.flush());
  }

  private pendingEnd = false;

  /** Ends the stream cleanly once everything queued was written. */
  end(): void {
    if (this.isClosed) return;
    if (this.queue !== undefined) {
      this.pendingEnd = true;
      return;
    }
    this.isClosed = true;
    this.res.end();
  }

  /**
   * Takes the chunks not yet handed to the socket (for a takeover) and ends the stream. A half-open
   * connection never finishes ending, so the socket is destroyed after a second.
   * @returns The chunks that this subscriber will never send.
   */
  detach(): Chunk[] {
    const queue = this.queue ?? [];
    this.queue = undefined;
    this.queuedBytes = 0;
    this.end();
    const socket = this.socket;
    if (socket !== null) setTimeout(() => socket.destroy(), 1000).unref();
    return queue;
  }

  /** Cuts the subscriber off (its reader is too slow); queued events are dropped. */
  cutOff(): void {
    debug(
      'cutting off a subscriber of %s: more than %d bytes waiting',
      this.token,
      this.context.maxBuffer,
    );
    this.context.cutOff++;
    this.context.dropped += countEvents(this.queue);
    this.queue = undefined;
    this.queuedBytes = 0;
    this.isClosed = true;
    (this.socket ?? this.res).destroy();
  }

  /** Bytes waiting for this subscriber (queue plus socket buffer). */
  get bufferedBytes(): number {
    return this.queuedBytes + (this.socket?.writableLength ?? 0);
  }

  /** Called from the response's `close` event. */
  handleClose(): void {
    this.isClosed = true;
    this.context.streams.delete(this);
    if (this.queue !== undefined) {
      this.context.dropped += countEvents(this.queue);
      this.queue = undefined;
      this.queuedBytes = 0;
    }
    const onClose = this.onClose;
    this.onClose = undefined;
    onClose?.(this);
  }
}

/** The events (not comments or `retry:` lines) among queued chunks, for the `/stats` counters. */
function countEvents(queue: Chunk[] | undefined): number {
  let count = 0;
  if (queue !== undefined) for (const chunk of queue) if (chunk.seq !== 0) count++;
  return count;
}

function uncorkSocket(socket: Socket): void {
  socket.uncork();
}

// One shared listener for every response, rather than a closure per subscriber.
function onResponseClose(this: ServerResponse): void {
  (this as unknown as Record<symbol, Subscriber | undefined>)[kSubscriber]?.handleClose();
}
