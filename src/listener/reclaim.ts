/**
 * Gives the memory of large events back to the system while they keep coming.
 *
 * A large event lives in memory the JavaScript heap barely sees: the request body arrives as
 * Buffers of up to 64 KiB from the C allocator, and the encoded event is a Buffer kept in the
 * history until newer events push it out. V8 decides when to collect by the size of its own heap,
 * where each of those Buffers weighs a few dozen bytes, so dead Buffers pile up between two
 * collections, and glibc's allocator spreads the next ones over fresh pages that the process then
 * keeps.
 *
 * So the listener counts the bytes of large bodies (16 KiB or more each) and, once they reach half
 * the JavaScript heap left live by the last collection (and at least 4 MiB), asks V8 for a full
 * collection. The cost of a collection grows with the heap, and so does the interval, so the cost
 * per byte of event stays the same for a small listener and for one holding thousands of streams;
 * small events never trigger it. It forces collections in the whole process, so only the CLI (or
 * `reclaimBodies: true`) turns it on. What it saves is measured by `npm run bench:large-events`
 * (BENCHMARKS.md, "Large events").
 */
import v8 from 'node:v8';
import vm from 'node:vm';

/** Bodies up to this size are assembled in one reused buffer; larger ones get their own. */
const ASSEMBLY_LIMIT = 1024 * 1024;

/**
 * Decodes a body that arrived in several pieces. `Buffer.concat` would take a fresh body-sized
 * block from the allocator for every request, only to decode it at once and drop it; one buffer
 * reused by every request (decoding is synchronous, so two requests never use it at once) leaves
 * the allocator alone, and it saves a copy per request.
 */
export class BodyAssembler {
  private buffer: Buffer | undefined;

  /** The UTF-8 text of `pieces`, which hold `size` bytes in all. */
  decode(pieces: readonly Buffer[], size: number): string {
    if (size > ASSEMBLY_LIMIT) return Buffer.concat(pieces, size).toString('utf8');
    let buffer = this.buffer;
    if (buffer === undefined || buffer.length < size) {
      // Powers of two from 64 KiB: a few sizes cover every body up to the limit.
      let length = 64 * 1024;
      while (length < size) length *= 2;
      buffer = this.buffer = Buffer.allocUnsafeSlow(length);
    }
    let offset = 0;
    for (const piece of pieces) offset += piece.copy(buffer, offset);
    return buffer.toString('utf8', 0, size);
  }
}

/** Bodies at least this large count towards the next collection. */
export const LARGE_BODY = 16 * 1024;
/** Fewest bytes of large bodies between two collections. */
const MIN_INTERVAL = 4 * 1024 * 1024;
/**
 * How long after history was let go of with no request (a token's grace ended) the collection
 * runs: the graces of tokens that were busy together end together, and one collection serves them.
 */
const RELEASE_DELAY_MS = 200;

/** Counts large bodies and runs a full collection after enough of them. */
export class BodyReclaimer {
  private pending = 0;
  /** Bytes of large bodies until the next collection: half the heap left live by the last one. */
  private interval = MIN_INTERVAL;
  /** Bytes of history let go of with no request since the last collection. */
  private releasedBytes = 0;
  private releaseTimer: NodeJS.Timeout | undefined = undefined;

  constructor(private readonly collect: () => void) {}

  /**
   * Call when the listener let go of `bytes` of history with no request to count them (a token's
   * grace ended): once they reach 4 MiB, a collection follows shortly, so that an idle listener
   * gives that memory back too instead of holding it until the next large POST.
   */
  released(bytes: number): void {
    this.releasedBytes += bytes;
    if (this.releasedBytes < MIN_INTERVAL || this.releaseTimer !== undefined) return;
    this.releaseTimer = setTimeout(() => {
      this.releaseTimer = undefined;
      this.releasedBytes = 0;
      this.pending = 0;
      this.collect();
    }, RELEASE_DELAY_MS).unref();
  }

  /** Cancels a collection that was waiting (the listener closes). */
  stop(): void {
    clearTimeout(this.releaseTimer);
    this.releaseTimer = undefined;
  }

  /** Call once a body of `size` bytes was handled and is no longer referenced. */
  handled(size: number): void {
    if (size < LARGE_BODY) return;
    this.pending += size;
    if (this.pending < this.interval) return;
    this.pending = 0;
    this.collect();
    this.interval = Math.max(MIN_INTERVAL, v8.getHeapStatistics().used_heap_size / 2);
  }
}

let collector: (() => void) | null | undefined;

/**
 * V8's `gc()`, without `--expose-gc` on the command line: the flag is switched on just long enough
 * to create one context that has the function, then off again, so code created later sees no `gc`
 * global. `undefined` when the runtime refuses.
 */
export function garbageCollector(): (() => void) | undefined {
  if (collector !== undefined) return collector ?? undefined;
  collector = null;
  const existing = (globalThis as { gc?: unknown }).gc;
  if (typeof existing === 'function') {
    collector = existing as () => void;
    return collector;
  }
  try {
    v8.setFlagsFromString('--expose-gc');
    const found: unknown = vm.runInNewContext('gc');
    if (typeof found === 'function') collector = found as () => void;
  } catch {
    // Leave collection to V8.
  } finally {
    v8.setFlagsFromString('--no-expose-gc');
  }
  return collector ?? undefined;
}
