/**
 * A block of the event stream, encoded once and written as is to every subscriber.
 *
 * Streams to HTTP/1.1 clients use chunked transfer encoding, so the block is kept already framed as
 * one HTTP chunk (`<hex length>\r\n<block>\r\n`) and written straight to the socket, with no
 * per-subscriber framing. It is kept as a string, which the socket encodes as it writes (no Buffer
 * per event for the usual one-subscriber case, and nothing but a string held in the history); an
 * event going to several subscribers is encoded once into a Buffer (`share()`) that every write reuses.
 * HTTP/1.0 and HTTP/2 streams get the same bytes without the frame ({@link Chunk.raw}).
 */
export class Chunk {
  /** The block framed as one HTTP/1.1 chunk: text, or a Buffer once shared (or when large). */
  framed: string | Buffer;
  /** Bytes of the framed block. */
  readonly size: number;
  private readonly headerLength: number;
  /** The block without the frame, made at the first {@link raw} (HTTP/2, HTTP/1.0). */
  private unframed: string | Buffer | undefined = undefined;

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
    this.size = header.length + length + 2;
    const text = `${header}${block}\r\n`;
    // A large block goes to a Buffer at once: outside the JavaScript heap, it is freed as soon as
    // the history and the sockets let go of it, and a slow socket keeps a view, not a copy.
    this.framed = length > LARGE ? Buffer.from(text) : text;
  }

  /** Encodes the chunk once, for writing it to many sockets. */
  share(): void {
    if (typeof this.framed === 'string') {
      this.framed = Buffer.from(this.framed);
      this.unframed = undefined;
    }
  }

  /**
   * The block without the chunk frame, for HTTP/1.0 and HTTP/2 streams: made once, so that a
   * fan-out to many such streams writes the same bytes to each.
   */
  get raw(): Buffer | string {
    if (this.unframed !== undefined) return this.unframed;
    const framed = this.framed;
    this.unframed =
      typeof framed === 'string'
        ? framed.slice(this.headerLength, framed.length - 2)
        : framed.subarray(this.headerLength, framed.length - 2);
    return this.unframed;
  }
}

/** Blocks larger than this many bytes are kept as Buffers from the start. */
const LARGE = 16 * 1024;
