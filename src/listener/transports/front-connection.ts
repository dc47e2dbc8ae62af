/**
 * One connection of the fast path (`front.ts`): a small HTTP/1.1 request reader for simple POSTs
 * and simple stream GETs, a state machine with one phase at a time, which hands its socket to
 * node:http at the first request that is neither.
 */
import type net from 'node:net';
import { debugListener as debug } from '../../debug.js';
import type { Answer, Decision, PostBody, RequestHead } from '../hub.js';
import { parseTarget } from '../routes.js';
import type { Front } from './front.js';
import { FrontSubscriber, type StreamConnection } from './front-stream.js';

/** Most header lines read here; a head with more goes to node:http. */
const MAX_FIELDS = 100;
/** What node:http writes when a request takes too long to arrive. */
export const REQUEST_TIMEOUT = 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n';
/** What node:http writes when the client's FIN cuts a request short (head or body). */
const BAD_REQUEST = 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n';
/** Bytes a request may start with: `POST /` or `GET /`. */
const POST_PREFIX = Buffer.from('POST /', 'latin1');
const GET_PREFIX = Buffer.from('GET /', 'latin1');
/** The last chunk of a stream's chunked body. */
const LAST_CHUNK = '0\r\n\r\n';

/**
 * An origin-form target made of unreserved, sub-delims, `:`, `@`, `/`, `?` and `%` only, a subset
 * of what node's strict parser accepts (no `#`, quotes, braces, backslash or controls).
 */
const TARGET = /^\/[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*$/;
/**
 * Every header line, from the end of the request line on: a token, a colon right after it, a
 * value of HTAB and printable ASCII, CRLF. A bare CR or LF, obs-fold, a space before the colon or
 * a byte outside ASCII fails it.
 */
const FIELDS = /(?:[-!#$%&'*+.^_`|~0-9A-Za-z]+:[\t\x20-\x7e]*\r\n)*$/y;
/**
 * A Content-Length value as it follows the colon. node's parser refuses a tab after the digits
 * (400) though it takes spaces there, so only spaces may follow them here.
 */
const CONTENT_LENGTH = /^[\t ]*[0-9]{1,15} *$/;

// What a connection is doing.
/** Between requests, nothing buffered. */
const IDLE = 0;
/** Part of a request head is buffered. */
const HEAD = 1;
/** Reading the body of a POST. */
const BODY = 2;
/** Reading and dropping the body of a POST answered before its body (401, 404). */
const SKIP = 3;
/** Waiting for the broker's answer (or an access check); input is held back. */
const WAITING = 4;
/**
 * Serving an event stream (or waiting for the broker to open it). Input is held back, as node:http
 * holds what is pipelined behind a response in progress, but still read: a client that goes away
 * ends its stream at once, as it does on node:http.
 */
const STREAM = 5;

/**
 * The operator routes a GET may have on the fast path: answered by the core like a refused stream
 * GET. Served here, a scrape never runs node:http's request code in a process whose hot paths
 * only saw the front's (each such request cost some 75 ms of CPU in deoptimized code, measured
 * under unicast load: the price of `--metrics` scraped every second).
 */
const OPERATOR_ROUTES: ReadonlySet<string> = new Set(['stats', 'presence', 'metrics']);
/** Done: answered with `Connection: close`, timed out or ended. Input is ignored. */
const CLOSED = 6;
/** Given to node:http. */
const HANDED_OFF = 7;

const CONNECTION = Symbol('fastPathConnection');

interface FrontSocket extends net.Socket {
  [CONNECTION]?: Connection | undefined;
}

/** One connection of the fast path: a small HTTP/1.1 request reader for simple requests. */
export class Connection implements StreamConnection {
  phase = IDLE;
  /** When the phase began (ms): the reply before IDLE, the request's first byte after. */
  private since = Date.now();
  /** A head that arrived in pieces, copied here until it is complete (never a body). */
  private head: Buffer | undefined;
  private headLength = 0;
  /** Input held back while an answer is pending or writes are blocked. */
  private held: Buffer | undefined;
  /** The socket's write buffer is full: input waits for 'drain'. */
  private isBlocked = false;
  /** The client ended its side: end ours once the requests already read are answered. */
  private isEnded = false;
  /** No request answered yet: waiting for the first one is under headersTimeout, as in node. */
  private isFresh = true;
  private onAnswer: ((answer: Answer) => void) | undefined;
  // The request in progress.
  private token = '';
  private action = '';
  private origin: string | undefined;
  private target = '';
  private authorization: string | undefined;
  private cookie: string | undefined;
  private lastEventId: string | undefined;
  private isGet = false;
  private isLast = false;
  private remaining = 0;
  /** The stream served now (STREAM), opened or waiting for the broker. */
  stream: FrontSubscriber | undefined;
  /** Made at the first POST with a body to read (most handed-off connections never have one). */
  private body: PostBody | undefined;
  /**
   * Largest head (request line and header lines, with their CRLFs) read here: node's header
   * limit for this connection, taken when it opens as node does. A longer head goes to node:http.
   */
  private readonly maxHead: number;

  readonly socket: FrontSocket;

  constructor(
    socket: net.Socket,
    private readonly front: Front,
  ) {
    this.socket = socket;
    this.socket[CONNECTION] = this;
    this.maxHead = front.maxHeadBytes;
    socket.on('data', onData);
    socket.on('drain', onDrain);
    socket.on('end', onEnd);
    socket.on('error', onError);
    socket.on('close', onClose);
  }

  get isIdle(): boolean {
    return this.phase === IDLE && !this.isBlocked && this.held === undefined;
  }

  receive(chunk: Buffer): void {
    if (this.phase === WAITING || this.phase === STREAM || this.isBlocked) this.hold(chunk, 0);
    else this.consume(chunk, 0);
  }

  drained(): void {
    if (this.phase === STREAM) {
      this.stream?.drained();
      return;
    }
    if (!this.isBlocked) return;
    this.isBlocked = false;
    this.resumeInput();
  }

  ended(): void {
    this.isEnded = true;
    this.endIfDone();
  }

  closed(): void {
    this.front.connections.delete(this);
    if (this.phase !== HANDED_OFF) this.phase = CLOSED;
    this.body?.release();
    this.held = this.head = this.body = undefined;
    const stream = this.stream;
    this.stream = undefined;
    stream?.connectionClosed();
  }

  expire(now: number): void {
    const phase = this.phase;
    const elapsed = now - this.since;
    if (phase === IDLE && !this.isFresh) {
      const limit = this.isIdle ? this.front.keepAliveMs : this.front.requestMs;
      if (limit > 0 && elapsed > limit) this.socket.destroy();
    } else if (
      ((phase === HEAD || phase === IDLE) && isPast(elapsed, this.front.headersMs)) ||
      ((phase === BODY || phase === SKIP) && isPast(elapsed, this.front.requestMs))
    ) {
      this.phase = CLOSED;
      this.socket.write(REQUEST_TIMEOUT);
      this.socket.destroySoon();
    }
  }

  /** Reads requests from `buf` at `pos`, one at a time, until it runs out or has to wait. */
  private consume(buf: Buffer, pos: number): void {
    while (pos < buf.length) {
      if (this.phase === WAITING || this.phase === STREAM || this.isBlocked) {
        this.hold(buf, pos);
        return;
      }
      if (this.phase === IDLE || this.phase === HEAD) pos = this.readHead(buf, pos);
      else if (this.phase === BODY || this.phase === SKIP) pos = this.readBody(buf, pos);
      else return;
    }
  }

  private hold(buf: Buffer, pos: number): void {
    const rest = pos === 0 ? buf : buf.subarray(pos);
    // Input held back twice only if 'data' came while paused, which streams do not do, or
    // behind an event stream, which keeps reading (up to a head's size) to see its client leave.
    const held = this.held === undefined ? rest : Buffer.concat([this.held, rest]);
    this.held = held;
    if (this.phase !== STREAM || this.isBlocked || held.length > this.maxHead) this.socket.pause();
  }

  /** Reads a head; returns where its body starts, or `buf.length` when it is not complete. */
  private readHead(buf: Buffer, pos: number): number {
    if (this.phase === IDLE) {
      if (this.front.isBypassed) return this.handOff(buf, pos);
      this.phase = HEAD;
      this.since = Date.now();
    }
    // The head so far: in `buf` from `pos`, or in `this.head` when it began in an earlier chunk.
    let source = buf;
    let start = pos;
    let available = buf.length - pos;
    const carried = this.headLength;
    if (carried > 0) {
      this.appendHead(buf, pos);
      source = (this.head as Buffer).subarray(0, this.headLength);
      start = 0;
      available = this.headLength;
    }
    const prefix = source[start] === 0x47 ? GET_PREFIX : POST_PREFIX;
    const prefixLength = Math.min(available, prefix.length);
    if (source.compare(prefix, 0, prefixLength, start, start + prefixLength) !== 0) {
      return this.handOff(buf, pos, carried);
    }
    const end = source.indexOf('\r\n\r\n', Math.max(start, carried - 3), 'latin1');
    const maxHead = this.maxHead;
    if (end === -1 || end + 4 - start > maxHead) {
      // Not complete (or too long): wait for more unless node:http should answer it already.
      const checkFrom = carried > 0 ? carried - 1 : start;
      if (available > maxHead || hasBareLineEnd(source, checkFrom, start + available)) {
        return this.handOff(buf, pos, carried);
      }
      if (carried === 0) this.appendHead(buf, pos);
      return buf.length;
    }
    if (!this.parseHead(source.toString('latin1', start, end + 2), prefix === GET_PREFIX)) {
      return this.handOff(buf, pos, carried);
    }
    const bodyStart = carried > 0 ? pos + end + 4 - carried : end + 4;
    // node:http refuses a request followed by more input after `Connection: close` (400, and
    // the request is not answered), so such a connection goes to it. Input pipelined behind a
    // stream GET goes to it too: node:http's rules for requests queued behind a response apply.
    if ((this.isLast || this.isGet) && buf.length > bodyStart + this.remaining) {
      return this.handOff(buf, pos, carried);
    }
    this.head = undefined;
    this.headLength = 0;
    if (this.isGet) {
      this.decideStream();
      return buf.length;
    }
    const refusal = this.front.hub.refusePost(
      this.token,
      this.action,
      this.target,
      this.authorization,
      this.cookie,
      this.remaining,
    );
    this.authorization = this.cookie = undefined;
    if (refusal instanceof Promise) {
      // The access check has to wait: the body stays in the socket (or held) until it answers.
      this.phase = WAITING;
      this.socket.pause();
      void refusal.then((found) => this.checked(found));
      return bodyStart;
    }
    return this.startBody(refusal) ? bodyStart : buf.length;
  }

  /**
   * Goes on with a request whose head was accepted: reads its body, or answers the refusal
   * before the body, as node:http does (a keep-alive connection then skips the body).
   * @returns false when the answer closed the connection.
   */
  private startBody(refusal: Answer | undefined): boolean {
    if (refusal === undefined) {
      this.phase = BODY;
      this.body ??= this.front.hub.newBody();
    } else {
      this.reply(refusal);
      if (this.phase === CLOSED) return false;
      this.phase = SKIP;
    }
    if (this.remaining === 0) this.endRequest();
    return true;
  }

  /** The access check that had to wait has answered. */
  private checked(refusal: Answer | undefined): void {
    if (this.phase !== WAITING) return; // the connection closed meanwhile
    if (this.startBody(refusal)) this.resumeInput();
  }

  /** Asks the core about a stream GET whose head was accepted. */
  private decideStream(): void {
    const head: RequestHead = {
      method: 'GET',
      target: this.target,
      origin: this.origin,
      authorization: this.authorization,
      cookie: this.cookie,
      lastEventId: this.lastEventId,
      contentLength: NaN,
      requestHeaders: undefined,
    };
    this.authorization = this.cookie = this.lastEventId = undefined;
    const decision = this.front.hub.decide(head, false);
    if (decision instanceof Promise) {
      // The access check has to wait (a JWT seen for the first time): input waits with it.
      this.phase = WAITING;
      this.socket.pause();
      void decision.then((found) => this.decided(found));
    } else this.act(decision);
  }

  private decided(decision: Decision): void {
    if (this.phase !== WAITING) return; // the connection closed meanwhile
    this.act(decision);
    this.resumeInput();
  }

  /** Does what the core decided for a stream GET: open the stream, or answer. */
  private act(decision: Decision): void {
    if (decision.kind === 'stream') {
      this.phase = STREAM;
      const hub = this.front.hub;
      const stream = new FrontSubscriber(decision.token, hub.context, decision.headers, this);
      this.stream = stream;
      hub.openStream(stream, decision, this.origin);
      return;
    }
    // A GET is never passed on (no middleware here) and has no body to read ('post'): only an
    // answer is left, and anything else would be a bug of the core, answered as a 404.
    this.reply(decision.kind === 'answer' ? decision.answer : this.front.hub.answers.notFound);
  }

  /** Writes the head of the stream the broker opened (status 200, `headers`). */
  openStream(headers: readonly string[]): void {
    this.isFresh = false;
    // As for an answer: once the listener closes, the connection ends with the stream.
    this.isLast ||= this.front.isClosing;
    this.socket.write(this.front.formatStreamHead(headers, this.isLast, Date.now()));
  }

  /** Answers the stream GET that the broker refused (`423`, or its error) instead. */
  refuseStream(answer: Answer, headers: readonly string[]): void {
    this.stream = undefined;
    this.reply(answer, headers);
    if (this.phase === IDLE) process.nextTick(() => this.resumeInput());
  }

  /**
   * Ends the stream with the last chunk. The connection then serves what was pipelined behind the
   * stream, as node:http does after a response ends, or closes after `Connection: close`.
   */
  endStream(): void {
    const stream = this.stream as FrontSubscriber;
    this.stream = undefined;
    this.socket.write(LAST_CHUNK);
    if (this.isLast || this.front.isClosing) {
      this.phase = CLOSED;
      this.held = undefined;
      this.socket.destroySoon();
    } else {
      this.phase = IDLE;
      this.since = Date.now();
    }
    // As a ServerResponse emits 'close' after it finished: after the caller's turn (a broker may
    // be iterating its subscribers), then the next request.
    process.nextTick(() => {
      stream.connectionClosed();
      if (this.phase === IDLE) this.resumeInput();
    });
  }

  /** The client ended its side while a stream was open: as node:http, end the connection. */
  private endStreamAtFin(): void {
    const stream = this.stream;
    this.stream = undefined;
    this.phase = CLOSED;
    this.held = undefined;
    this.socket.end();
    stream?.connectionClosed();
  }

  /**
   * Checks a complete head (request line and header lines, each with its CRLF) and keeps what the
   * request needs. False when node:http should have it.
   * @param isGet Whether it starts with `GET /` (else `POST /`): a stream or operator request,
   *   with no body.
   */
  private parseHead(text: string, isGet: boolean): boolean {
    const lineEnd = text.indexOf('\r\n');
    const targetStart = isGet ? 4 : 5;
    // The method and `/` were checked; the line ends with ` HTTP/1.1`.
    if (lineEnd < targetStart + 10 || !text.startsWith(' HTTP/1.1', lineEnd - 9)) return false;
    const target = text.slice(targetStart, lineEnd - 9);
    if (!TARGET.test(target)) return false;
    FIELDS.lastIndex = lineEnd + 2;
    if (!FIELDS.test(text)) return false;
    const hub = this.front.hub;
    const { route } = parseTarget(target, hub.options.prefix);
    if (route.kind === 'event') {
      // Only the stream route: a GET of another action is answered by node:http (a redirect).
      if (isGet && route.action !== hub.options.eventClass.LISTEN) return false;
    } else if (!isGet || !OPERATOR_ROUTES.has(route.kind)) return false;
    let length: string | undefined;
    let host: string | undefined;
    let connection: string | undefined;
    let authorization: string | undefined;
    let cookie: string | undefined;
    let origin: string | undefined;
    let lastEventId: string | undefined;
    let count = 0;
    for (let at = lineEnd + 2; at < text.length;) {
      if (++count > MAX_FIELDS) return false;
      const end = text.indexOf('\r\n', at);
      const colon = text.indexOf(':', at);
      // Only the names that matter are lowercased: by length first.
      const nameLength = colon - at;
      if (nameLength >= 4 && nameLength <= 17 && nameLength !== 5) {
        const name = text.slice(at, colon).toLowerCase();
        const value = text.slice(colon + 1, end).trim();
        switch (name) {
          case 'content-length':
            if (length !== undefined) return false;
            length = text.slice(colon + 1, end);
            break;
          case 'host':
            if (host !== undefined) return false;
            host = value;
            break;
          case 'connection':
            if (connection !== undefined) return false;
            connection = value.toLowerCase();
            break;
          case 'authorization':
            if (authorization !== undefined) return false;
            authorization = value;
            break;
          case 'origin':
            if (origin !== undefined) return false;
            origin = value;
            break;
          case 'cookie':
            if (cookie !== undefined) return false;
            cookie = value;
            break;
          case 'last-event-id':
            if (lastEventId !== undefined) return false;
            lastEventId = value;
            break;
          // node:http gives Proxy-Connection the meaning of Connection: leave such requests to it.
          case 'proxy-connection':
          case 'transfer-encoding':
          case 'expect':
          case 'upgrade':
            return false;
        }
      }
      at = end + 2;
    }
    if (host === undefined) return false;
    // A stream GET has no body, and says so by having no length (a POST, by its length).
    if (isGet ? length !== undefined : length === undefined || !CONTENT_LENGTH.test(length)) {
      return false;
    }
    if (connection !== undefined && connection !== 'keep-alive' && connection !== 'close') {
      return false;
    }
    this.token = route.kind === 'event' ? route.token : '';
    this.action = route.kind === 'event' ? route.action : '';
    this.target = target;
    this.origin = origin;
    this.authorization = authorization;
    this.cookie = cookie;
    this.lastEventId = lastEventId;
    this.isGet = isGet;
    this.isLast = connection === 'close';
    this.remaining = isGet ? 0 : Number(length);
    return true;
  }

  /** Takes body bytes (views of the chunk, never copies); returns where the next request starts. */
  private readBody(buf: Buffer, pos: number): number {
    const take = Math.min(this.remaining, buf.length - pos);
    if (this.phase === BODY) {
      (this.body as PostBody).add(take === buf.length ? buf : buf.subarray(pos, pos + take));
    }
    this.remaining -= take;
    if (this.remaining === 0) this.endRequest();
    return pos + take;
  }

  /** The body is complete: publish it (BODY) or go on with the next request (SKIP). */
  private endRequest(): void {
    if (this.phase === SKIP) {
      this.phase = IDLE;
      this.since = Date.now();
      return;
    }
    const answer = this.front.hub.finishPost(this.token, this.action, this.body as PostBody);
    if (answer instanceof Promise) {
      // The socket keeps flowing: input that arrives meanwhile is held, and pauses it then
      // (receive() and hold()). Pausing here would cost every such POST a pause and a resume,
      // a measurable part of what a broker that answers later (Redis) adds per POST.
      this.phase = WAITING;
      void answer.then((this.onAnswer ??= this.answered.bind(this)));
    } else this.reply(answer);
  }

  private answered(answer: Answer): void {
    if (this.phase !== WAITING) return; // the connection closed meanwhile
    this.reply(answer);
    this.resumeInput();
  }

  /**
   * Writes an answer; then the connection is IDLE, or CLOSED after `Connection: close`.
   * @param headers The answer's headers, when the core made them already.
   */
  private reply(answer: Answer, headers?: readonly string[]): void {
    const now = Date.now();
    const isLast = this.isLast || this.front.isClosing || closesConnection(answer);
    const text =
      headers === undefined
        ? this.front.format(answer, this.origin, isLast, now)
        : this.front.format(answer, this.origin, isLast, now, headers);
    const isWritable = this.socket.write(text);
    if (isLast) {
      // As node:http does after `Connection: close`: end, and destroy once the reply is out.
      this.phase = CLOSED;
      this.held = undefined;
      this.socket.destroySoon();
      return;
    }
    this.phase = IDLE;
    this.since = now;
    this.isFresh = false;
    if (!isWritable) {
      this.isBlocked = true;
      this.socket.pause();
    }
  }

  /** Reads what was held back, then lets the socket flow again unless it has to wait. */
  private resumeInput(): void {
    const held = this.held;
    this.held = undefined;
    if (held !== undefined) this.consume(held, 0);
    const phase = this.phase;
    if (phase === HANDED_OFF || phase === CLOSED || phase === WAITING || this.isBlocked) return;
    // Behind a stream, input is held but read on (see STREAM) while it stays small.
    const rest = this.held as Buffer | undefined; // consume() may have held some again
    if (rest === undefined || (phase === STREAM && rest.length <= this.maxHead)) {
      this.socket.resume();
    }
    this.endIfDone();
  }

  /** After the client's FIN, ends the connection once nothing more can be answered. */
  private endIfDone(): void {
    if (!this.isEnded || this.phase === WAITING || this.phase >= CLOSED) return;
    if (this.phase === STREAM) {
      this.endStreamAtFin();
      return;
    }
    if (this.held !== undefined || this.isBlocked) return;
    const isCutShort = this.phase !== IDLE;
    this.phase = CLOSED;
    if (isCutShort) {
      // A request cut short by the FIN (part of a head, or of a body) can never be served:
      // node:http's parser fails at the end of input and answers 400, then closes. So here.
      this.socket.write(BAD_REQUEST);
      this.socket.destroySoon();
    } else this.socket.end();
  }

  private appendHead(buf: Buffer, pos: number): void {
    const length = this.headLength;
    const take = Math.min(buf.length - pos, this.maxHead + 4 - length);
    let head = this.head;
    if (head === undefined || head.length < length + take) {
      // Doubling from 1 KiB: a head that trickles in byte by byte is copied O(n) times in all.
      let capacity = head === undefined ? 1024 : head.length * 2;
      while (capacity < length + take) capacity *= 2;
      const grown = Buffer.allocUnsafe(capacity);
      if (head !== undefined) head.copy(grown, 0, 0, length);
      head = this.head = grown;
    }
    buf.copy(head, length, pos, pos + take);
    this.headLength = length + take;
  }

  /**
   * Gives the socket and every byte not consumed to node:http: the first `carried` bytes of
   * `this.head` (a head begun in earlier chunks), then `buf` from `pos`.
   * @returns `buf.length`: nothing more is read here.
   */
  private handOff(buf: Buffer, pos: number, carried = 0): number {
    const socket = this.socket;
    const earlier = carried > 0 ? this.head?.subarray(0, carried) : undefined;
    debug('fast path: connection handed to node:http');
    // A head begun in an earlier read and still unfinished keeps the deadline it had here.
    const headersMs = this.front.headersMs;
    if (
      carried > 0 &&
      headersMs > 0 &&
      (this.head as Buffer).subarray(0, this.headLength).indexOf('\r\n\r\n', 0, 'latin1') === -1
    ) {
      this.front.watchHead(socket, this.since + headersMs);
    }
    this.phase = HANDED_OFF;
    this.front.connections.delete(this);
    // Not `delete`: it would turn the socket into a slow dictionary-mode object for node:http.
    socket[CONNECTION] = undefined;
    socket.removeListener('data', onData);
    socket.removeListener('drain', onDrain);
    socket.removeListener('end', onEnd);
    socket.removeListener('error', onError);
    socket.removeListener('close', onClose);
    const rest = buf.subarray(pos);
    this.head = this.held = undefined;
    if (earlier === undefined) this.front.handOff(socket, socket.isPaused(), rest);
    else this.front.handOff(socket, socket.isPaused(), earlier, rest);
    return buf.length;
  }
}
// The socket's listeners, shared by every connection (no closures per connection).
function onData(this: FrontSocket, chunk: Buffer): void {
  this[CONNECTION]?.receive(chunk);
}
function onDrain(this: FrontSocket): void {
  this[CONNECTION]?.drained();
}
function onEnd(this: FrontSocket): void {
  this[CONNECTION]?.ended();
}
function onClose(this: FrontSocket): void {
  this[CONNECTION]?.closed();
}
function onError(this: FrontSocket, error: Error): void {
  // A client that resets or vanishes: the socket closes and its request is moot. Nothing to tell.
  debug('fast path connection error: %s', error.message);
}

/** Whether `elapsed` ms are past a node:http timeout of `limit` ms (0: no timeout). */
function isPast(elapsed: number, limit: number): boolean {
  return limit > 0 && elapsed > limit;
}

/** The value of an answer's own `Connection` header, if it has one (node then adds none). */
export function connectionHeader(answer: Answer): string | undefined {
  const headers = answer.headers;
  if (headers === undefined) return undefined;
  for (let i = 0; i < headers.length; i += 2) {
    if ((headers[i] as string).toLowerCase() === 'connection') return headers[i + 1] as string;
  }
  return undefined;
}

/** Whether an answer's own headers close the connection, as node:http reads them. */
export function closesConnection(answer: Answer): boolean {
  const value = connectionHeader(answer);
  return value !== undefined && /(?:^|\W)close(?:$|\W)/i.test(value);
}

/** Whether `buf[from..to)` has a LF without a CR before it, or a CR followed by anything but LF. */
function hasBareLineEnd(buf: Buffer, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const byte = buf[i];
    if (byte === 10) {
      if (i === 0 || buf[i - 1] !== 13) return true;
    } else if (byte === 13 && i + 1 < to && buf[i + 1] !== 10) return true;
  }
  return false;
}
