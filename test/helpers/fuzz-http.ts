/**
 * The differential fuzzer of the listener's HTTP/1.1 input: generated request byte streams sent to
 * two listeners, one with the fast path (`transports/front.ts`) and one with `fastPath: false`
 * (node:http alone), each with a subscriber on token `t`. Used by test/listener/fuzz.test.ts (a few
 * thousand cases) and scripts/fuzz.js (long runs). No side effects on import.
 *
 * A case is a list of requests, each rendered to bytes (odd header case and spacing, duplicate
 * or conflicting lengths, Transfer-Encoding variants, obs-fold, bare CR or LF, NUL, huge, negative
 * or hex lengths, non-ASCII, absolute-form targets, HTTP/1.0, missing Host, Proxy-Connection,
 * Expect, Cookie, Authorization), and stream GETs (`/poll/t` for live events, `/poll/r` whose
 * history of three events is replayed after an unknown Last-Event-ID, `/poll/v`; with Origin,
 * Connection and the rest), joined (pipelining) and cut at split points. Each piece is a
 * write of its own, read by the server before the next is written (both listeners run in this
 * process, so one turn of the event loop is enough); then the client ends its side and waits for
 * the listener to close the connection.
 *
 * The property ({@link checkOutcomes}): each listener delivered no more events than it answered
 * 2xx to POSTs, and both answered the same status lines in the same order, wrote the same stream
 * heads (`Date` aside), and delivered the same events to `t` and to the case's own streams.
 * Differences that are node's own are allowed ({@link checkOutcomes}): node:http drops the answers
 * to requests read together with bytes it refuses (it writes only its raw `400`), unless they
 * were answered while it parsed, which depends on how it reads (its parser consumes the socket
 * natively, but the bytes the front hands over go through JavaScript), and the front answers
 * what it served before it hands bytes over. There one side may have fewer answers and events,
 * the same ones as far as it goes; and after an answer, its raw refusal may be missing.
 */
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import fc from 'fast-check';
import { StringEvent } from '../../src/events.js';
import { createListener, type Listener } from '../../src/listener/listener.js';
import { createParser } from '../../src/wire/parser.js';

/** The listeners' publish secret, and their body limit (small, so that `413` comes up). */
export const SECRET = 's3cret';
export const MAX_BODY = 32;
/** How long a listener may take to close a connection after the client's FIN. */
const CLOSE_TIMEOUT_MS = 3000;

/** One generated request (or stray bytes), before it is rendered. */
export interface RequestSpec {
  readonly method: string;
  readonly target: string;
  readonly version: string;
  /** Header lines as written, without their line end; `undefined` lengths are filled in. */
  readonly headers: readonly HeaderSpec[];
  readonly lineEnd: string;
  readonly body: string;
  readonly isChunked: boolean;
  /** Bytes appended after the request (garbage, a bare CR, nothing). */
  readonly trailer: string;
}

export interface HeaderSpec {
  readonly name: string;
  /** Between name and value: `: `, `:`, `:\t`, ` : `. */
  readonly separator: string;
  /** The value; `undefined` for a Content-Length that is the body's true length. */
  readonly value: string | undefined;
  /** An obs-fold continuation after the line (` more`), or ''. */
  readonly fold: string;
}

/** A generated case: the requests, and where the joined bytes are cut into writes. */
export interface FuzzCase {
  readonly requests: readonly RequestSpec[];
  /** Cut points as fractions of the total length (0..1), in any order. */
  readonly cuts: readonly number[];
  /**
   * Whether each request is also a write of its own: then a stream GET is not followed by more
   * input in its read, and the front serves it (and holds what comes behind it).
   */
  readonly splitRequests?: boolean;
}

const upperOrLower = (name: string): fc.Arbitrary<string> =>
  fc.constantFrom(name, name.toLowerCase(), name.toUpperCase(), name.replace(/-(.)/, '-$1'));

/** Values of Content-Length: mostly the true length, else every kind of wrong. */
const lengthValue: fc.Arbitrary<string | undefined> = fc.oneof(
  { weight: 12, arbitrary: fc.constant(undefined) },
  fc.constantFrom('0', '-1', '+3', '0x3', '3 3', '3,3', '99999999999999999999', '1e1', '', ' 3 '),
  fc.integer({ min: 0, max: 80 }).map(String),
  fc.integer({ min: 0, max: 9 }).map((n) => `00${n}`),
);

const headerSpec: fc.Arbitrary<HeaderSpec> = fc.record({
  name: fc.oneof(
    upperOrLower('Content-Length'),
    upperOrLower('Transfer-Encoding'),
    upperOrLower('Connection'),
    upperOrLower('Proxy-Connection'),
    upperOrLower('Expect'),
    upperOrLower('Host'),
    upperOrLower('Authorization'),
    upperOrLower('Cookie'),
    upperOrLower('Origin'),
    upperOrLower('Upgrade'),
    upperOrLower('Last-Event-ID'),
    fc.constantFrom('X-A', 'X A', 'X\u00e9', 'X\0', '', 'X-Long'),
  ),
  separator: fc.constantFrom(': ', ': ', ':', ':\t', ' : ', ':  '),
  value: fc.constant<string | undefined>(''),
  fold: fc.oneof(
    { weight: 15, arbitrary: fc.constant('') },
    fc.constantFrom('\r\n folded', '\r\n\tfolded'),
  ),
});

/** A header line with a value chosen for its name. */
const header: fc.Arbitrary<HeaderSpec> = headerSpec.chain((spec) => {
  const values: Record<string, fc.Arbitrary<string | undefined>> = {
    'content-length': lengthValue,
    'transfer-encoding': fc.constantFrom(
      'chunked',
      'Chunked',
      'gzip, chunked',
      'chunked, gzip',
      'identity',
      ' chunked',
      'chunked ',
    ),
    connection: fc.constantFrom(
      'close',
      'keep-alive',
      'Close',
      'Keep-Alive',
      'upgrade',
      'close, x',
      '',
    ),
    'proxy-connection': fc.constantFrom('close', 'keep-alive'),
    expect: fc.constantFrom('100-continue', '100-Continue', 'nope'),
    host: fc.constantFrom('x', '127.0.0.1', '', 'a b', 'x\u00e9'),
    authorization: fc.constantFrom(
      `Bearer ${SECRET}`,
      `bearer ${SECRET}`,
      'Bearer nope',
      `Bearer  ${SECRET}`,
      'Basic eDp5',
    ),
    cookie: fc.constantFrom('a=b', `token=${SECRET}`, ''),
    origin: fc.constantFrom('https://app.example', 'null'),
    upgrade: fc.constantFrom('websocket', 'h2c'),
    'last-event-id': fc.constantFrom('0', 'x', '', ' 1 '),
    'x-long': fc.integer({ min: 1, max: 20000 }).map((n) => 'l'.repeat(n)),
  };
  const key = spec.name.toLowerCase();
  const value =
    values[key] ?? fc.constantFrom('v', 'v\0v', 'v\u00e9', 'v\rv', 'v\nv', ' v ', '\u00ff', '"v"');
  return value.map((v) => ({ ...spec, value: v }));
});

const request: fc.Arbitrary<RequestSpec> = fc
  .record({
    method: fc.oneof(
      { weight: 12, arbitrary: fc.constant('POST') },
      fc.constantFrom('GET', 'PUT', 'post', 'OPTIONS', 'POST ', 'P\u00d6ST'),
    ),
    target: fc.oneof(
      { weight: 10, arbitrary: fc.constant('/ping/t') },
      fc.constantFrom(
        '/ping/u',
        '/nope/t',
        '/ping/%zz',
        '/ping/t?x=1',
        'http://x/ping/t',
        '/ping/t#f',
        '/ping//t',
        '/ping/t\u00e9',
        '/',
        '*',
        '/ping/t ',
      ),
    ),
    version: fc.oneof(
      { weight: 12, arbitrary: fc.constant('HTTP/1.1') },
      fc.constantFrom('HTTP/1.0', 'HTTP/1.2', 'HTTP/2.0', 'http/1.1', 'HTTP/1.1 '),
    ),
    hasHost: fc.oneof({ weight: 12, arbitrary: fc.constant(true) }, fc.constant(false)),
    hasAuthorization: fc.oneof({ weight: 8, arbitrary: fc.constant(true) }, fc.constant(false)),
    hasLength: fc.oneof({ weight: 10, arbitrary: fc.constant(true) }, fc.constant(false)),
    extra: fc.array(header, { maxLength: 4 }),
    lineEnd: fc.oneof(
      { weight: 20, arbitrary: fc.constant('\r\n') },
      fc.constantFrom('\n', '\r', '\r\r\n'),
    ),
    body: fc.oneof(
      fc.string({ maxLength: 12 }),
      fc.constantFrom('', 'x', 'hello', 'h\u00e9llo \u20ac', 'a\0b', 'a\r\nb', 'a'.repeat(33)),
    ),
    isChunked: fc.oneof({ weight: 10, arbitrary: fc.constant(false) }, fc.constant(true)),
    trailer: fc.oneof(
      { weight: 12, arbitrary: fc.constant('') },
      fc.constantFrom('\r\n', 'garbage\r\n\r\n', '\r', '\n', '\0', 'G'),
    ),
  })
  .map((r) => {
    const headers: HeaderSpec[] = [];
    const plain = (name: string, value: string | undefined): HeaderSpec => ({
      name,
      separator: ': ',
      value,
      fold: '',
    });
    if (r.hasHost) headers.push(plain('Host', 'x'));
    if (r.hasAuthorization) headers.push(plain('Authorization', `Bearer ${SECRET}`));
    if (r.isChunked) headers.push(plain('Transfer-Encoding', 'chunked'));
    else if (r.hasLength) headers.push(plain('Content-Length', undefined));
    // The generated lines go anywhere among the usual ones.
    for (const [i, spec] of r.extra.entries()) headers.splice(i % (headers.length + 1), 0, spec);
    return {
      method: r.method,
      target: r.target,
      version: r.version,
      headers,
      lineEnd: r.lineEnd,
      body: r.body,
      isChunked: r.isChunked,
      trailer: r.trailer,
    };
  });

/** A stream GET, mostly one the fast path serves (no length, no body), else as unusual. */
const streamRequest: fc.Arbitrary<RequestSpec> = fc
  .record({
    target: fc.oneof(
      { weight: 3, arbitrary: fc.constant('/poll/t') },
      { weight: 3, arbitrary: fc.constant('/poll/r') },
      // `v` (and `v#f`, which node reads as its own token), never published to: a stream there
      // changes no POST's answer or later replay (a token's grace and history would).
      fc.constantFrom('/poll/v', '/poll/r?lastEventId=1', '/poll/%zz', '/poll/v#f', '/poll/'),
    ),
    version: fc.oneof(
      { weight: 12, arbitrary: fc.constant('HTTP/1.1') },
      fc.constantFrom('HTTP/1.0', 'http/1.1'),
    ),
    hasHost: fc.oneof({ weight: 12, arbitrary: fc.constant(true) }, fc.constant(false)),
    // Often nothing unusual, so that the front serves many of them.
    extra: fc.oneof(
      { weight: 2, arbitrary: fc.constant<HeaderSpec[]>([]) },
      fc.array(header, { maxLength: 3 }),
    ),
    lineEnd: fc.oneof(
      { weight: 20, arbitrary: fc.constant('\r\n') },
      fc.constantFrom('\n', '\r\r\n'),
    ),
    trailer: fc.oneof(
      { weight: 12, arbitrary: fc.constant('') },
      fc.constantFrom('\r\n', 'garbage\r\n\r\n', '\0'),
    ),
  })
  .map((r) => {
    const headers: HeaderSpec[] = [];
    if (r.hasHost) headers.push({ name: 'Host', separator: ': ', value: 'x', fold: '' });
    headers.push({ name: 'Accept', separator: ': ', value: 'text/event-stream', fold: '' });
    // A replay of `t` would depend on its whole history, which differs once the two listeners
    // differed (as they may, see checkOutcomes): replays are of `r`, whose history is fixed.
    const extra = r.target.startsWith('/poll/r')
      ? r.extra
      : r.extra.filter((h) => h.name.toLowerCase() !== 'last-event-id');
    for (const [i, spec] of extra.entries()) headers.splice(i % (headers.length + 1), 0, spec);
    return {
      method: 'GET',
      target: r.target,
      version: r.version,
      headers,
      lineEnd: r.lineEnd,
      body: '',
      isChunked: false,
      trailer: r.trailer,
    };
  });

/** Cases of one to four requests, cut into up to four writes. */
export const fuzzCase: fc.Arbitrary<FuzzCase> = fc.record({
  requests: fc.array(
    fc.oneof({ weight: 4, arbitrary: request }, { weight: 1, arbitrary: streamRequest }),
    { minLength: 1, maxLength: 4 },
  ),
  cuts: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 3 }),
  splitRequests: fc.boolean(),
});

/** The bytes of one request. */
export function renderRequest(spec: RequestSpec): Buffer {
  const body = Buffer.from(spec.body, 'utf8');
  const eol = spec.lineEnd;
  let head = `${spec.method} ${spec.target} ${spec.version}${eol}`;
  for (const h of spec.headers) {
    const value = h.value ?? String(body.length);
    head += `${h.name}${h.separator}${value}${h.fold}${eol}`;
  }
  head += eol;
  const encoded = spec.isChunked
    ? Buffer.concat([
        Buffer.from(body.length > 0 ? `${body.length.toString(16)}\r\n` : '', 'latin1'),
        body,
        Buffer.from(body.length > 0 ? '\r\n0\r\n\r\n' : '0\r\n\r\n', 'latin1'),
      ])
    : body;
  // Non-ASCII in the head goes out as UTF-8 (what a client would send), the rest as is.
  return Buffer.concat([Buffer.from(head, 'utf8'), encoded, Buffer.from(spec.trailer, 'latin1')]);
}

/** The writes of a case: its requests joined, cut at its cut points. */
export function renderCase(fuzz: FuzzCase): Buffer[] {
  const requests = fuzz.requests.map(renderRequest);
  const bytes = Buffer.concat(requests);
  const cuts = fuzz.cuts.map((c) => Math.floor(c * bytes.length));
  if (fuzz.splitRequests === true) {
    let end = 0;
    for (const request of requests) cuts.push((end += request.length));
  }
  const points = [...new Set(cuts)].filter((p) => p > 0 && p < bytes.length).sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let at = 0;
  for (const point of points) {
    pieces.push(bytes.subarray(at, point));
    at = point;
  }
  pieces.push(bytes.subarray(at));
  return pieces;
}

/** What one listener did with a case. */
export interface Outcome {
  /** The status lines of its answers, in order; `(still open)` if it never closed. */
  readonly statusLines: string[];
  /** Whether each answer is node's raw refusal of input it cannot parse (no other headers). */
  readonly isRawRefusal: boolean[];
  /** The data of the events the subscriber on `t` got. */
  readonly delivered: string[];
  /** Whether each answer is an event stream (its 2xx is not a POST's). */
  readonly isStream: boolean[];
  /** The heads of the event streams among the answers, `Date` blanked. */
  readonly streamHeads: string[];
  /** The data of the events the case's own streams got, in order. */
  readonly streamed: string[];
}

/** A listener with a subscriber on `t`, and the means to run one case against it. */
export class FuzzTarget {
  private readonly events: string[] = [];
  private markerCount = 0;
  private waiting: { marker: string; resolve: () => void } | undefined;
  private port = 0;
  private stream: http.ClientRequest | undefined;
  private replayStream: http.ClientRequest | undefined;
  /** Stream GETs node:http parsed (on the fast-path listener: those the front handed over). */
  nodeStreamGets = 0;

  private constructor(readonly listener: Listener) {}

  static async start(fastPath: boolean): Promise<FuzzTarget> {
    const listener = createListener({
      eventClass: StringEvent,
      mode: 'multi',
      publishSecret: SECRET,
      maxBody: MAX_BODY,
      fastPath,
    });
    const target = new FuzzTarget(listener);
    target.port = Number(new URL(await listener.listen(0, '127.0.0.1')).port);
    listener.server?.on('request', (request: http.IncomingMessage) => {
      if (request.method === 'GET' && request.url?.startsWith('/poll/') === true) {
        target.nodeStreamGets++;
      }
    });
    await target.subscribe();
    await target.keepReplayHistory();
    return target;
  }

  /** Keeps a stream open on `r` and publishes the three events its replays send. */
  private async keepReplayHistory(): Promise<void> {
    const request = http.get(`http://127.0.0.1:${this.port}/poll/r`);
    this.replayStream = request;
    const [response] = (await once(request, 'response')) as [http.IncomingMessage];
    response.resume();
    for (const data of ['r1', 'r2', 'r3']) await this.listener.publish('r', 'ping', data);
  }

  private async subscribe(): Promise<void> {
    const request = http.get(`http://127.0.0.1:${this.port}/poll/t`, {
      headers: { accept: 'text/event-stream' },
    });
    this.stream = request;
    const [response] = (await once(request, 'response')) as [http.IncomingMessage];
    if (response.statusCode !== 200) throw new Error(`subscribe: ${response.statusCode}`);
    const parser = createParser({
      onEvent: (event) => {
        const waiting = this.waiting;
        if (waiting !== undefined && event.data === waiting.marker) {
          this.waiting = undefined;
          waiting.resolve();
        } else this.events.push(event.data);
      },
    });
    response.setEncoding('utf8');
    response.on('data', (chunk: string) => parser.feed(chunk));
    // A fuzz case that ends the stream makes every later delivery go missing: that shows.
    response.on('close', () => this.waiting?.resolve());
  }

  /** Sends the writes of a case on a new connection; see the module comment. */
  async run(pieces: readonly Buffer[]): Promise<Outcome> {
    const socket = net.connect(this.port, '127.0.0.1');
    socket.setNoDelay(true);
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.on('error', () => {
      // A reset after a refusal: the answers read before it are the outcome.
    });
    const closed = once(socket, 'close');
    await once(socket, 'connect');
    for (const piece of pieces) {
      if (socket.destroyed) break;
      socket.write(piece);
      await nextTurn();
    }
    if (!socket.destroyed) socket.end();
    let isOpen = false;
    const timer = setTimeout(() => {
      isOpen = true;
      socket.destroy();
    }, CLOSE_TIMEOUT_MS);
    await closed;
    clearTimeout(timer);
    const delivered = await this.deliveries();
    const responses = splitResponses(text);
    const isStream = responses.map(
      (r) => /^[^]*?\r\n\r\n/.exec(r)?.[0].includes('text/event-stream') === true,
    );
    const streams = responses.filter((_, i) => isStream[i]);
    return {
      statusLines: [
        ...responses.map((r) => r.slice(0, r.indexOf('\r\n'))),
        ...(isOpen ? ['(still open)'] : []),
      ],
      isRawRefusal: responses.map((r) =>
        /^HTTP\/1\.1 4\d\d [^\r]*\r\nConnection: close\r\n\r\n$/.test(r),
      ),
      delivered,
      isStream,
      streamHeads: streams.map((r) =>
        r.slice(0, r.indexOf('\r\n\r\n') + 4).replace(/\r\nDate: [^\r]*/, '\r\nDate: -'),
      ),
      streamed: streams.flatMap(streamedEvents),
    };
  }

  /** The events delivered since the last call: a marker published now closes the list. */
  private async deliveries(): Promise<string[]> {
    const marker = `marker ${++this.markerCount}`;
    const arrived = new Promise<void>((resolve) => (this.waiting = { marker, resolve }));
    await this.listener.publish('t', 'ping', marker);
    await arrived;
    return this.events.splice(0);
  }

  async close(): Promise<void> {
    this.stream?.destroy();
    this.replayStream?.destroy();
    await this.listener.close();
  }
}

/** Two listeners, fast path on and off, that run each case side by side. */
export class FuzzPair {
  private constructor(
    readonly fast: FuzzTarget,
    readonly node: FuzzTarget,
  ) {}

  static async start(): Promise<FuzzPair> {
    return new FuzzPair(await FuzzTarget.start(true), await FuzzTarget.start(false));
  }

  /** Runs a case on both listeners; returns a description of what broke the property, if any. */
  async check(fuzz: FuzzCase): Promise<string | undefined> {
    const pieces = renderCase(fuzz);
    const [fast, node] = await Promise.all([this.fast.run(pieces), this.node.run(pieces)]);
    return checkOutcomes(fast, node);
  }

  async close(): Promise<void> {
    await Promise.all([this.fast.close(), this.node.close()]);
  }
}

/** The property, on what the two listeners did (see the module comment). */
export function checkOutcomes(fast: Outcome, node: Outcome): string | undefined {
  for (const [name, outcome] of [
    ['fast path', fast],
    ['node:http', node],
  ] as const) {
    const answered = outcome.statusLines.filter(
      (line, i) => / 2\d\d /.test(line) && outcome.isStream[i] !== true,
    ).length;
    if (outcome.delivered.length > answered) {
      return `${name} delivered ${outcome.delivered.length} events for ${answered} 2xx answers`;
    }
  }
  if (
    isSame(fast.statusLines, node.statusLines) &&
    isSame(fast.delivered, node.delivered) &&
    isSame(fast.streamHeads, node.streamHeads) &&
    isStreamedAlike(fast, node)
  ) {
    return undefined;
  }
  // Streams are compared as far as both sides go (their answers may be cut short, below).
  if (
    !isPrefix(fast.streamHeads, node.streamHeads) &&
    !isPrefix(node.streamHeads, fast.streamHeads)
  ) {
    return `stream heads differ:\n  fast path: ${JSON.stringify(fast)}\n  node:http: ${JSON.stringify(node)}`;
  }
  const [fastAnswers, fastRefusal] = splitRefusal(fast);
  const [nodeAnswers, nodeRefusal] = splitRefusal(node);
  const isSameRefusal = fastRefusal === nodeRefusal;
  // node writes its raw refusal only when no answer is unfinished on the connection, and whether
  // the one before it has finished depends on how node's parser got the bytes (from the socket
  // itself, or as the front hands them over): after an answer, either side may lack it.
  if (
    isSame(fastAnswers, nodeAnswers) &&
    isSame(fast.delivered, node.delivered) &&
    isStreamedAlike(fast, node) &&
    (isSameRefusal || nodeAnswers.length > 0)
  ) {
    return undefined;
  }
  // node drops the answers to requests read together with bytes it refuses, unless they were
  // answered while it parsed: that depends on how it reads too (its parser consumes the socket
  // itself, except for the bytes the front hands over), and its raw refusal is not written while
  // an answer is in progress, so a refusal may leave no trace. So one side may have fewer answers
  // (and events) than the other, but the same ones as far as it goes.
  const [shorter, longer] =
    fastAnswers.length < nodeAnswers.length
      ? [
          { answers: fastAnswers, delivered: fast.delivered, streamed: fast.streamed },
          { answers: nodeAnswers, delivered: node.delivered, streamed: node.streamed },
        ]
      : [
          { answers: nodeAnswers, delivered: node.delivered, streamed: node.streamed },
          { answers: fastAnswers, delivered: fast.delivered, streamed: fast.streamed },
        ];
  if (
    shorter.answers.length < longer.answers.length &&
    isPrefix(shorter.answers, longer.answers) &&
    isPrefix(shorter.delivered, longer.delivered) &&
    isPrefix(shorter.streamed, longer.streamed)
  ) {
    return undefined;
  }
  return `answers differ:\n  fast path: ${JSON.stringify(fast)}\n  node:http: ${JSON.stringify(node)}`;
}

/**
 * Whether the case's streams got the same events on both sides, but for one difference that is
 * node's: it opens a stream GET pipelined behind a POST before it publishes that POST's event (the
 * body's 'end' comes a tick after the parser emitted both requests), or not, depending on how the
 * bytes reached its parser (from the socket, or handed over by the front), so that stream may get
 * that event too, where the front, strictly in order, opens the stream after. Either side's streams
 * may so have more events, each one the case itself delivered to `t`.
 */
function isStreamedAlike(fast: Outcome, node: Outcome): boolean {
  if (isSame(fast.streamed, node.streamed)) return true;
  return hasExtraOwnEvents(fast.streamed, node) || hasExtraOwnEvents(node.streamed, fast);
}

/** Whether `fewer` is `more.streamed` without some of the events `more` delivered to `t`. */
function hasExtraOwnEvents(fewer: readonly string[], more: Outcome): boolean {
  const published = [...more.delivered];
  let matched = 0;
  for (const data of more.streamed) {
    if (matched < fewer.length && fewer[matched] === data) matched++;
    else {
      const at = published.indexOf(data);
      if (at === -1) return false;
      published.splice(at, 1);
    }
  }
  return matched === fewer.length;
}

/** The status lines before a last raw refusal, and that refusal's, if the answers end with one. */
function splitRefusal(outcome: Outcome): [string[], string | undefined] {
  const lines = outcome.statusLines;
  if (outcome.isRawRefusal.at(-1) === true && outcome.isRawRefusal.length === lines.length) {
    return [lines.slice(0, -1), lines.at(-1)];
  }
  return [lines, undefined];
}

function isSame(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function isPrefix(prefix: readonly string[], of: readonly string[]): boolean {
  return prefix.length <= of.length && prefix.every((x, i) => x === of[i]);
}

/** The data of the events in one event-stream response (chunked or not, complete or not). */
function streamedEvents(response: string): string[] {
  const headEnd = response.indexOf('\r\n\r\n');
  let body = response.slice(headEnd + 4);
  if (/\r\ntransfer-encoding: chunked/i.test(response.slice(0, headEnd))) {
    let text = '';
    for (let at = 0; ;) {
      const lineEnd = body.indexOf('\r\n', at);
      const size = lineEnd === -1 ? NaN : parseInt(body.slice(at, lineEnd), 16);
      if (!(size > 0) || lineEnd + 2 + size > body.length) break;
      text += body.slice(lineEnd + 2, lineEnd + 2 + size);
      at = lineEnd + 4 + size;
    }
    body = text;
  }
  const events: string[] = [];
  const parser = createParser({ onEvent: (event) => events.push(event.data) });
  parser.feed(Buffer.from(body, 'latin1').toString('utf8'));
  return events;
}

/** One full turn of the event loop: the listeners in this process read what was written. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
}

/** Splits raw response text into whole responses (Content-Length, chunked or bodiless). */
export function splitResponses(text: string): string[] {
  const responses: string[] = [];
  let at = 0;
  while (at < text.length) {
    const headEnd = text.indexOf('\r\n\r\n', at);
    if (headEnd === -1) break;
    const head = text.slice(at, headEnd);
    const length = /\r\ncontent-length: (\d+)/i.exec(head);
    let end = headEnd + 4;
    if (length !== null) end += Number(length[1]);
    else if (/\r\ntransfer-encoding: chunked/i.test(head)) {
      const last = text.indexOf('0\r\n\r\n', end);
      if (last === -1) break;
      end = last + 5;
    } else if (/\r\ncontent-type: text\/event-stream/i.test(head)) {
      // A stream to HTTP/1.0: neither length nor chunks, its body runs to the connection's end.
      end = text.length;
    }
    if (end > text.length) break;
    responses.push(text.slice(at, end));
    at = end;
  }
  if (at < text.length) responses.push(text.slice(at));
  return responses;
}
