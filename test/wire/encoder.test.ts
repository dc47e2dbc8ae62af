import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { WireFormatError } from '../../src/errors.js';
import {
  assertFieldValue,
  encodeComment,
  encodeEvent,
  encodeRetry,
  encodeTrustedEvent,
  type WireEvent,
} from '../../src/wire/encoder.js';
import { MAX_RETRY_MS } from '../../src/wire/retry.js';
import type { ParsedEvent } from '../../src/wire/parser.js';
import { parseChunks, toBytes } from './fixtures.js';

describe('encodeEvent', () => {
  const cases: Array<{ name: string; event: WireEvent; wire: string }> = [
    { name: 'data alone', event: { data: 'hello' }, wire: 'data: hello\n\n' },
    { name: 'empty data', event: { data: '' }, wire: 'data: \n\n' },
    {
      name: 'id, event type and data, in that order',
      event: { data: 'x', event: 'tick', id: '7' },
      wire: 'id: 7\nevent: tick\ndata: x\n\n',
    },
    {
      name: 'retry before the data',
      event: { data: 'x', retry: 1500 },
      wire: 'retry: 1500\ndata: x\n\n',
    },
    { name: 'an empty id', event: { data: 'x', id: '' }, wire: 'id: \ndata: x\n\n' },
    {
      name: 'LF, CR and CRLF in data, each starting a new data line',
      event: { data: 'a\nb\rc\r\nd' },
      wire: 'data: a\ndata: b\ndata: c\ndata: d\n\n',
    },
    {
      name: 'a trailing line break in data, as an empty last data line',
      event: { data: 'a\n' },
      wire: 'data: a\ndata: \n\n',
    },
    {
      name: 'a blank line inside data, which cannot end the event early',
      event: { data: 'a\n\nid: 9' },
      wire: 'data: a\ndata: \ndata: id: 9\n\n',
    },
    {
      name: 'leading spaces in data, kept behind the one separating space',
      event: { data: '  a' },
      wire: 'data:   a\n\n',
    },
    {
      name: 'undefined optional fields, as absent',
      event: { data: 'x', id: undefined, event: undefined, retry: undefined },
      wire: 'data: x\n\n',
    },
  ];
  for (const { name, event, wire } of cases) {
    test(`writes ${name}`, () => {
      assert.equal(encodeEvent(event), wire);
    });
  }

  const unsafe: Array<[string, string]> = [
    ['CR', 'a\rb'],
    ['LF', 'a\nb'],
    ['CRLF', 'a\r\nb'],
    ['NUL', 'a\0b'],
  ];
  for (const field of ['id', 'event'] as const) {
    for (const [what, value] of unsafe) {
      test(`refuses ${what} in \`${field}\` with WireFormatError`, () => {
        assert.throws(
          () => encodeEvent({ data: 'x', [field]: value }),
          (error: unknown) => {
            assert.ok(error instanceof WireFormatError);
            assert.ok(error instanceof TypeError);
            assert.equal(error.code, 'ERR_EVENTSOURCE_WIRE_FORMAT');
            assert.match(error.message, new RegExp(`^\`${field}\` must not contain CR, LF or NUL`));
            return true;
          },
        );
      });
    }
  }

  for (const retry of [-1, 1.5, Number.NaN, Infinity, 2 ** 53, MAX_RETRY_MS + 1, 99999999999]) {
    test(`refuses retry ${retry} with RangeError`, () => {
      assert.throws(() => encodeEvent({ data: 'x', retry }), RangeError);
      assert.throws(() => encodeRetry(retry), RangeError);
    });
  }
});

describe('encodeEvent argument types', () => {
  const bad: Array<[string, unknown]> = [
    ['data', 42],
    ['data', undefined],
    ['data', { text: 'x' }],
    ['id', 7],
    ['event', null],
  ];
  for (const [field, value] of bad) {
    test(`refuses a ${value === null ? 'null' : typeof value} \`${field}\` with TypeError`, () => {
      const event = { data: 'x', [field]: value } as unknown as WireEvent;
      assert.throws(() => encodeEvent(event), {
        name: 'TypeError',
        message: new RegExp(`^\`${field}\` must be a string, got `),
      });
    });
  }
});

describe('encodeTrustedEvent', () => {
  const cases: Array<[string | undefined, string | undefined, string]> = [
    [undefined, undefined, 'a'],
    ['1', undefined, 'a\nb'],
    [undefined, 'tick', ''],
    ['', 'x', 'a\r\nb\rc'],
  ];
  for (const [id, event, data] of cases) {
    test(`writes what encodeEvent writes for id ${String(id)}, event ${String(event)}`, () => {
      assert.equal(encodeTrustedEvent(id, event, data), encodeEvent({ id, event, data }));
    });
  }
});

describe('encodeComment and encodeRetry', () => {
  const comments: Array<[string | undefined, string]> = [
    [undefined, ':\n\n'],
    ['', ':\n\n'],
    ['keepalive', ': keepalive\n\n'],
    ['a\nb\r\nc\rd', ': a\n: b\n: c\n: d\n\n'],
  ];
  for (const [text, wire] of comments) {
    test(`encodeComment(${JSON.stringify(text)}) writes ${JSON.stringify(wire)}`, () => {
      assert.equal(encodeComment(text), wire);
    });
  }

  test('a comment dispatches nothing and reports each of its lines', () => {
    const result = parseChunks([encodeComment('a\nb')]);
    assert.deepEqual(result.events, []);
    assert.deepEqual(result.comments, [' a', ' b']);
  });

  test('encodeRetry writes a retry block the parser reports and dispatches nothing for', () => {
    assert.equal(encodeRetry(0), 'retry: 0\n\n');
    assert.equal(encodeRetry(MAX_RETRY_MS), `retry: ${MAX_RETRY_MS}\n\n`);
    const result = parseChunks([encodeRetry(2500)]);
    assert.deepEqual(result.retries, [2500]);
    assert.deepEqual(result.events, []);
  });
});

describe('assertFieldValue', () => {
  test('accepts any other character, including U+2028 and a BOM', () => {
    assert.doesNotThrow(() => assertFieldValue('id', 'a b\u2028\u2029\uFEFF\u0085\t'));
  });
  test('names the field and shows the value in the message', () => {
    assert.throws(() => assertFieldValue('event', 'x\ny'), {
      name: 'WireFormatError',
      message: '`event` must not contain CR, LF or NUL, got "x\\ny"',
    });
  });
});

describe('encoder and parser round trip (property)', () => {
  // Unicode text (any code point, no lone surrogates: those cannot be written as UTF-8) with CR,
  // LF and CRLF mixed in.
  const text = fc
    .array(fc.oneof(fc.string({ unit: 'binary' }), fc.constantFrom('\r', '\n', '\r\n', '\n\n')), {
      maxLength: 8,
    })
    .map((parts) => parts.join(''));
  const fieldValue = fc.string({ unit: 'binary' }).filter((value) => !/[\r\n\0]/.test(value));
  const wireEvent: fc.Arbitrary<WireEvent> = fc.record(
    {
      data: text,
      id: fieldValue,
      event: fieldValue,
      retry: fc.nat({ max: MAX_RETRY_MS }),
    },
    { requiredKeys: ['data'] },
  );

  /** What the parser must give back for these events, by the spec's rules. */
  function expectedEvents(events: WireEvent[]): ParsedEvent[] {
    let lastEventId = '';
    return events.map((event) => {
      if (event.id !== undefined) lastEventId = event.id;
      return {
        // [spec] An empty event type buffer dispatches as `message`.
        event: event.event === undefined || event.event === '' ? 'message' : event.event,
        // The spec normalises every line end to LF.
        data: event.data.replace(/\r\n?/g, '\n'),
        id: lastEventId,
      };
    });
  }

  test('any encoded events parse back to themselves, however the bytes are cut', () => {
    fc.assert(
      fc.property(
        fc.array(wireEvent, { minLength: 1, maxLength: 5 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        fc.boolean(),
        (events, cuts, withBom) => {
          const stream = toBytes((withBom ? '\uFEFF' : '') + events.map(encodeEvent).join(''));
          const points = [...new Set(cuts.map((cut) => cut % (stream.length + 1)))].sort(
            (a, b) => a - b,
          );
          const chunks: Uint8Array[] = [];
          let from = 0;
          for (const point of [...points, stream.length]) {
            chunks.push(stream.subarray(from, point));
            from = point;
          }
          const result = parseChunks(chunks);
          assert.deepEqual(result.events, expectedEvents(events));
          assert.deepEqual(
            result.retries,
            events.flatMap((event) => (event.retry === undefined ? [] : [event.retry])),
          );
        },
      ),
      { numRuns: 500 },
    );
  });

  test('encoded events parse back when fed as strings, one UTF-16 code unit at a time', () => {
    fc.assert(
      fc.property(fc.array(wireEvent, { minLength: 1, maxLength: 3 }), (events) => {
        const stream = events.map(encodeEvent).join('');
        const result = parseChunks(stream.split(''));
        assert.deepEqual(result.events, expectedEvents(events));
      }),
      { numRuns: 200 },
    );
  });

  test('encoder refuses any id or event type with CR, LF or NUL', () => {
    const unsafe = fc
      .tuple(fc.string(), fc.constantFrom('\r', '\n', '\0'), fc.string())
      .map(([before, bad, after]) => before + bad + after);
    fc.assert(
      fc.property(unsafe, fc.constantFrom('id', 'event'), (value, field) => {
        assert.throws(
          () => encodeEvent({ data: 'x', [field]: value }),
          (error: unknown) =>
            error instanceof WireFormatError && error.code === 'ERR_EVENTSOURCE_WIRE_FORMAT',
        );
      }),
    );
  });
});
