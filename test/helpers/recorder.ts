/**
 * A raw HTTP(S) server on 127.0.0.1 port 0 that records every request it receives (method, URL,
 * headers, body, client port) and answers with whatever the test's `respond` returns.
 * No side effects on import.
 */
import http from 'node:http';
import https from 'node:https';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** The client's port: the same value on two requests means the same connection. */
  remotePort: number;
}

export interface Answer {
  status?: number;
  headers?: http.OutgoingHttpHeaders;
  body?: string;
  /** Never answer (for timeouts and signals). */
  hang?: boolean;
}

export interface Recorder {
  url: string;
  port: number;
  requests: RecordedRequest[];
  /** Resolves once at least n requests arrived. */
  waitForRequests(n: number, timeoutMs?: number): Promise<RecordedRequest[]>;
  close(): Promise<void>;
}

/** The default answer: 200 with our listener's JSON reply shape. */
export function listenerReply(request: RecordedRequest): Answer {
  const [, action = '', token = ''] = request.url.split('/');
  return {
    status: 200,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token: decodeURIComponent(token), action, id: null, subscribers: 1 }),
  };
}

/** Throwaway TLS material in test/fixtures (server certificate for localhost and 127.0.0.1). */
export function fixture(name: 'ca.pem' | 'cert.pem' | 'key.pem'): Buffer {
  return readFileSync(new URL(`../../../test/fixtures/${name}`, import.meta.url));
}

/** Starts a recording server; `tls: true` serves HTTPS with the fixture certificate. */
export async function startRecorder(
  respond: (request: RecordedRequest) => Answer = listenerReply,
  options: { tls?: boolean } = {},
): Promise<Recorder> {
  const requests: RecordedRequest[] = [];
  const handler: http.RequestListener = (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const recorded: RecordedRequest = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        remotePort: req.socket.remotePort ?? 0,
      };
      requests.push(recorded);
      const answer = respond(recorded);
      if (answer.hang) return;
      res.writeHead(answer.status ?? 200, answer.headers ?? {});
      res.end(answer.body ?? '');
    });
  };
  const server = options.tls
    ? https.createServer({ key: fixture('key.pem'), cert: fixture('cert.pem') }, handler)
    : http.createServer(handler);
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
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A port on 127.0.0.1 that nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = http.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
