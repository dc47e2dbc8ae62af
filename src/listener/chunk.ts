/**
 * A block of the event stream, encoded once and written as is to every subscriber.
 *
 * Streams to HTTP/1.1 clients use chunked transfer encoding, so the block is stored already framed
 * as one HTTP chunk (`<hex length>\r\n<block>\r\n`): writing an event to a thousand sockets is a
 * thousand writes of the same Buffer, with no per-subscriber framing or copying. HTTP/1.0 clients
 * get the same bytes without the frame (a view into the same Buffer).
 */
export class Chunk {
  /** The block framed as one HTTP/1.1 chunk. */
  readonly framed: Buffer;
  private readonly headerLength: number;

  /**
   * @param block The SSE block (text ending with a blank line).
   * @param seq The event's sequence number (0 for blocks that are not events).
   * @param id The event's `id:` value, if it has one.
   */
  constructor(
    block: string,
    readonly seq = 0,
    readonly id: string | undefined = undefined,
  ) {
    const length = Buffer.byteLength(block);
    const header = `${length.toString(16)}\r\n`;
    this.headerLength = header.length;
    this.framed = Buffer.from(`${header}${block}\r\n`);
  }

  /** The block without the chunk frame, for HTTP/1.0 streams. */
  get raw(): Buffer {
    return this.framed.subarray(this.headerLength, this.framed.length - 2);
  }

  /** Bytes this chunk holds. */
  get size(): number {
    return this.framed.length;
  }
}
