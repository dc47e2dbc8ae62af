/**
 * The fast path of `listen()` over plain HTTP: simple POSTs and simple stream GETs read and
 * answered without node:http.
 *
 * Why: publishing is the hot path of a push hub, and node:http's per-request objects (IncomingMessage,
 * ServerResponse, header objects, llhttp callbacks) cost more than the listener's own work there.
 * A stream keeps those objects (and its parser) for its whole life: served here, an idle stream holds
 * its socket, its connection and a small subscriber record (`front-stream.ts`). The figures, and
 * how they were measured, are in BENCHMARKS.md.
 *
 * The hand-off rule: the server's 'connection' listener is this front. It reads requests one at a
 * time and serves a request itself only when it is a *simple POST* or a *simple stream GET*:
 * `POST <target> HTTP/1.1` to an event route, or `GET <prefix>/<LISTEN>/<token> HTTP/1.1` (or a
 * GET of an operator route: `/stats`, `/stats/<token>`, `/metrics`, so that a scrape never runs
 * node:http's code in a process whose hot paths saw only the front's), CRLF
 * line ends, token header names with no space before the colon, no obs-fold, printable ASCII
 * values, a head within node's header size limit (`http.maxHeaderSize`, or the server's
 * `maxHeaderSize`) and of 100 header lines, exactly one `Host`, for a POST exactly one
 * `Content-Length` of digits and for a GET none, no `Transfer-Encoding`, `Expect`, `Upgrade` or
 * `Proxy-Connection`, at most one `Connection` (`keep-alive` or `close`), `Authorization`,
 * `Cookie`, `Origin` and `Last-Event-ID`; a GET with no bytes after its head in the same read
 * (input pipelined behind a stream follows node:http's rules for queued requests). At the first
 * request that is anything else (another GET, OPTIONS, a malformed or unusual head) it gives the
 * socket, with every byte it has not consumed, to node:http, which owns that connection from then
 * on and applies its own rules (a 400 for a smuggling attempt, say). Everything accepted here is
 * accepted by node:http's strict parser too, so a request never gets a different answer here.
 *
 * Answers are the core's (`hub.ts`: the same decisions as on node:http), written as node:http
 * writes them: same status line, headers in the same order, then node's `Date`, `Connection` and
 * `Keep-Alive` (and `Transfer-Encoding: chunked` for a stream). One request is handled at a time,
 * so replies keep the order of requests even when the broker answers later; input is paused while
 * an answer is pending or the socket's write buffer is full, and held (still read, to see the
 * client leave) while a stream is open; it is served once the stream ends, as node:http serves a
 * keep-alive connection's next request. node:http's timeouts are kept with one interval for every
 * connection instead of a timer per request, read from the server each time (a user may tune
 * `listener.server` after listen()); an open stream is under none of them, as on node:http (its
 * request is complete, its response is not). With settings the front does not implement
 * (`maxRequestsPerSocket`, `server.timeout`) node:http serves every request.
 *
 * The price: a connection handed over has had its first bytes read in JavaScript rather than by
 * node's parser directly, once per connection.
 */
import http from 'node:http';
import type net from 'node:net';
import { debugListener as debug } from '../../debug.js';
import type { Answer, Hub } from '../hub.js';
import { Connection, REQUEST_TIMEOUT, connectionHeader } from './front-connection.js';

/** What node:http adds to `keepAliveTimeout` before closing an idle connection (Node 20). */
const KEEP_ALIVE_BUFFER_MS = 1000;

/**
 * Puts the fast path in front of `server`: replaces node:http's 'connection' listener with the
 * front, which calls it for every connection it hands off.
 * @returns The front, or undefined (fast path off) when node's listener is not where expected.
 */
export function installFront(server: http.Server, hub: Hub): Front | undefined {
  const listeners = server.listeners('connection');
  const nodeListener = listeners[0] as ((socket: net.Socket) => void) | undefined;
  if (listeners.length !== 1 || nodeListener === undefined) {
    debug('fast path off: node:http has %d connection listeners', listeners.length);
    return undefined;
  }
  const front = new Front(server, hub, nodeListener);
  server.removeListener('connection', nodeListener);
  server.on('connection', (socket: net.Socket) => front.accept(socket));
  // node:http only knows the connections it was given: these reach the front's too (server.close()
  // calls the first one).
  const closeIdle = server.closeIdleConnections;
  const closeAll = server.closeAllConnections;
  server.closeIdleConnections = function closeIdleConnections(this: http.Server): void {
    front.closeIdle();
    closeIdle.call(this);
  };
  server.closeAllConnections = function closeAllConnections(this: http.Server): void {
    front.destroyAll();
    closeAll.call(this);
  };
  return front;
}

/** The connections of the fast path, their timeouts and the hand-off to node:http. */
export class Front {
  readonly connections = new Set<Connection>();
  isClosing = false;
  /** `Connection: keep-alive` and node's `Keep-Alive` line, for `keepAliveLinesFor` ms. */
  private keepAliveLines = '';
  private keepAliveLinesFor = -1;
  private readonly timer: NodeJS.Timeout;
  private date = '';
  private dateExpiresAt = 0;
  /**
   * Sockets handed to node:http in the middle of a head that began in an earlier read, and when
   * that head's headersTimeout ends: node starts its own clock at the hand-off, which would give a
   * slowly trickled head up to twice the time.
   */
  private readonly unfinishedHeads = new Map<net.Socket, number>();

  constructor(
    readonly server: http.Server,
    readonly hub: Hub,
    private readonly nodeListener: (socket: net.Socket) => void,
  ) {
    // One interval for every connection; a connection may outlive its limit by one tick.
    const keepAliveMs = server.keepAliveTimeout;
    const tickMs = Math.max(10, Math.min(1000, keepAliveMs > 0 ? keepAliveMs / 2 : 1000));
    this.timer = setInterval(() => this.expire(), tickMs).unref();
    server.on('request', (request: http.IncomingMessage) => {
      if (this.unfinishedHeads.size > 0) this.unfinishedHeads.delete(request.socket);
    });
  }

  // node:http's limits, read from the server each time (as node does): a user may tune
  // `listener.server` after listen(). 0 turns a timeout off.
  /**
   * How long an idle keep-alive connection is kept: `keepAliveTimeout` plus node's buffer (1 s on
   * Node 20; `keepAliveTimeoutBuffer` where node has it). Both sides tell clients
   * `Keep-Alive: timeout=5`; closing at exactly that would race a client reusing the connection
   * just then, which gets ECONNRESET for a POST it never knows the fate of.
   */
  get keepAliveMs(): number {
    const timeout = this.server.keepAliveTimeout;
    if (timeout <= 0) return timeout;
    const buffer = (this.server as http.Server & { keepAliveTimeoutBuffer?: number })
      .keepAliveTimeoutBuffer;
    return timeout + (typeof buffer === 'number' ? buffer : KEEP_ALIVE_BUFFER_MS);
  }
  get headersMs(): number {
    return this.server.headersTimeout;
  }
  get requestMs(): number {
    return this.server.requestTimeout;
  }
  /**
   * node's limit on a request head for a new connection: the server's `maxHeaderSize` option if
   * set, else `http.maxHeaderSize` (16 KiB unless `--max-http-header-size` says otherwise).
   */
  get maxHeadBytes(): number {
    // Set by node from the options of http.createServer(); not in @types/node's Server.
    const own = (this.server as http.Server & { maxHeaderSize?: number }).maxHeaderSize;
    return own !== undefined && own > 0 ? own : http.maxHeaderSize;
  }

  /**
   * Whether the server has settings the fast path does not implement (a per-socket request limit
   * or an inactivity timeout): then node:http serves every request.
   */
  get isBypassed(): boolean {
    const server = this.server;
    return (server.maxRequestsPerSocket ?? 0) > 0 || server.timeout > 0;
  }

  accept(socket: net.Socket): void {
    if (this.isClosing) {
      socket.destroy();
      return;
    }
    if (this.isBypassed) {
      this.nodeListener.call(this.server, socket);
      return;
    }
    const connection = new Connection(socket, this);
    this.connections.add(connection);
  }

  /** Gives `socket` to node:http; `pieces` are the bytes read but not consumed, in order. */
  handOff(socket: net.Socket, wasPaused: boolean, ...pieces: Buffer[]): void {
    for (let i = pieces.length - 1; i >= 0; i--) {
      const piece = pieces[i] as Buffer;
      if (piece.length > 0) socket.unshift(piece);
    }
    this.nodeListener.call(this.server, socket);
    // node:http only resumes a socket nobody paused: its own 'data' listener is attached now.
    if (wasPaused) socket.resume();
  }

  /** The `Date` header's value, as node:http makes it: computed at most once a second. */
  dateNow(now: number): string {
    if (now >= this.dateExpiresAt) {
      this.date = new Date(now).toUTCString();
      this.dateExpiresAt = now - (now % 1000) + 1000;
    }
    return this.date;
  }

  /**
   * An answer as node:http writes it for `res.writeHead(status, headers)` and `res.end(body)`:
   * the listener's headers in order, then `Date`, then `Connection` (and `Keep-Alive`) unless
   * the answer has its own `Connection`.
   * @param headers The answer's headers, when the core made them already (a refused stream).
   */
  format(
    answer: Answer,
    origin: string | undefined,
    isLast: boolean,
    now: number,
    headers: readonly string[] = this.hub.answers.headersFor(answer, origin),
  ): string {
    const ownConnection = connectionHeader(answer) !== undefined;
    return `${this.formatHead(answer.status, headers, isLast, ownConnection, now)}\r\n${answer.body}`;
  }

  /**
   * The head of an event stream as node:http writes it for `res.writeHead(200, headers)` and
   * `res.flushHeaders()`: then `Date`, `Connection` (and `Keep-Alive`) and the chunked encoding.
   */
  formatStreamHead(headers: readonly string[], isLast: boolean, now: number): string {
    return `${this.formatHead(200, headers, isLast, false, now)}Transfer-Encoding: chunked\r\n\r\n`;
  }

  /** A status line and header lines, without the blank line that ends the head. */
  private formatHead(
    status: number,
    headers: readonly string[],
    isLast: boolean,
    ownConnection: boolean,
    now: number,
  ): string {
    let text = `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? 'unknown'}\r\n`;
    for (let i = 0; i < headers.length; i += 2) text += `${headers[i]}: ${headers[i + 1]}\r\n`;
    text += `Date: ${this.dateNow(now)}\r\n`;
    if (!ownConnection) text += isLast ? 'Connection: close\r\n' : this.keepAliveLinesNow();
    return text;
  }

  private keepAliveLinesNow(): string {
    const ms = this.server.keepAliveTimeout;
    if (ms !== this.keepAliveLinesFor) {
      this.keepAliveLinesFor = ms;
      this.keepAliveLines =
        ms > 0
          ? `Connection: keep-alive\r\nKeep-Alive: timeout=${Math.floor(ms / 1000)}\r\n`
          : 'Connection: keep-alive\r\n';
    }
    return this.keepAliveLines;
  }

  /** Ends idle connections now; busy ones end after their answer (`Connection: close`). */
  close(): void {
    this.isClosing = true;
    clearInterval(this.timer);
    this.unfinishedHeads.clear();
    this.closeIdle();
  }

  /** Ends the connections that wait for a request and have read nothing of one. */
  closeIdle(): void {
    for (const connection of this.connections) {
      if (connection.isIdle) connection.socket.destroy();
    }
  }

  /** Cuts every connection of the fast path (the end of close()'s grace period). */
  destroyAll(): void {
    for (const connection of this.connections) connection.socket.destroy();
  }

  /** Holds node:http to `deadline` (ms) for the head `socket` is in the middle of. */
  watchHead(socket: net.Socket, deadline: number): void {
    this.unfinishedHeads.set(socket, deadline);
  }

  /** Closes connections past node:http's keepAliveTimeout, headersTimeout or requestTimeout. */
  private expire(): void {
    const now = Date.now();
    for (const connection of this.connections) connection.expire(now);
    for (const [socket, deadline] of this.unfinishedHeads) {
      if (socket.destroyed) this.unfinishedHeads.delete(socket);
      else if (now > deadline) {
        // What node:http does at its own headersTimeout.
        this.unfinishedHeads.delete(socket);
        socket.write(REQUEST_TIMEOUT);
        socket.destroySoon();
      }
    }
  }
}
