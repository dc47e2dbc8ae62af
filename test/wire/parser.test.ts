import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { EventTooLargeError } from '../../src/errors.js';
import { createParser, type ParsedEvent } from '../../src/wire/parser.js';
import {
  createRandom,
  parseChunks,
  randomChunks,
  singleUnits,
  toBytes,
  toText,
  vectors,
  type ParseResult,
  type Vector,
} from './fixtures.js';
import { interpret } from './reference.js';

const RANDOM_CHUNKINGS = 25;

/** Every way a vector is fed: each gives the chunks of one complete run. */
const feedings: Array<{
  name: string;
  chunkings: (input: Vector['input']) => Iterable<unknown[]>;
}> = [
  { name: 'as one byte chunk', chunkings: (input) => [[toBytes(input)]] },
  { name: 'as one string', chunkings: (input) => [[toText(input)]] },
  { name: 'byte by byte', chunkings: (input) => [singleUnits(toBytes(input))] },
  { name: 'one UTF-16 code unit at a time', chunkings: (input) => [singleUnits(toText(input))] },
  { name: 'as bytes cut at every index', chunkings: (input) => cutAtEveryIndex(toBytes(input)) },
  { name: 'as a string cut at every index', chunkings: (input) => cutAtEveryIndex(toText(input)) },
  {
    name: `in ${RANDOM_CHUNKINGS} seeded random byte chunkings`,
    chunkings: (input) => seededChunkings(toBytes(input)),
  },
  {
    name: `in ${RANDOM_CHUNKINGS} seeded random string chunkings`,
    chunkings: (input) => seededChunkings(toText(input)),
  },
];

function* cutAtEveryIndex<T extends Uint8Array | string>(input: T): Generator<T[]> {
  for (let at = 0; at <= input.length; at++) {
    yield [input.slice(0, at) as T, input.slice(at) as T];
  }
}

function* seededChunkings<T extends Uint8Array | string>(input: T): Generator<T[]> {
  const random = createRandom(0xc0ffee ^ input.length);
  for (let run = 0; run < RANDOM_CHUNKINGS; run++) yield randomChunks(input, random, 1 + run);
}

function expected(vector: Vector): ParseResult {
  return {
    events: vector.events,
    retries: vector.retries ?? [],
    comments: vector.comments ?? [],
    errors: [],
    lastEventId: vector.lastEventId ?? vector.events.at(-1)?.id ?? '',
  };
}

describe('parser vectors (WHATWG event stream interpretation)', () => {
  for (const vector of vectors) {
    describe(vector.name, () => {
      for (const feeding of feedings) {
        test(`holds when fed ${feeding.name}`, () => {
          for (const chunks of feeding.chunkings(vector.input)) {
            const result = parseChunks(chunks as Array<Uint8Array | string>);
            assert.deepEqual(result, expected(vector), `chunks: ${JSON.stringify(chunks)}`);
          }
        });
      }
    });
  }
});

describe('parser streams and reconnections', () => {
  test('end() starts a new stream: a BOM is stripped again and the last event ID is kept', () => {
    const events: ParsedEvent[] = [];
    const parser = createParser({ onEvent: (event) => events.push(event) });
    parser.feed('id: 1\ndata: a\n\n');
    parser.end();
    parser.feed('\uFEFFdata: b\n\n');
    assert.deepEqual(events, [
      { event: 'message', data: 'a', id: '1' },
      { event: 'message', data: 'b', id: '1' },
    ]);
    assert.equal(parser.lastEventId, '1');
  });

  test('end() discards an incomplete event, including its pending UTF-8 bytes', () => {
    const events: ParsedEvent[] = [];
    const parser = createParser({ onEvent: (event) => events.push(event) });
    parser.feed(Uint8Array.of(0x64, 0x61, 0x74, 0x61, 0x3a, 0x20, 0xe2, 0x82));
    parser.end();
    parser.feed('data: b\n\n');
    assert.deepEqual(events, [{ event: 'message', data: 'b', id: '' }]);
  });

  test('reset() forgets a half-read event but keeps the last event ID', () => {
    const events: ParsedEvent[] = [];
    const parser = createParser({ onEvent: (event) => events.push(event) });
    parser.feed('id: 1\ndata: a\n\nevent: x\ndata: lost\nid: 2\n');
    parser.reset();
    parser.feed('data: b\n\n');
    assert.deepEqual(events, [
      { event: 'message', data: 'a', id: '1' },
      { event: 'message', data: 'b', id: '1' },
    ]);
    assert.equal(parser.lastEventId, '1');
  });

  test('reset() forgets a CR at the end of the last chunk', () => {
    const events: ParsedEvent[] = [];
    const parser = createParser({ onEvent: (event) => events.push(event) });
    parser.feed('data: a\r');
    parser.reset();
    parser.feed('\ndata: b\n\n');
    assert.deepEqual(events, [{ event: 'message', data: 'b', id: '' }]);
  });

  test('bytes decode the same whatever mix of ASCII-only and other chunks they arrive in', () => {
    // ASCII-only chunks take a faster path than the TextDecoder; pieces of multi-byte characters,
    // truncated sequences and invalid bytes between them must still decode as one whole decode()
    // of the stream does.
    const pieces = [
      [0x61],
      [0x62, 0x63],
      [0xc3, 0xa9],
      [0xe2, 0x82, 0xac],
      [0xf0, 0x9f, 0x98, 0x80],
    ];
    pieces.push([0xe2, 0x82], [0xf0, 0x9f], [0xff], [0x80], [0xc0, 0xaf], [0xed, 0xa0, 0x80]);
    const random = createRandom(0xa5c11);
    for (let run = 0; run < 300; run++) {
      const body: number[] = [];
      const pieceCount = 1 + Math.floor(random() * 12);
      for (let i = 0; i < pieceCount; i++) {
        body.push(...(pieces[Math.floor(random() * pieces.length)] ?? []));
      }
      const input = Uint8Array.from([...toBytes('data: '), ...body, 0x0a, 0x0a]);
      const data = new TextDecoder().decode(Uint8Array.from(body));
      const chunks = randomChunks(input, random, 1 + (run % 6));
      assert.deepEqual(
        parseChunks(chunks).events,
        [{ event: 'message', data, id: '' }],
        `chunks: ${JSON.stringify(chunks.map((chunk) => [...chunk]))}`,
      );
    }
  });

  test('the lastEventId option starts from that ID, as an earlier stream would have left it', () => {
    const result = parseChunks(['data: a\n\nid: 6\ndata: b\n\n'], { lastEventId: ' 5' });
    assert.deepEqual(result.events, [
      { event: 'message', data: 'a', id: ' 5' },
      { event: 'message', data: 'b', id: '6' },
    ]);
    const limited = createParser(
      { onEvent: () => {}, onError: assert.fail },
      {
        lastEventId: 'abcdef',
        maxEventLength: 1,
      },
    );
    assert.equal(limited.lastEventId, 'abcdef');
    limited.reset();
    assert.equal(limited.lastEventId, 'abcdef');
    for (const bad of ['a\0b', 'a\nb', 'a\rb']) {
      assert.throws(() => createParser({ onEvent: () => {} }, { lastEventId: bad }), {
        name: 'TypeError',
        message: /^`lastEventId` must be a string without CR, LF or NUL/,
      });
    }
  });

  test('a string after bytes that ended mid-character comes after that sequence, as U+FFFD', () => {
    const result = parseChunks([
      Uint8Array.from([0x64, 0x61, 0x74, 0x61, 0x3a, 0xc3]),
      'x',
      Uint8Array.from([0xa9, 0x0a, 0x0a]),
    ]);
    assert.deepEqual(result.events, [{ event: 'message', data: '\ufffdx\ufffd', id: '' }]);
  });

  test('callbacks are optional except onEvent', () => {
    const events: ParsedEvent[] = [];
    const parser = createParser({ onEvent: (event) => events.push(event) });
    parser.feed(': comment\nretry: 5\ndata: a\n\n');
    assert.equal(events.length, 1);
  });
});

describe('parser size limits and volume', () => {
  test('a 1 MiB data line fed in 64 KiB chunks parses whole', () => {
    const line = 'x'.repeat(1024 * 1024 - 3) + 'é';
    const stream = toBytes(`id: big\ndata: ${line}\n\ndata: after\n\n`);
    const chunks: Uint8Array[] = [];
    for (let at = 0; at < stream.length; at += 64 * 1024) {
      chunks.push(stream.subarray(at, at + 64 * 1024));
    }
    const result = parseChunks(chunks);
    assert.equal(result.events.length, 2);
    assert.equal(result.events[0]?.data.length, line.length);
    assert.ok(result.events[0]?.data === line, 'the data is the line itself');
    assert.deepEqual(result.events[1], { event: 'message', data: 'after', id: 'big' });
  });

  test('100 000 small events parse, in order, with their ids and types', () => {
    const count = 100_000;
    let text = '';
    for (let i = 0; i < count; i++) text += `id: ${i}\nevent: e${i % 7}\ndata: {"n":${i}}\n\n`;
    const stream = toBytes(text);
    const random = createRandom(100_000);
    const chunks: Uint8Array[] = [];
    for (let at = 0; at < stream.length;) {
      const size = 16 * 1024 + Math.floor(random() * 48 * 1024);
      chunks.push(stream.subarray(at, at + size));
      at += size;
    }
    const result = parseChunks(chunks);
    assert.equal(result.events.length, count);
    result.events.forEach((event, i) => {
      if (event.id !== String(i) || event.event !== `e${i % 7}` || event.data !== `{"n":${i}}`) {
        assert.fail(`event ${i} came out as ${JSON.stringify(event)}`);
      }
    });
    assert.equal(result.lastEventId, String(count - 1));
  });

  const limit = 20;
  const limitCases: Array<{ name: string; input: string; data: string[]; errorCount: number }> = [
    {
      name: 'an over-long data line discards its event; the next event still parses',
      input: `data: ${'x'.repeat(limit + 1)}\n\ndata: ok\n\n`,
      data: ['ok'],
      errorCount: 1,
    },
    {
      name: 'data lines adding up past the limit discard the event; the next event still parses',
      input: 'data: 0123456789\ndata: 0123456789\ndata: z\n\ndata: ok\n\n',
      data: ['ok'],
      errorCount: 1,
    },
    {
      name: 'a line that with its line end is exactly the limit is kept',
      input: `data:${'x'.repeat(limit - 6)}\n\n`,
      data: ['x'.repeat(limit - 6)],
      errorCount: 0,
    },
    {
      name: 'a line that with its line end is one past the limit discards its event',
      input: `data:${'x'.repeat(limit - 5)}\n\ndata: ok\n\n`,
      data: ['ok'],
      errorCount: 1,
    },
    {
      name: 'empty data lines count in full: field name and line end',
      // 4 lines of 6 = 24 > 20, although the data would be 3 characters.
      input: 'data:\ndata:\ndata\r\ndata:\n\ndata:\ndata:\ndata:\n\n',
      data: ['\n\n'],
      errorCount: 1,
    },
    {
      name: 'once an event has data, comments and other fields count too',
      input: `data: a\n:${'c'.repeat(4)}\nid: 1\n\ndata: a\n:${'c'.repeat(5)}\nid: 1\n\n`,
      data: ['a'],
      errorCount: 1,
    },
    {
      name: 'lines before the first data line only count on their own',
      input: `:${'c'.repeat(limit - 2)}\nevent: ${'e'.repeat(limit - 8)}\nid: 7\ndata: ${'d'.repeat(limit - 7)}\n\n`,
      data: ['d'.repeat(limit - 7)],
      errorCount: 0,
    },
    {
      name: 'lines after the over-long one, up to the blank line, belong to the discarded event',
      input: `data: ${'x'.repeat(limit)}\ndata: more\nevent: y\n\nevent: z\ndata: ok\n\n`,
      data: ['ok'],
      errorCount: 1,
    },
    {
      name: 'two over-long events each report an error',
      input: `data: ${'x'.repeat(limit)}\n\ndata: ${'y'.repeat(limit)}\n\ndata: ok\n\n`,
      data: ['ok'],
      errorCount: 2,
    },
  ];
  for (const { name, input, data, errorCount } of limitCases) {
    test(`maxEventLength: ${name}, however the stream is cut`, () => {
      const runs = [[input], singleUnits(input), ...cutAtEveryIndex(input)];
      for (const chunks of runs) {
        const result = parseChunks(chunks, { maxEventLength: limit });
        assert.deepEqual(
          result.events.map((event) => event.data),
          data,
          `chunks: ${JSON.stringify(chunks)}`,
        );
        assert.equal(result.errors.length, errorCount, `chunks: ${JSON.stringify(chunks)}`);
        for (const error of result.errors) {
          assert.ok(error instanceof EventTooLargeError);
          assert.equal(error.code, 'ERR_EVENTSOURCE_EVENT_TOO_LARGE');
          assert.equal(error.limit, limit);
        }
      }
    });
  }

  for (const bad of [0, -1, 1.5, Number.NaN]) {
    test(`maxEventLength ${bad} is refused with RangeError`, () => {
      assert.throws(() => createParser({ onEvent: () => {} }, { maxEventLength: bad }), {
        name: 'RangeError',
        message: new RegExp(`^\`maxEventLength\` must be a positive integer or Infinity`),
      });
    });
  }

  test('maxEventLength does not hold a discarded line in memory', () => {
    const errors: Error[] = [];
    const events: ParsedEvent[] = [];
    const parser = createParser(
      { onEvent: (event) => events.push(event), onError: (error) => errors.push(error) },
      { maxEventLength: 1024 },
    );
    parser.feed('data: ');
    for (let i = 0; i < 1000; i++) parser.feed('y'.repeat(64 * 1024));
    parser.feed('\n\ndata: ok\n\n');
    assert.equal(errors.length, 1);
    assert.deepEqual(events, [{ event: 'message', data: 'ok', id: '' }]);
  });

  // What a stream that never ends its event makes the parser hold, measured on the heap after a
  // full collection: a small multiple of maxEventLength (one byte per character here), not the 32
  // bytes or more per data line, or the whole chunk per line, that the characters of data alone
  // let through (616 MiB of RSS under the default 16 Mi limit).
  const endless: Array<[string, string]> = [
    ['empty data lines', 'data:\n'],
    ['data lines of one character', 'data:x\n'],
    [
      'short data lines, each in a chunk filled by a comment',
      `data: abcdefghijklm\n:${'p'.repeat(65000)}\n`,
    ],
  ];
  for (const [name, unit] of endless) {
    test(`an endless event of ${name} holds a small multiple of maxEventLength`, () => {
      setFlagsFromString('--expose-gc');
      const gc = runInNewContext('gc') as () => void;
      const maxEventLength = 4 * 1024 * 1024;
      const errors: Error[] = [];
      const parser = createParser(
        { onEvent: () => assert.fail('no event ends'), onError: (error) => errors.push(error) },
        { maxEventLength },
      );
      const chunk = toBytes(unit.repeat(Math.max(1, Math.floor(65536 / unit.length))));
      gc();
      const baseline = process.memoryUsage().heapUsed;
      let peak = 0;
      for (let fed = 0, i = 0; fed < 64 * 1024 * 1024; fed += chunk.length, i++) {
        parser.feed(chunk);
        if (i % 16 === 0) {
          gc();
          peak = Math.max(peak, process.memoryUsage().heapUsed - baseline);
        }
      }
      assert.equal(errors.length, 1);
      assert.ok(peak < 3 * maxEventLength, `held ${(peak / 1048576).toFixed(1)} MiB at most`);
    });
  }

  // The parser reads LF-only text in a loop of its own that matches the usual lines itself; other
  // line ends and lines split across chunks go through the general per-line code. Random streams
  // of usual and unusual lines must parse as the spec's steps say (test/wire/reference.ts), and the
  // same whichever way they take.
  for (const maxEventLength of [undefined, 12]) {
    test(`random streams parse as the spec says, with LF, CRLF or CR line ends, in any chunking${
      maxEventLength === undefined ? '' : ` (maxEventLength ${maxEventLength})`
    }`, () => {
      const random = createRandom(0x5ca1ab1e);
      const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)] as T;
      const value = (): string => {
        let text = '';
        for (let i = Math.floor(random() * 7); i > 0; i--)
          text += pick(['a', 'b', ' ', ':', '\0', 'é']);
        return text;
      };
      const line = (): string =>
        pick([
          () => '',
          () => '',
          () => `data: ${value()}`,
          () => `data:${value()}`,
          () => `id: ${value()}`,
          () => `id:${value()}`,
          () => `event: ${value()}`,
          () => `event:${value()}`,
          () => `retry: ${pick(['0', '150', 'x1'])}`,
          () => `:${value()}`,
          () => pick(['data', 'id', 'event', 'd', 'i', 'e', 'dat: x', 'Data: x', 'ev:x', 'x:y']),
        ])();
      for (let run = 0; run < 200; run++) {
        const lines = Array.from({ length: 1 + Math.floor(random() * 30) }, line);
        const lf = `${lines.join('\n')}\n`;
        const options = { maxEventLength };
        const reference = parseChunks([lf], options);
        assert.deepEqual(
          { ...reference, errors: reference.errors.length },
          interpret(lf, maxEventLength),
          `against the spec's steps, run ${run}: ${JSON.stringify(lf)}`,
        );
        const others: Array<[string, Array<string | Uint8Array>]> = [
          ['CRLF', [lf.replaceAll('\n', '\r\n')]],
          ['CR', [lf.replaceAll('\n', '\r')]],
          ['LF one unit at a time', singleUnits(lf)],
          ['LF in random chunks', randomChunks(lf, random, 1 + Math.floor(random() * 40))],
          ['LF as bytes in random chunks', randomChunks(toBytes(lf), random, 16)],
        ];
        for (const [name, chunks] of others) {
          const result = parseChunks(chunks, options);
          assert.deepEqual(
            { ...result, errors: result.errors.length },
            { ...reference, errors: reference.errors.length },
            `${name}, run ${run}: ${JSON.stringify(lf)}`,
          );
        }
      }
    });
  }

  test('a chunk of many colon-less lines parses in linear time', () => {
    const lines = 'x\n'.repeat(500_000);
    const start = performance.now();
    const result = parseChunks([lines, 'data: ok\n\n']);
    assert.deepEqual(result.events, [{ event: 'message', data: 'ok', id: '' }]);
    assert.ok(performance.now() - start < 2000, 'took under 2 s');
  });
});
