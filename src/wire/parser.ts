/**
 * The SSE parser: the WHATWG "event stream interpretation" algorithm, streaming.
 *
 * Feed it bytes (`Uint8Array`, decoded as UTF-8 across chunk boundaries, invalid bytes becoming
 * U+FFFD) or already-decoded strings, in chunks of any size; it calls back for each dispatched
 * event, each valid `retry:` and (optionally) each comment.
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
 */
import { Buffer, isAscii } from 'node:buffer';
import { TextDecoder } from 'node:util';
import { EventTooLargeError } from '../errors.js';

/** An event the parser dispatched. */
export interface ParsedEvent {
  /** The event type: the last `event:` field's value, or `message` when there was none. */
  event: string;
  /** The data: every `data:` field's value joined with LF. */
  data: string;
  /** The last event ID string at dispatch time (it persists across events); `''` before any id. */
  id: string;
}

/** What the parser calls back. */
export interface ParserCallbacks {
  /** Called for each dispatched event. */
  onEvent: (event: ParsedEvent) => void;
  /** Called for each `retry:` field whose value is all ASCII digits, with that value. */
  onRetry?: ((ms: number) => void) | undefined;
  /** Called for each comment line, with the text after the colon. */
  onComment?: ((comment: string) => void) | undefined;
  /** Called when an event grows past `maxEventLength`; the event is discarded. */
  onError?: ((error: Error) => void) | undefined;
}

/** Options for {@link createParser}. */
export interface ParserOptions {
  /**
   * The most UTF-16 code units one event may take before it is discarded with an
   * `EventTooLargeError`: every line from the event's first `data` line on, whatever its field
   * (field names, comments and line ends included, a line end counting 1), plus the line being
   * read. A line before the first `data` line only counts on its own. This bounds the memory an
   * event holds, not only its data: see the README's parser notes. Defaults to `Infinity` (no limit).
   */
  maxEventLength?: number | undefined;
  /**
   * The last event ID to start from, as if an earlier stream had set it (a client resuming with a
   * known ID). Any string without NUL, CR or LF. Defaults to `''`.
   */
  lastEventId?: string | undefined;
}

/** A streaming parser made by {@link createParser}. */
export interface Parser {
  /** Feeds a chunk: bytes (UTF-8) or a string. */
  feed(chunk: Uint8Array | string): void;
  /**
   * Ends the stream: flushes the UTF-8 decoder and discards any incomplete event, as the spec says
   * ("If the file ends in the middle of an event, before the final empty line, the incomplete event
   * is not dispatched"). The parser is ready for a new stream afterwards (BOM handling included),
   * keeping its last event ID.
   */
  end(): void;
  /** Forgets everything but the last event ID and starts a new stream (a reconnection). */
  reset(): void;
  /** The last event ID string. */
  readonly lastEventId: string;
}

const LF = 10;
const CR = 13;
const COLON = 58;
const SPACE = 32;
const ALL_DIGITS = /^[0-9]+$/;
// The fewest data lines an event gathers before its data string is made flat (see flattenData()):
// far more than usual events have, so that they never pay for it.
const MIN_FLATTEN_PIECES = 1024;
// One options object for every streaming decode() call.
const STREAM = { stream: true } as const;

/**
 * The field value running from `from` to `end`, less one leading space.
 * [spec] If value starts with a U+0020 SPACE character, remove it from value.
 */
function valueOf(text: string, from: number, end: number): string {
  const start = from < end && text.charCodeAt(from) === SPACE ? from + 1 : from;
  return start >= end ? '' : text.slice(start, end);
}

/**
 * Creates a streaming SSE parser. Its callbacks run inside `feed()` (and `end()`): they must not
 * call `feed()`, `end()` or `reset()` of the same parser.
 * @param callbacks Where dispatched events, retries and comments go.
 * @param options The size limit and the starting last event ID.
 * @returns The parser.
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
 */
export function createParser(callbacks: ParserCallbacks, options: ParserOptions = {}): Parser {
  const { onEvent, onRetry, onComment, onError } = callbacks;
  const maxEventLength = options.maxEventLength ?? Infinity;
  if (
    !(Number.isSafeInteger(maxEventLength) && maxEventLength > 0) &&
    maxEventLength !== Infinity
  ) {
    throw new RangeError(
      `\`maxEventLength\` must be a positive integer or Infinity (UTF-16 code units held in memory), got ${maxEventLength}`,
    );
  }
  // The limit as a small integer, so the per-line check stays an integer comparison. 2 ** 30 - 1
  // is beyond any data buffer plus line: V8 strings hold at most 2 ** 29 - 24 characters. Without
  // a limit, an event counted past it (lines and comments can add up to more) is not discarded:
  // its count starts again.
  const limit = Math.min(maxEventLength, 2 ** 30 - 1);
  const hasLimit = maxEventLength !== Infinity;
  const startId = options.lastEventId ?? '';
  if (typeof startId !== 'string' || /[\0\r\n]/.test(startId)) {
    throw new TypeError(
      `\`lastEventId\` must be a string without CR, LF or NUL, got ${JSON.stringify(startId)}`,
    );
  }

  let decoder: TextDecoder | undefined;
  // The decoder was given bytes since it was last flushed, so it may hold the start of a character.
  let isDecoding = false;
  // Text of an incomplete line carried over from earlier chunks. Kept as pieces so that a very long
  // line arriving in many chunks is joined once, not re-concatenated and re-scanned per chunk.
  // The one array for the whole stream, emptied rather than replaced, and made with a string in
  // it: a fresh `[]` holds small integers as far as V8 is concerned, and the first push() of a
  // string into one deoptimised the scanning loop once per parser.
  const pending: string[] = [''];
  pending.length = 0;
  let pendingLength = 0;
  // A chunk ended with CR: if the next one starts with LF, that LF belongs to the same line end.
  let skipLeadingLF = false;
  let isStreamStart = true;
  let discarding = false;

  let data = '';
  let hasData = false;
  // [non-spec] What the event takes against the limit (see ParserOptions.maxEventLength): every
  // line from its first data line on, in full, with 1 for its line end; 0 while it has no data.
  // Field names and comments count because the memory they use is held too: V8 keeps a line's
  // value as a slice of the whole chunk it came in (which a comment may fill), and every data line
  // adds a node of about 32 bytes to the data string, which an empty `data:` line costs as well.
  let size = 0;
  // Data lines appended since the data string was last made flat (see appendData()). Neither is
  // reset per event, to keep the usual events free of the cost: an event that starts with some
  // count left over is made flat a little early, which costs little for a short string.
  let pieceCount = 0;
  let flattenAt = MIN_FLATTEN_PIECES;
  let eventType = '';
  let lastEventIdBuffer = startId;
  let lastEventId = startId;

  function dispatch(): void {
    // [spec] Set the last event ID string of the event source to the value of the last event ID buffer.
    lastEventId = lastEventIdBuffer;
    size = 0;
    if (discarding) {
      discarding = false;
      data = '';
      hasData = false;
      eventType = '';
      return;
    }
    // [spec] If the data buffer is an empty string, set the data buffer and the event type buffer
    // to the empty string and return.
    if (!hasData) {
      eventType = '';
      return;
    }
    // [spec] If the data buffer's last character is a U+000A LINE FEED (LF) character, then remove
    // the last character from the data buffer. (Done by joining with LF instead of appending it.)
    const event: ParsedEvent = { event: eventType || 'message', data, id: lastEventId };
    data = '';
    hasData = false;
    eventType = '';
    onEvent(event);
  }

  function processField(field: string, value: string, lineLength: number): void {
    switch (field) {
      case 'data':
        appendData(value, lineLength);
        break;
      case 'event':
        // [spec] Set the event type buffer to the field value.
        eventType = value;
        break;
      case 'id':
        setId(value, 0, value.length);
        break;
      case 'retry':
        // [spec] If the field value consists of only ASCII digits, then interpret the field value
        // as an integer in base ten, and set the event stream's reconnection time to that integer.
        // Otherwise, ignore the field.
        if (ALL_DIGITS.test(value)) onRetry?.(Number(value));
        break;
      default:
      // [spec] Otherwise: The field is ignored.
    }
  }

  // Appends the value of a data line of `lineLength` characters, which the caller has already
  // counted in `size` if the event had data before it.
  function appendData(value: string, lineLength: number): void {
    // [spec] Append the field value to the data buffer, then append a single U+000A LINE FEED (LF)
    // character to the data buffer. (The LF goes in front of the next value instead, so there is
    // no trailing LF to remove at dispatch.)
    if (hasData) {
      data += `\n${value}`;
      if (++pieceCount >= flattenAt) flattenData();
    } else {
      data = value;
      hasData = true;
      size = lineLength + 1;
    }
  }

  // An event of many data lines: V8 holds `data` as a tree of every piece appended (about 32
  // bytes a node, and each piece keeps the chunk it was cut from), several times what `size`
  // counts. Making it one flat string from time to time releases all that; the next time comes
  // after at least 1/64 as many pieces as the flat string has characters, so each character is
  // copied a bounded number of times, and the tree never holds more than max(1024, limit / 64)
  // pieces: 32 bytes each, half a byte per unit of the limit.
  function flattenData(): void {
    // Converting a string to a number first makes it flat (the cheapest way JavaScript has).
    Number(data);
    pieceCount = 0;
    flattenAt = Math.max(MIN_FLATTEN_PIECES, data.length >>> 6);
  }

  function setId(text: string, start: number, end: number): void {
    // [spec] If the field value does not contain U+0000 NULL, then set the last event ID buffer to
    // the field value. Otherwise, ignore the field.
    // (Scanned in the text it came from, before any string is made for it: ids are short, and a
    // loop over the chunk costs less than indexOf() on a fresh slice.)
    for (let i = start; i < end; i++) if (text.charCodeAt(i) === 0) return;
    lastEventIdBuffer = text.slice(start, end);
  }

  function processLine(text: string, start: number, end: number): void {
    // [spec] If the line is empty (a blank line): Dispatch the event.
    if (start === end) {
      dispatch();
      return;
    }
    if (discarding) return;
    const length = end - start;
    // [non-spec] The size limit: the line, with its line end, must fit in what the event has left.
    // pushPending() applies the same measure (less the line end) to a line still arriving, so that
    // where the chunks are cut does not change which events are discarded.
    if (size + length >= limit) {
      if (hasLimit) {
        tooLarge();
        return;
      }
      size = 0;
    }
    if (hasData) size += length + 1;
    // Fast paths for the usual `data:`, `id:` and `event:` lines, matched on their characters so
    // that no string is made for the field name. Each match first checks that the line is long
    // enough, so that no character is read past the end of the text: one such read would make V8
    // give up inlining that charCodeAt() for good, and every later call would cost a builtin call.
    const first = text.charCodeAt(start);
    if (first === 100) {
      if (
        length >= 5 &&
        text.charCodeAt(start + 4) === COLON &&
        text.charCodeAt(start + 1) === 97 &&
        text.charCodeAt(start + 2) === 116 &&
        text.charCodeAt(start + 3) === 97
      ) {
        appendData(valueOf(text, start + 5, end), length);
        return;
      }
    } else if (first === 105) {
      if (
        length >= 3 &&
        text.charCodeAt(start + 2) === COLON &&
        text.charCodeAt(start + 1) === 100
      ) {
        // [spec] If value starts with a U+0020 SPACE character, remove it from value.
        const from = length > 3 && text.charCodeAt(start + 3) === SPACE ? start + 4 : start + 3;
        setId(text, from, end);
        return;
      }
    } else if (first === 101) {
      if (
        length >= 6 &&
        text.charCodeAt(start + 5) === COLON &&
        text.charCodeAt(start + 1) === 118 &&
        text.charCodeAt(start + 2) === 101 &&
        text.charCodeAt(start + 3) === 110 &&
        text.charCodeAt(start + 4) === 116
      ) {
        // [spec] Set the event type buffer to the field value.
        eventType = valueOf(text, start + 6, end);
        return;
      }
    }
    processOtherLine(text, start, end);
  }

  // Comments, `retry:`, fields without a colon, unknown fields and fields spelled out in a way
  // processLine() does not match: the rarer lines, kept out of processLine() so that it stays
  // small enough for V8 to inline into the scanning loop.
  function processOtherLine(text: string, start: number, end: number): void {
    if (text.charCodeAt(start) === COLON) {
      // [spec] If the line starts with a U+003A COLON character (:): Ignore the line.
      onComment?.(text.slice(start + 1, end));
      return;
    }
    // [spec] If the line contains a U+003A COLON character: collect the characters on the line
    // before the first colon, and let field be that string; collect the characters after it, and
    // let value be that string. Otherwise, the string is not empty but does not contain a U+003A
    // COLON character: process the field using the whole line as the field name, and the empty
    // string as the field value.
    // The colon is looked for within the line only: indexOf() would run on past the line end, and
    // over a chunk of many colon-less lines that becomes quadratic.
    let colon = start + 1;
    while (colon < end && text.charCodeAt(colon) !== COLON) colon++;
    processField(text.slice(start, colon), valueOf(text, colon + 1, end), end - start);
  }

  function tooLarge(): void {
    discarding = true;
    data = '';
    hasData = false;
    size = 0;
    onError?.(new EventTooLargeError(maxEventLength));
  }

  function feedText(chunk: string): void {
    let text = chunk;
    if (isStreamStart && text.length > 0) {
      isStreamStart = false;
      // [spec] One leading U+FEFF BYTE ORDER MARK character must be ignored if any are present.
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    if (text.length === 0) return;
    let position = 0;
    if (skipLeadingLF) {
      skipLeadingLF = false;
      if (text.charCodeAt(0) === LF) position = 1;
    }
    if (pendingLength > 0) {
      position = finishPending(text, position);
      if (position === -1) return;
    }
    // Most streams end lines with LF alone: one indexOf per line is all the scanning needed.
    if (text.indexOf('\r', position) === -1) {
      position = scanLF(text, position);
      if (position < text.length) pushPending(text, position);
    } else scanAnyLineEnd(text, position);
  }

  // Ends the line carried over from earlier chunks with this chunk's first line end, if it has one.
  // Returns where the next line starts, or -1 when the chunk is used up.
  function finishPending(text: string, position: number): number {
    const end = findLineEnd(text, position);
    if (end === -1) {
      pushPending(text, position);
      return -1;
    }
    pending.push(text.slice(position, end));
    const line = pending.join('');
    pending.length = 0;
    pendingLength = 0;
    processLine(line, 0, line.length);
    return afterLineEnd(text, end);
  }

  // The scanning loop for a chunk with no CR from `from` on; returns where its unfinished last line
  // starts. The usual `data:`, `id:` and `event:` lines are matched here, as in processLine(): V8
  // does not inline processLine() (it is too big), and a call per line was a tenth of the time of
  // a stream of small events. The loop is a function of its own, with one dispatch() in it and no
  // call after it, so that V8 compiles it quickly and once: every call of dispatch() takes a copy
  // of the whole event callback, and a call after the loop that had not yet run when V8 compiled
  // the loop (during the first long chunk) threw the compiled code away at that chunk's end.
  function scanLF(text: string, from: number): number {
    let position = from;
    // Where the next NUL in the chunk is (the chunk's length for none), searched for when an `id:`
    // line is past the last one found: one search of the chunk serves all its `id:` lines.
    let nulAt = -1;
    let end = text.indexOf('\n', position);
    while (end !== -1) {
      const length = end - position;
      // [spec] If the line is empty (a blank line): Dispatch the event.
      if (length === 0) dispatch();
      else if (discarding || size + length >= limit) processLine(text, position, end);
      else {
        // The line fits: counted here, as processLine() would (the lines left to it below go to
        // processOtherLine(), which does not count them again).
        if (hasData) size += length + 1;
        const first = text.charCodeAt(position);
        // Each match first checks that the line is long enough, for the reason given in
        // processLine().
        if (
          first === 100 &&
          length >= 5 &&
          text.charCodeAt(position + 4) === COLON &&
          text.charCodeAt(position + 1) === 97 &&
          text.charCodeAt(position + 2) === 116 &&
          text.charCodeAt(position + 3) === 97
        ) {
          appendData(valueOf(text, position + 5, end), length);
        } else if (
          first === 105 &&
          length >= 3 &&
          text.charCodeAt(position + 2) === COLON &&
          text.charCodeAt(position + 1) === 100
        ) {
          // [spec] If the field value does not contain U+0000 NULL, then set the last event ID
          // buffer to the field value. Otherwise, ignore the field.
          if (nulAt < position) {
            nulAt = text.indexOf('\0', position);
            if (nulAt === -1) nulAt = text.length;
          }
          // [spec] If value starts with a U+0020 SPACE character, remove it from value.
          const start =
            length > 3 && text.charCodeAt(position + 3) === SPACE ? position + 4 : position + 3;
          if (nulAt > end) lastEventIdBuffer = text.slice(start, end);
        } else if (
          first === 101 &&
          length >= 6 &&
          text.charCodeAt(position + 5) === COLON &&
          text.charCodeAt(position + 1) === 118 &&
          text.charCodeAt(position + 2) === 101 &&
          text.charCodeAt(position + 3) === 110 &&
          text.charCodeAt(position + 4) === 116
        ) {
          // [spec] Set the event type buffer to the field value.
          eventType = valueOf(text, position + 6, end);
        } else processOtherLine(text, position, end);
      }
      position = end + 1;
      // The blank line that ends an event usually follows at once: no search for it.
      end =
        position < text.length && text.charCodeAt(position) === LF
          ? position
          : text.indexOf('\n', position);
    }
    return position;
  }

  // The scanning loop for a chunk with CRs in it: any of CRLF, LF and CR ends a line.
  function scanAnyLineEnd(text: string, from: number): void {
    let position = from;
    const length = text.length;
    // Scan for CR and LF separately with indexOf (fast native search), tracking the next of each.
    let nextLF = text.indexOf('\n', position);
    let nextCR = text.indexOf('\r', position);
    while (position < length) {
      if (nextLF !== -1 && nextLF < position) nextLF = text.indexOf('\n', position);
      if (nextCR !== -1 && nextCR < position) nextCR = text.indexOf('\r', position);
      let end: number;
      if (nextLF === -1) end = nextCR;
      else if (nextCR === -1) end = nextLF;
      else end = nextLF < nextCR ? nextLF : nextCR;
      if (end === -1) {
        pushPending(text, position);
        return;
      }
      processLine(text, position, end);
      position = afterLineEnd(text, end);
      if (position === -1) return;
    }
  }

  // Returns where the next line starts after the line end at `end`, or -1 when the chunk is used up.
  function afterLineEnd(text: string, end: number): number {
    if (text.charCodeAt(end) === CR) {
      if (end + 1 === text.length) {
        // A CR at the very end of a chunk: an LF at the start of the next chunk is part of this line end.
        skipLeadingLF = true;
        return -1;
      }
      if (text.charCodeAt(end + 1) === LF) return end + 2 === text.length ? -1 : end + 2;
    }
    return end + 1 === text.length ? -1 : end + 1;
  }

  function pushPending(text: string, position: number): void {
    if (!discarding) {
      const rest = position === 0 ? text : text.slice(position);
      pendingLength += rest.length;
      pending.push(rest);
      if (size + pendingLength <= limit || (!hasLimit && pendingLength <= limit)) return;
      tooLarge();
    }
    // While discarding, keep one placeholder character instead of the line: enough to know that the
    // line is not blank when its end arrives, without holding its text.
    pending.length = 0;
    pending.push(' ');
    pendingLength = 1;
  }

  // Ends the decoder's current sequence: what it holds becomes U+FFFD, fed before what follows.
  function flushDecoder(): void {
    isDecoding = false;
    const rest = (decoder as TextDecoder).decode();
    if (rest) feedText(rest);
  }

  function clearStream(): void {
    pending.length = 0;
    pendingLength = 0;
    skipLeadingLF = false;
    isStreamStart = true;
    discarding = false;
    data = '';
    hasData = false;
    size = 0;
    eventType = '';
    // [non-spec] The spec starts each stream with an empty last event ID buffer, which would let
    // the first event of a reconnection without an `id:` clear the last event ID. Like browsers and
    // undici, the new stream starts from the last event ID instead; an `id:` seen in an event that
    // was cut off (never dispatched) is dropped with it.
    lastEventIdBuffer = lastEventId;
  }

  return {
    feed(chunk: Uint8Array | string): void {
      if (typeof chunk === 'string') {
        // Bytes before it that ended mid-character can only be an invalid sequence now: flushing
        // gives its U+FFFD before the string, not after.
        if (isDecoding) flushDecoder();
        feedText(chunk);
        return;
      }
      // An empty chunk must not flush the decoder below: a character may still be arriving.
      if (chunk.length === 0) return;
      if (isAscii(chunk)) {
        // Most streams are ASCII throughout. A chunk of ASCII bytes decodes to the same characters
        // as Latin-1, which Node copies out at memory speed, several times faster than a streaming
        // TextDecoder decode().
        // An ASCII byte cannot continue a multi-byte sequence, so flushing the decoder here gives
        // what it would give reading on: one U+FFFD for a sequence it holds, else nothing.
        if (isDecoding) flushDecoder();
        feedText(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length).toString('latin1'));
        return;
      }
      // ignoreBOM: the BOM is stripped by feedText, the same way for bytes and strings.
      decoder ??= new TextDecoder('utf-8', { ignoreBOM: true });
      isDecoding = true;
      feedText(decoder.decode(chunk, STREAM));
    },
    end(): void {
      if (isDecoding) flushDecoder();
      decoder = undefined;
      clearStream();
    },
    reset(): void {
      decoder = undefined;
      isDecoding = false;
      clearStream();
    },
    get lastEventId(): string {
      return lastEventId;
    },
  };
}

function findLineEnd(text: string, from: number): number {
  const lf = text.indexOf('\n', from);
  const cr = text.indexOf('\r', from);
  if (lf === -1) return cr;
  if (cr === -1) return lf;
  return lf < cr ? lf : cr;
}
