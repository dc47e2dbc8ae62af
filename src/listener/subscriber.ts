/**
 * One open event stream: an ordered outgoing queue over a transport's sink, with backpressure and a
 * cut-off. Transport-neutral: each transport (node:http, HTTP/2) extends it with the few methods
 * that reach its own stream, the sink.
 *
 * Events are written to the sink at once, in one pass over the subscribers, instead of waiting
 * behind a cork. When the sink is full (`send()` returned false) further events wait in this
 * subscriber's own queue until the sink drains; when the sink's buffer and the queue together
 * exceed `maxBuffer` bytes, the subscriber is cut off, so a client that stops reading cannot grow
 * the listener's memory.
 */
import { debugListener as debug } from '../debug.js';
import type { Chunk } from './chunk.js';
import type { Answer } from './hub.js';

/** What every subscriber of one listener shares: limits, counters (for `/stats`), the open streams. */
export interface SubscriberContext {
  /** Bytes that may wait for one subscriber before it is cut off. */
  readonly maxBuffer: number;
  /** Every open stream, for keepalive and shutdown. */
  readonly streams: Set<Subscriber>;
  /**
   * Whether a write may be held until the end of the current tick (set by the broker while it
   * delivers to a single subscriber). A fan-out writes at once, so that the first subscribers do
   * not wait for the last ones.
   */
  corkSingleWrites: boolean;
  delivered: number;
  dropped: number;
  /** Bytes waiting in every subscriber's queue (not yet handed to a sink), for `maxMemory`. */
  queuedBytes: number;
  /** POSTs refused with `503` because of `maxMemory`. */
  refusedForMemory: number;
  cutOff: number;
  /** Events written as replay (after a Last-Event-ID, or kept while nobody was connected). */
  replayed: number;
  /** Streams ended because their access grant expired. */
  expired: number;
  /** Streams replaced by a newer subscriber (`takeover`). */
  takenOver: number;
  /** Told when an opened stream closes, after its broker let go of it (presence). */
  onLeave: ((subscriber: Subscriber) => void) | undefined;
}

/**
 * One open stream for one token, as brokers see it: `open()`, `write()`, `end()`, `detach()`,
 * `cutOff()`, and `onClose`. A transport implements the sink methods (the protected abstract ones).
 */
export abstract class Subscriber {
  /** Chunks waiting for the sink to drain, oldest first; undefined while the sink accepts writes. */
  private queue: Chunk[] | undefined = undefined;
  private queuedBytes = 0;
  /** Bytes of replay waiting, allowed on top of `maxBuffer` until the queue is empty again. */
  private allowance = 0;
  private pendingEnd = false;
  /**
   * Keepalive ticks since the last write: every write sets it to 0, the hub's one keepalive timer
   * counts it up and writes a comment when it reaches the ticks of one keepalive interval.
   */
  silentTicks = 0;
  /** Whether the stream has ended (or is ending); writes are refused. */
  isClosed = false;
  /** Set by the broker: called once when the stream closes, for whatever reason. */
  onClose: ((subscriber: Subscriber) => void) | undefined = undefined;

  /**
   * @param token The token subscribed to.
   * @param context What all subscribers of the listener share.
   * @param headers The stream's response headers as a flat list (name, value, ...).
   */
  constructor(
    readonly token: string,
    readonly context: SubscriberContext,
    private readonly headers: readonly string[],
  ) {}

  /**
   * Sends the event-stream headers at once; the broker calls this when it accepts the subscriber.
   * Until then the transport can still answer an error (423) with {@link refuse}.
   */
  open(): void {
    this.openSink(this.headers);
    // A client that left while the broker decided: the sink closed the stream at once (see
    // openSink), and it must not stay counted among the open streams.
    if (!this.isClosed) this.context.streams.add(this);
  }

  /**
   * Writes a chunk now, or queues it behind earlier ones when the sink is full.
   * @returns false when the subscriber is closed (the chunk was not taken).
   */
  write(chunk: Chunk, isReplay = false): boolean {
    if (this.isClosed) return false;
    this.silentTicks = 0;
    // A replay comes from the token's history, which holds those bytes anyway: it may queue past the
    // limit. The limit applies to what is already waiting, so one event larger than the limit still
    // goes to a reader that keeps up.
    if (isReplay) {
      this.allowance += chunk.size;
      if (chunk.seq !== 0) this.context.replayed++;
    } else if (this.queue === undefined)
      this.allowance = 0; // Nothing waits: no replay to allow for.
    else if (
      this.queuedBytes + this.sinkBufferedBytes() >
      this.context.maxBuffer + this.allowance
    ) {
      if (chunk.seq !== 0) this.context.dropped++;
      this.cutOff();
      return true;
    }
    if (this.queue !== undefined) {
      this.queue.push(chunk);
      this.queuedBytes += chunk.size;
      this.context.queuedBytes += chunk.size;
      return true;
    }
    // Only events count (seq 0 marks keepalive comments, `retry:` lines and gap signals).
    if (chunk.seq !== 0) this.context.delivered++;
    if (!this.send(chunk)) {
      this.queue = [];
      this.waitForDrain();
    }
    return true;
  }

  /** Writes what waited, once the sink drained; the transport calls it. */
  protected flush(): void {
    const queue = this.queue;
    if (queue === undefined || this.isClosed) return;
    let index = 0;
    while (index < queue.length) {
      const chunk = queue[index++] as Chunk;
      this.queuedBytes -= chunk.size;
      this.context.queuedBytes -= chunk.size;
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
    this.waitForDrain();
  }

  /** Ends the stream cleanly once everything queued was written. */
  end(): void {
    if (this.isClosed) return;
    if (this.queue !== undefined) {
      this.pendingEnd = true;
      return;
    }
    this.isClosed = true;
    this.endSink();
  }

  /**
   * Takes the chunks not yet handed to the sink (for a takeover) and ends the stream. A half-open
   * connection never finishes ending, so the stream is destroyed after a second.
   * @returns The chunks that this subscriber will never send.
   */
  detach(): Chunk[] {
    const queue = this.queue ?? [];
    this.queue = undefined;
    this.context.queuedBytes -= this.queuedBytes;
    this.queuedBytes = 0;
    this.end();
    setTimeout(() => this.destroySink(), 1000).unref();
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
    this.context.queuedBytes -= this.queuedBytes;
    this.queuedBytes = 0;
    this.isClosed = true;
    this.destroySink();
  }

  /** Bytes waiting for this subscriber (queue plus the sink's buffer). */
  get bufferedBytes(): number {
    return this.queuedBytes + this.sinkBufferedBytes();
  }

  /** The transport calls this once when its stream closed, for whatever reason. */
  handleClose(): void {
    this.isClosed = true;
    const wasOpen = this.context.streams.delete(this);
    if (this.queue !== undefined) {
      this.context.dropped += countEvents(this.queue);
      this.queue = undefined;
      this.context.queuedBytes -= this.queuedBytes;
      this.queuedBytes = 0;
    }
    const onClose = this.onClose;
    this.onClose = undefined;
    onClose?.(this);
    if (wasOpen) this.context.onLeave?.(this);
  }

  // The sink: what a transport provides.

  /**
   * Answers the request with a complete answer instead of a stream (a `423`, or the error of a
   * broker that failed). Only before {@link open}.
   */
  abstract refuse(answer: Answer, headers: readonly string[]): void;
  /**
   * Sends status 200 and `headers`; from then on the transport calls {@link handleClose} once
   * when its stream closes (at once if it already has).
   */
  protected abstract openSink(headers: readonly string[]): void;
  /** Writes one block; false when the sink's buffer is full (then {@link waitForDrain} follows). */
  protected abstract send(chunk: Chunk): boolean;
  /** Calls {@link flush} once the sink can take more. */
  protected abstract waitForDrain(): void;
  /** Bytes written to the sink but not yet sent. */
  protected abstract sinkBufferedBytes(): number;
  /** Ends the stream cleanly after what was written. */
  protected abstract endSink(): void;
  /** Ends the stream at once (a slow reader cut off, a half-open connection). */
  protected abstract destroySink(): void;
}

/** The events (not comments or `retry:` lines) among queued chunks, for the `/stats` counters. */
function countEvents(queue: Chunk[] | undefined): number {
  let count = 0;
  if (queue !== undefined) for (const chunk of queue) if (chunk.seq !== 0) count++;
  return count;
}
