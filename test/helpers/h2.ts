/**
 * HTTP/2 client helpers for the tests: a request with its whole answer, and an event stream parsed
 * as it arrives. No side effects on import.
 */
import http2 from 'node:http2';
import { once } from 'node:events';
import { createParser, type ParsedEvent } from '../../src/wire/parser.js';
import { waitUntil } from './listener-helpers.js';

/** Status, headers (lowercased names) and body of an answer. */
export interface Reply {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Headers that only one of the two protocols has: the date, and HTTP/1.1's connection headers. */
export const PER_CONNECTION = new Set(['date', 'connection', 'keep-alive', 'transfer-encoding']);

export function comparable(headers: Record<string, unknown>): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (!name.startsWith(':') && !PER_CONNECTION.has(name)) result[name] = String(value);
  }
  return result;
}

export async function h2Request(
  session: http2.ClientHttp2Session,
  method: string,
  path: string,
  headers: http2.OutgoingHttpHeaders = {},
  body?: string,
): Promise<Reply> {
  const stream = session.request({ ':method': method, ':path': path, ...headers });
  stream.end(body);
  const [responseHeaders] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
  stream.setEncoding('utf8');
  let text = '';
  for await (const chunk of stream) text += chunk as string;
  return {
    status: Number(responseHeaders[':status']),
    headers: comparable(responseHeaders),
    body: text,
  };
}

/** An event stream over HTTP/2, parsed as it arrives. */
export interface H2Stream {
  stream: http2.ClientHttp2Stream;
  headers: http2.IncomingHttpHeaders;
  events: ParsedEvent[];
  raw: string;
  waitFor(count: number, timeoutMs?: number): Promise<ParsedEvent[]>;
  ended: Promise<void>;
}

export async function openH2Stream(
  session: http2.ClientHttp2Session,
  path: string,
  headers: http2.OutgoingHttpHeaders = {},
): Promise<H2Stream> {
  const stream = session.request({ ':path': path, accept: 'text/event-stream', ...headers });
  stream.on('error', () => {}); // a stream the listener resets (cut off)
  const [responseHeaders] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
  const result: H2Stream = {
    stream,
    headers: responseHeaders,
    events: [],
    raw: '',
    ended: new Promise((resolve) => stream.once('close', resolve)),
    async waitFor(count, timeoutMs = 5000) {
      await waitUntil(() => result.events.length >= count, `${count} events`, timeoutMs);
      return result.events;
    },
  };
  const parser = createParser({ onEvent: (event) => result.events.push(event) });
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    result.raw += chunk;
    parser.feed(chunk);
  });
  return result;
}
