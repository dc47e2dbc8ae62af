import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import zlib from 'node:zlib';
import type { Transform } from 'node:stream';
import { EventSourceClient, type ClientEvent } from '../../src/client.js';
import { ContentEncodingError } from '../../src/errors.js';
import { startScriptedServer, stream, type Handler } from '../helpers/sse-server.js';

const timeout = 15000;

type Encoder = Transform & zlib.Zlib;

/**
 * A handler answering an event stream encoded with `encoders` (applied in order, named by
 * `encoding`): it sends the first event, flushed, and the second only once `next` resolves.
 */
function encodedStream(encoding: string, encoders: () => Encoder[], next: Promise<void>): Handler {
  return async (_request, response) => {
    response.writeHead(200, { 'content-type': 'text/event-stream', 'content-encoding': encoding });
    const chain = encoders();
    for (let i = 0; i < chain.length - 1; i++) chain[i]?.pipe(chain[i + 1] as Encoder);
    (chain.at(-1) as Encoder).pipe(response);
    const flushAll = async (): Promise<void> => {
      for (const encoder of chain) await new Promise<void>((resolve) => encoder.flush(resolve));
    };
    const first = chain[0] as Encoder;
    first.write('id: 1\ndata: one\n\n');
    await flushAll();
    await next;
    first.end('id: 2\ndata: two\n\n');
  };
}

const encodings: [string, () => Encoder[]][] = [
  ['gzip', () => [zlib.createGzip()]],
  ['x-gzip', () => [zlib.createGzip()]],
  ['deflate', () => [zlib.createDeflate()]],
  ['br', () => [zlib.createBrotliCompress()]],
  ['gzip, br', () => [zlib.createGzip(), zlib.createBrotliCompress()]],
  ['GZIP', () => [zlib.createGzip()]],
];
for (const [encoding, encoders] of encodings) {
  test(
    `a stream with Content-Encoding: ${encoding} is decoded, each event as it arrives`,
    { timeout },
    async (t) => {
      let sendNext!: () => void;
      const next = new Promise<void>((resolve) => (sendNext = resolve));
      const server = await startScriptedServer([encodedStream(encoding, encoders, next)]);
      t.after(() => server.close());
      t.after(() => sendNext());
      const client = new EventSourceClient(`${server.url}/s`, { reconnect: false });
      t.after(() => client.close());
      const events: ClientEvent[] = [];
      for await (const event of client) {
        events.push(event);
        // The second event is only sent once the first has come through the decoder.
        if (events.length === 1) sendNext();
      }
      assert.deepEqual(
        events.map((e) => [e.id, e.data]),
        [
          ['1', 'one'],
          ['2', 'two'],
        ],
      );
    },
  );
}

test('Content-Encoding: identity is read as it is', { timeout }, async (t) => {
  const server = await startScriptedServer([
    stream(['data: plain\n\n'], { headers: { 'content-encoding': 'identity' } }),
  ]);
  t.after(() => server.close());
  const client = new EventSourceClient(`${server.url}/s`, { reconnect: false });
  t.after(() => client.close());
  const events: string[] = [];
  for await (const event of client) events.push(event.data);
  assert.deepEqual(events, ['plain']);
});

for (const encoding of ['zstd', 'compress', 'gzip, zstd']) {
  test(
    `Content-Encoding: ${encoding} fails the connection with ContentEncodingError`,
    { timeout },
    async (t) => {
      const server = await startScriptedServer([
        stream(['data: unreadable\n\n'], { headers: { 'content-encoding': encoding } }),
      ]);
      t.after(() => server.close());
      const client = new EventSourceClient(`${server.url}/s`);
      t.after(() => client.close());
      let openCount = 0;
      client.onopen = () => openCount++;
      await assert.rejects(client.closed, {
        name: 'ContentEncodingError',
        code: 'ERR_EVENTSOURCE_CONTENT_ENCODING',
        encoding,
        url: `${server.url}/s`,
        message: `the response's Content-Encoding "${encoding}" is not one the client decodes (gzip, deflate, br)`,
      });
      assert.equal(openCount, 0);
      assert.equal(server.requests.length, 1);
    },
  );
}

test(
  'a body that does not decode fails the stream with ContentEncodingError, then reconnects',
  { timeout },
  async (t) => {
    const server = await startScriptedServer([
      stream(['data: not gzip at all\n\n'], { headers: { 'content-encoding': 'gzip' } }),
      stream([zlib.gzipSync('data: fine\n\n')], { headers: { 'content-encoding': 'gzip' } }),
    ]);
    t.after(() => server.close());
    const client = new EventSourceClient(`${server.url}/s`);
    t.after(() => client.close());
    const [event] = (await once(client, 'error')) as [{ error: unknown; willReconnect: boolean }];
    assert.ok(event.error instanceof ContentEncodingError);
    assert.ok(event.error.cause instanceof Error);
    assert.match(event.error.message, /^the gzip body could not be decoded: /);
    assert.equal(event.willReconnect, true);
    for await (const received of client) {
      assert.equal(received.data, 'fine');
      break;
    }
  },
);
