/**
 * Wire-format test vectors, one per WHATWG parsing rule, and helpers to feed them to the parser in
 * every chunking. Data only: importing this file runs nothing.
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
 */
import { createParser, type ParsedEvent, type ParserOptions } from '../../src/wire/parser.js';

/** What a parser reported for one stream. */
export interface ParseResult {
  events: ParsedEvent[];
  retries: number[];
  comments: string[];
  errors: Error[];
  lastEventId: string;
}

/** One test vector: a stream, and what the parser must report for it. */
export interface Vector {
  /** The rule, stated as behaviour; it becomes the test name. */
  name: string;
  /** The stream: text (sent as UTF-8) or raw bytes (for BOM bytes and invalid UTF-8). */
  input: string | Uint8Array;
  events: ParsedEvent[];
  retries?: number[];
  comments?: string[];
  lastEventId?: string;
}

const encoder = new TextEncoder();

/** A message event, as the parser reports it. */
function message(data: string, id = '', event = 'message'): ParsedEvent {
  return { event, data, id };
}

/** Concatenates text (as UTF-8) and raw byte values into one byte array. */
function bytes(...parts: Array<string | number[]>): Uint8Array {
  const arrays = parts.map((part) =>
    typeof part === 'string' ? encoder.encode(part) : Uint8Array.from(part),
  );
  const out = new Uint8Array(arrays.reduce((sum, a) => sum + a.length, 0));
  let at = 0;
  for (const a of arrays) {
    out.set(a, at);
    at += a.length;
  }
  return out;
}

export const vectors: Vector[] = [
  // Line ends
  { name: 'LF ends lines', input: 'data: a\n\ndata: b\n\n', events: [message('a'), message('b')] },
  { name: 'CR ends lines', input: 'data: a\r\rdata: b\r\r', events: [message('a'), message('b')] },
  {
    name: 'CRLF ends lines, counted as one line end',
    input: 'data: a\r\n\r\ndata: b\r\n\r\n',
    events: [message('a'), message('b')],
  },
  {
    name: 'CR, LF and CRLF mix within one event',
    input: 'data: a\r\ndata: b\rdata: c\n\r\n',
    events: [message('a\nb\nc')],
  },
  {
    name: 'CR followed by CRLF is two line ends (a blank line)',
    input: 'data: a\r\r\ndata: b\n\n',
    events: [message('a'), message('b')],
  },
  {
    name: 'LF followed by CR is two line ends (a blank line)',
    input: 'data: a\n\rdata: b\n\n',
    events: [message('a'), message('b')],
  },
  // Byte order mark
  {
    name: 'one leading BOM is stripped',
    input: bytes([0xef, 0xbb, 0xbf], 'data: a\n\n'),
    events: [message('a')],
  },
  {
    name: 'only one leading BOM is stripped; a second makes the field name unknown',
    input: '\uFEFF\uFEFFdata: a\n\ndata: b\n\n',
    events: [message('b')],
  },
  {
    name: 'a BOM after the start of the stream is not stripped',
    input: 'data: a\n\n\uFEFFdata: b\n\ndata: c\n\n',
    events: [message('a'), message('c')],
  },
  {
    name: 'a BOM inside a value is kept',
    input: 'data: \uFEFFa\n\n',
    events: [message('\uFEFFa')],
  },
  // UTF-8
  {
    name: 'multi-byte UTF-8 decodes across chunk boundaries',
    input: 'data: é € 😀 中文\n\n',
    events: [message('é € 😀 中文')],
  },
  {
    name: 'an invalid byte becomes U+FFFD',
    input: bytes('data: a', [0xff], 'b\n\n'),
    events: [message('a\uFFFDb')],
  },
  {
    name: 'a truncated multi-byte sequence becomes one U+FFFD',
    input: bytes('data: a', [0xe2, 0x82], 'c\n\n'),
    events: [message('a\uFFFDc')],
  },
  {
    name: 'a truncated sequence before a line end becomes U+FFFD',
    input: bytes('data: x', [0xf0, 0x9f, 0x98], '\n\n'),
    events: [message('x\uFFFD')],
  },
  {
    name: 'a lone continuation byte and an overlong encoding become U+FFFD',
    input: bytes('data: ', [0x80], '|', [0xc0, 0xaf], '\n\n'),
    events: [message('\uFFFD|\uFFFD\uFFFD')],
  },
  // Comments
  {
    name: 'comment lines are ignored and reported without the colon',
    input: ': hello\ndata: a\n:\n::x\n\n',
    events: [message('a')],
    comments: [' hello', '', ':x'],
  },
  {
    name: 'a comment alone dispatches nothing',
    input: ': keepalive\n\n',
    events: [],
    comments: [' keepalive'],
  },
  // Fields without a colon
  {
    name: 'a `data` line without a colon appends an empty value',
    input: 'data\n\ndata\ndata\n\n',
    events: [message(''), message('\n')],
  },
  {
    name: 'an `event` line without a colon sets an empty type (so `message`)',
    input: 'event: x\nevent\ndata: a\n\n',
    events: [message('a')],
  },
  {
    name: 'an `id` line without a colon sets an empty id',
    input: 'id: 1\ndata: a\n\nid\ndata: b\n\n',
    events: [message('a', '1'), message('b', '')],
    lastEventId: '',
  },
  // Values
  {
    name: 'a single leading space is stripped from the value, and only one',
    input: 'data:a\n\ndata: a\n\ndata:  a\n\ndata:\ta\n\n',
    events: [message('a'), message('a'), message(' a'), message('\ta')],
  },
  {
    name: 'a colon in the value is kept',
    input: 'data: a: b:c\n\n',
    events: [message('a: b:c')],
  },
  {
    name: 'NUL in data is kept',
    input: 'data: a\0b\n\n',
    events: [message('a\0b')],
  },
  // Unknown fields
  {
    name: 'unknown fields are ignored',
    input: 'foo: bar\ndata: a\nData: b\ndata : c\nDATA: d\ndat: e\ndatas: f\n\n',
    events: [message('a')],
  },
  {
    name: 'an unknown field alone dispatches nothing',
    input: 'foo\n\nbar: baz\n\n',
    events: [],
  },
  // The data buffer
  {
    name: 'data lines join with LF and the trailing LF is removed',
    input: 'data: a\ndata: b\ndata: c\n\n',
    events: [message('a\nb\nc')],
  },
  {
    name: 'an empty data line at the end keeps one LF',
    input: 'data: a\ndata:\n\n',
    events: [message('a\n')],
  },
  {
    name: '`data` with an empty value dispatches an event with empty data',
    input: 'data:\n\ndata: \n\n',
    events: [message(''), message('')],
  },
  {
    name: 'blank lines without data dispatch nothing',
    input: '\n\n\r\n\r\r\n',
    events: [],
  },
  // Event type
  {
    name: 'the event type defaults to `message`',
    input: 'data: a\n\n',
    events: [message('a')],
  },
  {
    name: 'an empty event type becomes `message`',
    input: 'event:\ndata: a\n\n',
    events: [message('a')],
  },
  {
    name: 'the last `event` field of an event wins',
    input: 'event: x\nevent: y\ndata: a\n\n',
    events: [message('a', '', 'y')],
  },
  {
    name: 'the event type resets after each dispatch',
    input: 'event: x\ndata: a\n\ndata: b\n\n',
    events: [message('a', '', 'x'), message('b')],
  },
  {
    name: 'the event type resets after an event without data',
    input: 'event: x\n\ndata: b\n\n',
    events: [message('b')],
  },
  // End of stream
  {
    name: 'an event without its blank line is not dispatched at end of stream',
    input: 'data: a\n\ndata: b\n',
    events: [message('a')],
  },
  {
    name: 'a line without its line end is not processed at end of stream',
    input: 'data: a\n\nid: 5\n\ndata: b',
    events: [message('a')],
    lastEventId: '5',
  },
  {
    name: 'a trailing CR ends the last line (but not the event)',
    input: 'data: a\r\rdata: b\r',
    events: [message('a')],
  },
  // Last event ID
  {
    name: 'the last event ID persists across events',
    input: 'id: 1\ndata: a\n\ndata: b\n\nid: 2\ndata: c\n\n',
    events: [message('a', '1'), message('b', '1'), message('c', '2')],
    lastEventId: '2',
  },
  {
    name: 'an `id` containing NUL is ignored',
    input: 'id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\n',
    events: [message('a', '1'), message('b', '1')],
    lastEventId: '1',
  },
  {
    name: 'NULs in other lines leave the `id` lines before and after them alone',
    input:
      'data: \0\n\nid: 1\ndata: a\n\nid: 2\0\ndata: b\n\nid: 3\ndata: c\0\n\nid: 4\ndata: d\n\n',
    events: [
      message('\0'),
      message('a', '1'),
      message('b', '1'),
      message('c\0', '3'),
      message('d', '4'),
    ],
    lastEventId: '4',
  },
  {
    name: 'an `id` with an empty value resets the last event ID',
    input: 'id: 1\ndata: a\n\nid:\ndata: b\n\nid: 3\ndata: c\n\nid: \ndata: d\n\n',
    events: [message('a', '1'), message('b', ''), message('c', '3'), message('d', '')],
    lastEventId: '',
  },
  {
    name: 'the last event ID updates even when the event has no data',
    input: 'id: 7\n\ndata: a\n\n',
    events: [message('a', '7')],
    lastEventId: '7',
  },
  {
    name: 'the last event ID is set at dispatch, not when the `id` line is read',
    input: 'id: 1\ndata: a\n\nid: 2\n',
    events: [message('a', '1')],
    lastEventId: '1',
  },
  {
    name: 'the last `id` field of an event wins',
    input: 'id: 1\nid: 2\ndata: a\n\n',
    events: [message('a', '2')],
    lastEventId: '2',
  },
  {
    name: 'an `id` keeps spaces after the first and may hold any other character',
    input: 'id:  a b\u00e9\ndata: x\n\n',
    events: [message('x', ' a b\u00e9')],
    lastEventId: ' a b\u00e9',
  },
  // Retry
  {
    name: '`retry` is reported only when all ASCII digits',
    input:
      'retry: 1000\nretry: 10a\nretry: -1\nretry:\nretry\nretry:  5\nretry: 1.5\n' +
      'retry: 0042\nretry: \u0661\nretry: 5 \n\n',
    events: [],
    retries: [1000, 42],
  },
  {
    name: '`retry` takes effect without a blank line and dispatches nothing',
    input: 'retry: 300\ndata: a\n\n',
    events: [message('a')],
    retries: [300],
  },
];

/** The stream of a vector as bytes. */
export function toBytes(input: string | Uint8Array): Uint8Array {
  return typeof input === 'string' ? encoder.encode(input) : input;
}

/** The stream of a vector as text (bytes decoded once, whole). */
export function toText(input: string | Uint8Array): string {
  return typeof input === 'string' ? input : new TextDecoder().decode(input);
}

/**
 * Feeds chunks to a fresh parser, ends the stream and returns everything it reported.
 * @param chunks The stream, chunked.
 * @param options Parser options.
 */
export function parseChunks(
  chunks: Iterable<Uint8Array | string>,
  options: ParserOptions = {},
): ParseResult {
  const result: ParseResult = {
    events: [],
    retries: [],
    comments: [],
    errors: [],
    lastEventId: '',
  };
  const parser = createParser(
    {
      onEvent: (event) => result.events.push(event),
      onRetry: (ms) => result.retries.push(ms),
      onComment: (comment) => result.comments.push(comment),
      onError: (error) => result.errors.push(error),
    },
    options,
  );
  for (const chunk of chunks) parser.feed(chunk);
  parser.end();
  result.lastEventId = parser.lastEventId;
  return result;
}

/** A small seeded PRNG (mulberry32): the same seed gives the same chunkings on every run. */
export function createRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Cuts a byte array or string into pieces of 1 to `maxSize` units, at random. */
export function randomChunks<T extends Uint8Array | string>(
  input: T,
  random: () => number,
  maxSize = 8,
): T[] {
  const chunks: T[] = [];
  for (let at = 0; at < input.length;) {
    const size = 1 + Math.floor(random() * maxSize);
    chunks.push(input.slice(at, at + size) as T);
    at += size;
  }
  return chunks;
}

/** Each unit alone: single bytes, or single UTF-16 code units (surrogate pairs split too). */
export function singleUnits<T extends Uint8Array | string>(input: T): T[] {
  const chunks: T[] = [];
  for (let at = 0; at < input.length; at++) chunks.push(input.slice(at, at + 1) as T);
  return chunks;
}
