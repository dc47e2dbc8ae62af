/**
 * A POST's body as a transport reads it: its pieces, kept as they arrive while within `maxBody`,
 * and counted hub-wide while they arrive, so that `maxMemory` sees the bodies still being received.
 */

/** The bytes of every body being received, hub-wide. */
export class Receiving {
  bytes = 0;
}

/** The body of a POST as it arrives: the pieces kept while within `maxBody`, and its size. */
export class PostBody {
  first: Buffer | undefined = undefined;
  rest: Buffer[] | undefined = undefined;
  size = 0;
  /** When the first piece arrived (`performance.now()`), when timed; 0 before. */
  startedAt = 0;
  /** What this body counts in `receiving` now. */
  private countedBytes = 0;

  /**
   * @param maxBody The largest body kept.
   * @param receiving The hub-wide count of bytes being received, which this body adds to.
   * @param isTimed Whether to note when the first piece arrives (for the metrics).
   */
  constructor(
    private readonly maxBody: number,
    private readonly receiving: Receiving = new Receiving(),
    private readonly isTimed = false,
  ) {}

  /** Takes a piece (kept as is, not copied) unless the body is already over the limit. */
  add(piece: Buffer): void {
    if (this.isTimed && this.size === 0) this.startedAt = performance.now();
    this.size += piece.length;
    if (this.size > this.maxBody) return;
    if (this.first === undefined) this.first = piece;
    else (this.rest ??= [this.first]).push(piece);
    this.countedBytes += piece.length;
    this.receiving.bytes += piece.length;
  }

  /**
   * Stops counting this body as being received (its request is complete or gone); what it holds
   * stays readable.
   */
  release(): void {
    this.receiving.bytes -= this.countedBytes;
    this.countedBytes = 0;
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
    this.release();
    this.first = this.rest = undefined;
    this.size = 0;
    this.startedAt = 0;
  }
}
