/**
 * A TLS server speaking HTTP/2 and HTTP/1.1 on one port (ALPN), with the throwaway certificate of
 * test/fixtures, that records which protocol each request came over. GET answers one SSE event
 * numbered after the request's Last-Event-ID and ends the stream (so a client reconnects); POST
 * answers the listener's JSON reply. No side effects on import.
 */
import http2 from 'node:http2';
import { once } from 'node:events';
import type { AddressInfo, Socket } from 'node:net';
import { fixture } from './sse-server.js';

export interface Http2Request {
  method: string;
  url: string;
  /** `'2.0'` over HTTP/2, `'1.1'` over HTTP/1.1. */
  httpVersion: string;
  /** The HTTP/2 stream id; `undefined` over HTTP/1.1. */
  streamId: number | undefined;
  /** The client's port: equal ports mean one connection (one HTTP/2 session). */
  remotePort: number | undefined;
  lastEventId: string | undefined;
  body: string;
}

export interface Http2Server {
  url: string;
  port: number;
  requests: Http2Request[];
  close(): Promise<void>;
}

/** Starts the server on 127.0.0.1, port 0. */
export async function startHttp2Server(): Promise<Http2Server> {
  const requests: Http2Request[] = [];
  const sockets = new Set<Socket>();
  const server = http2.createSecureServer(
    { key: fixture('key.pem'), cert: fixture('cert.pem'), allowHTTP1: true },
    (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const lastEventId = req.headers['last-event-id'];
        const request: Http2Request = {
          method: req.method,
          url: req.url,
          httpVersion: req.httpVersion,
          streamId: req.httpVersion === '2.0' ? req.stream.id : undefined,
          remotePort: req.socket.remotePort,
          lastEventId: typeof lastEventId === 'string' ? lastEventId : undefined,
          body: Buffer.concat(chunks).toString('utf8'),
        };
        requests.push(request);
        if (req.method === 'GET') {
          const id = Number(request.lastEventId ?? '0') + 1;
          res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
          res.end(`retry: 10\nid: ${id}\ndata: event ${id} over ${req.httpVersion}\n\n`);
          return;
        }
        const [, action = '', token = ''] = req.url.split('/');
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({ token: decodeURIComponent(token), action, id: null, subscribers: 1 }),
        );
      });
    },
  );
  // Clients keep sessions and keep-alive connections open; close() must not wait for them.
  server.on('secureConnection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://127.0.0.1:${port}`,
    port,
    requests,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}
