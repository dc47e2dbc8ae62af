/**
 * Scripted SSE servers for the client tests: the nth request is answered by the nth handler (the
 * last one answers every request after that), every request is recorded, and responses are exact
 * bytes written in the chunks given. No side effects on import.
 */
import http from 'node:http';
import https from 'node:https';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';

export type Handler = (
  request: http.IncomingMessage,
  response: http.ServerResponse,
) => void | Promise<void>;

export interface RecordedRequest {
  url: string;
  headers: http.IncomingHttpHeaders;
  at: number;
}

export interface ScriptedServer {
  url: string;
  port: number;
  requests: RecordedRequest[];
  /** Resolves once n requests arrived (rejects after timeoutMs). */
  waitForRequests(n: number, timeoutMs?: number): Promise<RecordedRequest[]>;
  close(): Promise<void>;
}

/** Reads a file of test/fixtures (the tests run from build/test/). */
export function fixture(name: string): string {
  return readFileSync(new URL(`../../../test/fixtures/${name}`, import.meta.url), 'utf8');
}

/** Starts a server on 127.0.0.1:0 answering the requests in turn with `handlers`. */
export async function startScriptedServer(
  handlers: Handler[],
  options: { tls?: boolean } = {},
): Promise<ScriptedServer> {
  const requests: RecordedRequest[] = [];
  const listener: http.RequestListener = (request, response) => {
    const index = requests.length;
    requests.push({ url: request.url ?? '', headers: request.headers, at: Date.now() });
    const handler = handlers[Math.min(index, handlers.length - 1)];
    if (handler === undefined) throw new Error('no handler');
    void Promise.resolve(handler(request, response)).catch((error: unknown) => {
      response.destroy(error as Error);
    });
  };
  const server = options.tls
    ? https.createServer({ key: fixture('key.pem'), cert: fixture('cert.pem') }, listener)
    : http.createServer(listener);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    port,
    requests,
    async waitForRequests(n, timeoutMs = 10000) {
      const deadline = Date.now() + timeoutMs;
      while (requests.length < n) {
        if (Date.now() > deadline)
          throw new Error(`timed out with ${requests.length}/${n} requests`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      return requests;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A handler answering 200 `text/event-stream` with `chunks`, each written separately (a short pause
 * between them so that each arrives as its own read), then ending the response unless `keepOpen`.
 */
export function stream(
  chunks: (string | Buffer)[],
  options: { keepOpen?: boolean; gapMs?: number; headers?: http.OutgoingHttpHeaders } = {},
): Handler {
  return async (_request, response) => {
    response.writeHead(200, { 'content-type': 'text/event-stream', ...options.headers });
    response.flushHeaders();
    for (const [i, chunk] of chunks.entries()) {
      if (i > 0) await sleep(options.gapMs ?? 3);
      if (response.destroyed) return;
      response.write(chunk);
    }
    if (!options.keepOpen) response.end();
  };
}

/** A handler answering `status` with a plain-text body and optional headers. */
export function reply(status: number, body = '', headers: http.OutgoingHttpHeaders = {}): Handler {
  return (_request, response) => {
    response.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...headers });
    response.end(body);
  };
}

/** Cuts a string into chunks at the given character offsets, or into `size`-byte pieces. */
export function cut(text: string | Buffer, size: number): Buffer[] {
  const bytes = Buffer.isBuffer(text) ? text : Buffer.from(text, 'utf8');
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.subarray(i, i + size));
  return chunks;
}
