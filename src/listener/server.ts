/**
 * The listener's own server: which one `listen()` makes, how the transports are attached to it,
 * and how it stops.
 *
 * - Plain HTTP: node:http, with the fast path in front for simple POSTs (`transports/front.ts`).
 * - TLS: HTTP/2 and HTTP/1.1 on one port, chosen by ALPN, from node:http2's secure server (its
 *   HTTP/1.1 side is node:http's); with `http2: false`, node:https alone.
 */
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { debugListener as debug } from '../debug.js';
import type { Hub } from './hub.js';
import { installFront, type Front } from './transports/front.js';
import { handleHttp2Stream } from './transports/http2.js';
import type { ListenerHandler } from './transports/node-http.js';

/** The servers `listen()` may make. */
export type ListenerServer = http.Server | https.Server | http2.Http2SecureServer;

/** How long open connections may take to finish after `close()` before they are cut. */
const CLOSE_GRACE_MS = 500;

/** A started server and what it needs to stop. */
export class ServerRunner {
  readonly server: ListenerServer;
  private readonly front: Front | undefined;
  /** The HTTP/2 sessions (connections) open now, for a graceful close (GOAWAY). */
  private readonly sessions = new Set<http2.ServerHttp2Session>();

  /**
   * @param hub The core.
   * @param handler The node:http transport's handler (HTTP/1.x requests).
   * @param keepAliveTimeoutMs node:http's `keepAliveTimeout`, when not its default.
   */
  constructor(hub: Hub, handler: ListenerHandler, keepAliveTimeoutMs?: number) {
    const { tls, http2: isHttp2, fastPath } = hub.options;
    if (tls === undefined) {
      const server = http.createServer(handler);
      this.server = server;
      if (keepAliveTimeoutMs !== undefined) server.keepAliveTimeout = keepAliveTimeoutMs;
      if (fastPath) this.front = installFront(server, hub);
    } else if (!isHttp2) {
      const server = https.createServer({ ...tls }, handler);
      if (keepAliveTimeoutMs !== undefined) server.keepAliveTimeout = keepAliveTimeoutMs;
      this.server = server;
    } else {
      const server = http2.createSecureServer({ ...tls, allowHTTP1: true });
      // HTTP/1.1 connections reach 'request' as node:http's own request and response. Adding that
      // listener makes node:http2 also turn every HTTP/2 stream into a compatibility request: that
      // listener is replaced by the HTTP/2 transport, which reads the stream itself.
      server.on('request', handler);
      server.removeAllListeners('stream');
      server.on('stream', (stream, headers) => handleHttp2Stream(hub, stream, headers));
      server.on('session', (session: http2.ServerHttp2Session) => {
        this.sessions.add(session);
        session.once('close', () => this.sessions.delete(session));
      });
      server.on('sessionError', (error: Error) => {
        // A session that fails (a client that misbehaves) closes itself; the others go on.
        debug('HTTP/2 session error: %s', error.message);
      });
      // node:http2 leaves the HTTP/1.1 side without node:http's keep-alive timeout (idle
      // connections would stay open for ever): give it node:http's default, 5 s.
      (server as unknown as http.Server).keepAliveTimeout = keepAliveTimeoutMs ?? 5000;
      this.server = server;
    }
  }

  /**
   * Listens on `port` and `host`.
   * @returns The listener's URL, with the real port and the prefix.
   */
  async listen(port: number, host: string, prefix: string): Promise<string> {
    const server = this.server;
    server.listen(port, host);
    await Promise.race([
      once(server, 'listening'),
      once(server, 'error').then(([error]) => {
        throw error;
      }),
    ]);
    const address = server.address() as AddressInfo;
    const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    const scheme =
      server instanceof http.Server && !(server instanceof https.Server) ? 'http' : 'https';
    return `${scheme}://${shownHost}:${address.port}${prefix}/`;
  }

  /**
   * Stops accepting and waits for the connections to end. The caller ends the streams first (the
   * server's close waits for every open connection); connections still open after a short grace
   * are cut.
   * @param endStreams Ends every stream; called once no new connection is accepted.
   */
  async close(endStreams: () => Promise<void>): Promise<void> {
    const server = this.server;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    // The fast path's idle connections end now, its busy ones after their answer.
    this.front?.close();
    // HTTP/2: GOAWAY now; each session closes once its streams have ended.
    for (const session of this.sessions) session.close();
    await endStreams();
    const http1 = server as Partial<http.Server>;
    http1.closeIdleConnections?.call(server);
    const timer = setTimeout(() => {
      http1.closeAllConnections?.call(server);
      this.front?.destroyAll();
      for (const session of this.sessions) session.destroy();
    }, CLOSE_GRACE_MS);
    await closed;
    clearTimeout(timer);
  }
}
