/**
 * Small network helpers for tests: servers on 127.0.0.1 port 0, and a raw SSE reader.
 * No side effects on import.
 */
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { createParser, type ParsedEvent } from '../../src/wire/parser.js';

/** Starts an http server on 127.0.0.1 with an ephemeral port; returns it and its base URL. */
export async function listen(
  handler: http.RequestListener,
): Promise<{ server: http.Server; url: string; port: number; close: () => Promise<void> }> {
  const server = http.createServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    server,
    url: `http://127.0.0.1:${port}`,
    port,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface SseStream {
  /** Status and headers of the response. */
  response: http.IncomingMessage;
  /** Events received so far. */
  events: ParsedEvent[];
  /** Raw text received so far. */
  raw: string;
  /** Resolves once at least n events arrived (rejects after timeoutMs). */
  waitFor(n: number, timeoutMs?: number): Promise<ParsedEvent[]>;
  /** Resolves when the server ends the stream. */
  ended: Promise<void>;
  close(): void;
}

/** Opens a GET stream with node:http (no client library involved) and parses it as it arrives. */
export async function openStream(
  url: string,
  headers: http.OutgoingHttpHeaders = {},
): Promise<SseStream> {
  const request = http.get(url, { headers: { accept: 'text/event-stream', ...headers } });
  const [response] = (await once(request, 'response')) as [http.IncomingMessage];
  const stream: SseStream = {
    response,
    events: [],
    raw: '',
    ended: new Promise<void>((resolve) => {
      response.on('end', resolve);
      response.on('close', resolve);
      response.on('error', () => resolve());
    }),
    async waitFor(n: number, timeoutMs = 10000) {
      const deadline = Date.now() + timeoutMs;
      while (stream.events.length < n) {
        if (Date.now() > deadline) {
          throw new Error(
            `timed out with ${stream.events.length}/${n} events; raw tail: ${stream.raw.slice(-300)}`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      return stream.events;
    },
    close() {
      request.destroy();
    },
  };
  const parser = createParser({ onEvent: (event) => stream.events.push(event) });
  response.setEncoding('utf8');
  response.on('data', (chunk: string) => {
    stream.raw += chunk;
    parser.feed(chunk);
  });
  return stream;
}

/** Sends a request and returns status, headers and body text. */
export async function httpRequest(
  url: string,
  options: {
    method?: string;
    body?: string | Buffer;
    headers?: http.OutgoingHttpHeaders;
    agent?: http.Agent;
  } = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const request = http.request(url, {
    method: options.method ?? 'GET',
    headers: options.headers ?? {},
    ...(options.agent ? { agent: options.agent } : {}),
  });
  request.end(options.body);
  const [response] = (await once(request, 'response')) as [http.IncomingMessage];
  response.setEncoding('utf8');
  let body = '';
  for await (const chunk of response) body += chunk as string;
  return { status: response.statusCode ?? 0, headers: response.headers, body };
}
