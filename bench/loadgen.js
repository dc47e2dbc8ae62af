// The load generator: a separate process that drives one server for one scenario and prints one
// JSON line with the figures. bench/run.js starts it (pinned to its own core) for every server,
// scenario and repetition:
//
//   node bench/loadgen.js '{"mode":"unicast","url":"http://127.0.0.1:41234/","pids":[123],...}'
//
// It has to stay cheaper than the servers it measures, so subscribers and publishers are raw `net`
// sockets with a minimal HTTP/1.1 and SSE reader (LF line ends, ASCII data, chunked or plain bodies:
// what the servers under test send), and every delivery is checked: the right event name, and per
// stream the sequence numbers 0, 1, 2, ... with none lost, doubled or out of order. Latency is
// measured in this process only: the publisher puts `performance.now()` in the data and the
// subscriber compares it with the time its read arrived.
//
// Modes: connections, unicast, broadcast (servers); client (a stream read by a client library or
// CLI); publish (sendRequest, eventsource-request --batch, a plain undici loop); parser.
//
// Given `jwtSecret` (unicast), it mints the grants a deployment would hand out, before measuring:
// one JWT per stream, subscribe to its own token only, sent as `?access_token=` (what a browser's
// EventSource can send), and one publish JWT for every POST, sent as `Authorization: Bearer` on
// all publisher connections (a backend's one credential). Both expire in an hour.
//
// Given `scrapeEveryMs` (unicast, the listener with `--metrics`), it also scrapes `GET /metrics`
// that often during the measured window, as Prometheus would (though Prometheus's usual interval
// is 15 s or more), over its own keep-alive connection, one scrape at a time; the scrapes' cost is
// in the server's CPU, and their count and times are in `info`.
//
// `transport` picks how connections and broadcast reach the server: `h1` (the default, cleartext
// HTTP/1.1), `h1-tls` (HTTP/1.1 over TLS, one stream per connection) or `h2` (node:http2 client
// sessions, `sessions` of them, stream i on session i mod sessions). Both TLS transports trust
// the CA in `ca` (a file) and publish over HTTPS/1.1, so that only the subscribers' side differs.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

// ---------------------------------------------------------------------------------------------
// /proc readings of the server under test

/** CPU time (user + system) of the processes, in milliseconds, from /proc/<pid>/stat. */
export function readCpuMs(pids, clockTicks = 100) {
  let ticks = 0;
  for (const pid of pids) {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after "(comm)": state is field 3, utime field 14, stime field 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(fields[11]) + Number(fields[12]);
  }
  return (ticks * 1000) / clockTicks;
}

/** Resident set size of the processes in KiB, from /proc/<pid>/status (VmRSS). */
export function readRssKiB(pids) {
  let kib = 0;
  for (const pid of pids) {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /^VmRSS:\s+(\d+) kB/m.exec(status);
    if (match) kib += Number(match[1]);
  }
  return kib;
}

// ---------------------------------------------------------------------------------------------
// Delivery checks

/** Counts of what went wrong; all zero for a correct run. */
function createChecks() {
  return { lost: 0, doubled: 0, outOfOrder: 0, wrongEvent: 0, badStatus: 0, dropped: 0 };
}

function checkTotal(checks) {
  return Object.values(checks).reduce((a, b) => a + b, 0);
}

/** Data is `<seq> <sendTimeMs>`; better-sse with its default JSON serializer would quote it. */
function parseData(data) {
  const text = data.charCodeAt(0) === 34 ? data.slice(1, -1) : data;
  const space = text.indexOf(' ');
  return { seq: Number(text.slice(0, space)), sentAt: Number(text.slice(space + 1)) };
}

/**
 * Checks one delivery against the stream's expected next sequence number.
 * @returns {boolean} whether it is the expected (new, in order) event.
 */
function checkDelivery(checks, sub, event, seq, expectedEvent) {
  if (event !== expectedEvent) checks.wrongEvent++;
  if (seq === sub.next) {
    sub.next++;
    return true;
  }
  if (seq < sub.next) {
    if (sub.missing?.delete(seq)) {
      // A gap that filled late: out of order rather than lost.
      checks.outOfOrder++;
      checks.lost--;
    } else checks.doubled++;
    return false;
  }
  checks.lost += seq - sub.next;
  checks.outOfOrder++;
  sub.missing ??= new Set();
  for (let missing = sub.next; missing < seq; missing++) sub.missing.add(missing);
  sub.next = seq + 1;
  return true;
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index];
}

function summarize(latencies, count) {
  const sorted = latencies.subarray(0, count).sort();
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted[count - 1] };
}

// ---------------------------------------------------------------------------------------------
// A subscriber: an SSE reader over whatever carries the stream (HTTP/1.1 socket or HTTP/2 stream)

const CR = 13;
const COLON = 58;
const SPACE = 32;
const READ_BUFFER = Buffer.alloc(256 * 1024);

/** What every subscriber shares: the SSE line reader and the stream's sequence state. */
class EventReader {
  /**
   * @param {(sub: EventReader, event: string, data: string, now: number) => void} onEvent
   * @param {(sub: EventReader, error?: Error) => void} onOpen called once: opened (200) or failed
   * @param {(sub: EventReader, why: string) => void} onClose called when an open stream ends
   */
  constructor(onEvent, onOpen, onClose) {
    this.onEvent = onEvent;
    this.onOpen = onOpen;
    this.onClose = onClose;
    this.isOpen = false;
    this.isDone = false;
    this.rest = '';
    this.event = '';
    this.data = '';
    this.hasData = false;
    /** The next sequence number expected on this stream. */
    this.next = 0;
    /** Sequence numbers skipped by a gap, in case they arrive late. */
    this.missing = undefined;
  }

  fail(error) {
    if (this.isDone) return;
    this.isDone = true;
    if (this.isOpen) this.onClose(this, error.message);
    else this.onOpen(this, error);
  }

  feed(text, now) {
    const buffer = this.rest === '' ? text : this.rest + text;
    let start = 0;
    for (;;) {
      const lf = buffer.indexOf('\n', start);
      if (lf === -1) break;
      let end = lf;
      if (end > start && buffer.charCodeAt(end - 1) === CR) end--;
      if (end === start) {
        if (this.hasData) this.onEvent(this, this.event || 'message', this.data, now);
        this.event = '';
        this.data = '';
        this.hasData = false;
      } else if (buffer.charCodeAt(start) !== COLON) {
        const colon = buffer.indexOf(':', start);
        let field;
        let value = '';
        if (colon === -1 || colon > end) field = buffer.slice(start, end);
        else {
          field = buffer.slice(start, colon);
          const from = buffer.charCodeAt(colon + 1) === SPACE ? colon + 2 : colon + 1;
          value = buffer.slice(from, end);
        }
        if (field === 'data') {
          this.data = this.hasData ? `${this.data}\n${value}` : value;
          this.hasData = true;
        } else if (field === 'event') this.event = value;
      }
      start = lf + 1;
    }
    this.rest = start === buffer.length ? '' : buffer.slice(start);
  }
}

/** A stream over HTTP/1.1: GET on its own socket (plain or TLS), a minimal response reader, de-chunking. */
class Subscriber extends EventReader {
  /**
   * @param {{host: string, port: number, secureContext?: tls.SecureContext}} target TLS when it
   *   has a `secureContext`
   * @param {string} path
   */
  constructor(target, path, onEvent, onOpen, onClose) {
    super(onEvent, onOpen, onClose);
    this.head = '';
    this.isChunked = false;
    this.chunkLeft = 0;
    this.crlfLeft = 0;
    this.sizeLine = '';
    // `onread` reads into one shared buffer and skips the stream machinery: the cheapest way for
    // one process to read thousands of sockets. Each read is decoded at once, so sharing is safe.
    const onread = {
      buffer: READ_BUFFER,
      callback: (length, buffer) => {
        this.receive(buffer.toString('latin1', 0, length));
      },
    };
    const isTls = target.secureContext !== undefined;
    const socket = isTls
      ? tls.connect({
          port: target.port,
          host: target.host,
          secureContext: target.secureContext,
          session: target.tlsSession,
          ALPNProtocols: ['http/1.1'],
          onread,
        })
      : net.connect({ port: target.port, host: target.host, onread });
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on(isTls ? 'secureConnect' : 'connect', () => {
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: ${target.host}:${target.port}\r\n` +
          'Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n',
      );
    });
    socket.on('error', (error) => this.fail(error));
    socket.on('close', () => this.fail(new Error('connection closed')));
  }

  close() {
    this.isDone = true;
    this.socket.destroy();
  }

  receive(text) {
    const now = performance.now();
    if (!this.isOpen) {
      this.head += text;
      const end = this.head.indexOf('\r\n\r\n');
      if (end === -1) return;
      const head = this.head.slice(0, end);
      text = this.head.slice(end + 4);
      this.head = '';
      const status = Number(head.slice(9, 12));
      if (status !== 200) {
        this.isDone = true;
        this.socket.destroy();
        this.onOpen(this, new Error(`status ${status}: ${head.split('\r\n', 1)[0]}`));
        return;
      }
      this.isChunked = /\r\ntransfer-encoding:[ \t]*chunked/i.test(head);
      this.isOpen = true;
      this.onOpen(this, undefined);
      if (text === '') return;
    }
    this.feed(this.isChunked ? this.dechunk(text) : text, now);
  }

  dechunk(text) {
    let out = '';
    let i = 0;
    const length = text.length;
    while (i < length) {
      if (this.chunkLeft > 0) {
        const take = Math.min(this.chunkLeft, length - i);
        out += text.slice(i, i + take);
        i += take;
        this.chunkLeft -= take;
        if (this.chunkLeft === 0) this.crlfLeft = 2;
      } else if (this.crlfLeft > 0) {
        i++;
        this.crlfLeft--;
      } else {
        const lf = text.indexOf('\n', i);
        if (lf === -1) {
          this.sizeLine += text.slice(i);
          break;
        }
        const size = parseInt(this.sizeLine + text.slice(i, lf), 16);
        this.sizeLine = '';
        i = lf + 1;
        if (size === 0) break; // the last chunk: the stream ended
        this.chunkLeft = size;
      }
    }
    return out;
  }
}

/** A stream over HTTP/2: one request on a shared session; node:http2 has already de-framed it. */
class Http2Subscriber extends EventReader {
  /**
   * @param {http2.ClientHttp2Session} session
   * @param {string} path
   */
  constructor(session, path, onEvent, onOpen, onClose) {
    super(onEvent, onOpen, onClose);
    const stream = session.request({
      ':path': path,
      accept: 'text/event-stream',
      'cache-control': 'no-cache',
    });
    this.stream = stream;
    stream.on('response', (headers) => {
      const status = headers[':status'];
      if (status !== 200) {
        this.isDone = true;
        stream.close(http2.constants.NGHTTP2_CANCEL);
        this.onOpen(this, new Error(`status ${status}`));
        return;
      }
      this.isOpen = true;
      this.onOpen(this, undefined);
    });
    stream.on('data', (chunk) => this.feed(chunk.toString('latin1'), performance.now()));
    stream.on('error', (error) => this.fail(error));
    stream.on('close', () => this.fail(new Error(`stream closed (${stream.rstCode})`)));
  }

  close() {
    this.isDone = true;
    if (!this.stream.destroyed) this.stream.close(http2.constants.NGHTTP2_CANCEL);
  }
}

/**
 * Opens `count` HTTP/2 sessions to the target, `concurrency` TLS handshakes at a time.
 * @returns {Promise<http2.ClientHttp2Session[]>} once each has the server's SETTINGS.
 */
async function openSessions(target, count, concurrency = 20) {
  const sessions = [];
  const openOne = () =>
    new Promise((resolve, reject) => {
      const session = http2.connect(`https://${target.host}:${target.port}`, {
        secureContext: target.secureContext,
        session: target.tlsSession,
        // Until the server's SETTINGS arrive node assumes at most 100 concurrent streams; the
        // listener allows more, and this generator opens 100 or more on one session at once.
        peerMaxConcurrentStreams: 1000,
      });
      sessions.push(session);
      session.once('remoteSettings', () => {
        session.off('error', reject);
        session.on('error', () => {
          // Its streams report it (each one's 'error' or 'close'); nothing to add here.
        });
        resolve();
      });
      session.once('error', reject);
    });
  for (let i = 0; i < count; i += concurrency) {
    await Promise.all(Array.from({ length: Math.min(concurrency, count - i) }, openOne));
  }
  return sessions;
}

/** Creates subscriber `index`: on its own socket, or on session `index mod sessions` (HTTP/2). */
function createSubscriber(target, path, index, onEvent, onOpen, onClose) {
  if (target.sessions === undefined) {
    return new Subscriber(target, path, onEvent, onOpen, onClose);
  }
  const session = target.sessions[index % target.sessions.length];
  return new Http2Subscriber(session, path, onEvent, onOpen, onClose);
}

/**
 * Opens one subscriber per path, `concurrency` at a time.
 * @returns {Promise<EventReader[]>} once all are open; rejects on the first that fails.
 */
function openSubscribers(target, paths, concurrency, onEvent, onClose) {
  return new Promise((resolve, reject) => {
    const subs = new Array(paths.length);
    let started = 0;
    let opened = 0;
    let failed = false;
    const start = () => {
      const index = started++;
      subs[index] = createSubscriber(target, paths[index], index, onEvent, onOpen, onClose);
    };
    const onOpen = (sub, error) => {
      if (failed) return;
      if (error !== undefined) {
        failed = true;
        for (const s of subs) s?.close();
        reject(new Error(`subscriber ${subs.indexOf(sub)} did not open: ${error.message}`));
        return;
      }
      opened++;
      if (opened === paths.length) resolve(subs);
      else if (started < paths.length) start();
    };
    for (let i = 0; i < Math.min(concurrency, paths.length); i++) start();
  });
}

// ---------------------------------------------------------------------------------------------
// A publisher: one keep-alive connection (plain or TLS), one POST in flight, a minimal response reader

class Publisher {
  constructor(target) {
    this.target = target;
    this.hostHeader = `${target.host}:${target.port}`;
    this.authorization =
      target.bearer === undefined ? '' : `Authorization: Bearer ${target.bearer}\r\n`;
    this.buffer = '';
    this.head = undefined;
    this.callback = undefined;
    const isTls = target.secureContext !== undefined;
    this.socket = isTls
      ? tls.connect({
          port: target.port,
          host: target.host,
          secureContext: target.secureContext,
          session: target.tlsSession,
          ALPNProtocols: ['http/1.1'],
        })
      : net.connect(target.port, target.host);
    /** Settles once the connection (and its TLS handshake) is up. */
    this.ready = once(this.socket, isTls ? 'secureConnect' : 'connect');
    this.socket.setNoDelay(true);
    this.socket.on('data', (chunk) => this.receive(chunk));
    this.socket.on('error', (error) => this.finish(0, error.message));
    this.socket.on('close', () => this.finish(0, 'publisher connection closed'));
  }

  /** POSTs `body` to `path`; `callback(status, body)` runs when the response is complete. */
  post(path, body, callback) {
    this.callback = callback;
    this.socket.write(
      `POST ${path} HTTP/1.1\r\nHost: ${this.hostHeader}\r\n${this.authorization}` +
        `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  }

  finish(status, body) {
    const callback = this.callback;
    this.callback = undefined;
    callback?.(status, body);
  }

  receive(chunk) {
    this.buffer += chunk.toString('latin1');
    for (;;) {
      if (this.head === undefined) {
        const end = this.buffer.indexOf('\r\n\r\n');
        if (end === -1) return;
        const head = this.buffer.slice(0, end);
        this.buffer = this.buffer.slice(end + 4);
        const length = /\r\ncontent-length:[ \t]*(\d+)/i.exec(head);
        this.head = {
          status: Number(head.slice(9, 12)),
          length: length ? Number(length[1]) : -1,
          isChunked: /\r\ntransfer-encoding:[ \t]*chunked/i.test(head),
        };
      }
      let end;
      if (this.head.isChunked) {
        end = chunkedEnd(this.buffer);
        if (end === -1) return;
      } else {
        end = Math.max(0, this.head.length);
        if (this.buffer.length < end) return;
      }
      const body = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end);
      const status = this.head.status;
      this.head = undefined;
      this.finish(status, body);
    }
  }

  close() {
    this.callback = undefined;
    this.socket.destroy();
  }
}

/** Where a complete chunked body ends in `text`, or -1 (trailers are not expected). */
function chunkedEnd(text) {
  let i = 0;
  for (;;) {
    const crlf = text.indexOf('\r\n', i);
    if (crlf === -1) return -1;
    const size = parseInt(text.slice(i, crlf), 16);
    if (size === 0) return text.length >= crlf + 4 ? crlf + 4 : -1;
    i = crlf + 2 + size + 2;
    if (i > text.length) return -1;
  }
}

/**
 * Where the server is, from the parameters: `url`, and `ca` (a file) for TLS. HTTP/2 targets get
 * their `sessions` from openSessions().
 */
function targetOf(p) {
  const parsed = new URL(p.url);
  return {
    host: parsed.hostname,
    port: Number(parsed.port),
    base: parsed.pathname,
    // One context for every connection: given `ca` alone, each connection would build its own.
    ...(p.transport === 'h1-tls' || p.transport === 'h2'
      ? { secureContext: tls.createSecureContext({ ca: readFileSync(p.ca) }) }
      : {}),
  };
}

/**
 * Gets a TLS target ready: a TLS session to resume from then on, and for HTTP/2 `count` sessions.
 * Resuming skips the server's RSA signature, most of a full handshake's cost (the same for both
 * TLS transports), which would otherwise make the HTTP/1.1 side the slowest part of the run.
 */
async function connectTarget(target, p, count) {
  if (target.secureContext === undefined) return;
  if (target.tlsSession === undefined && p.resumeTls !== false) {
    const socket = tls.connect({
      port: target.port,
      host: target.host,
      secureContext: target.secureContext,
      ALPNProtocols: ['http/1.1'],
    });
    [target.tlsSession] = await once(socket, 'session');
    socket.destroy();
  }
  if (p.transport === 'h2') target.sessions = await openSessions(target, count);
}

/** How many of the target's TLS connections resumed the primed session (for the record). */
function countResumed(target, subs) {
  if (target.secureContext === undefined) return undefined;
  const sockets =
    target.sessions?.map((session) => session.socket) ?? subs.map((sub) => sub.socket);
  return `${sockets.filter((socket) => socket.isSessionReused()).length}/${sockets.length}`;
}

/** Closes the subscribers and then the target's HTTP/2 sessions, if any. */
function closeAll(target, subs) {
  for (const sub of subs) sub.close();
  for (const session of target.sessions ?? []) session.destroy();
  target.sessions = undefined;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function cpuNow() {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
}

// ---------------------------------------------------------------------------------------------
// Scenarios

/** Idle subscribers on distinct tokens: memory, time and CPU to open them. */
async function runConnections(p) {
  const target = targetOf(p);
  const checks = createChecks();
  const onEvent = () => checks.wrongEvent++; // idle: nothing may arrive
  const onClose = () => checks.dropped++;
  // Warm the server's code paths up, then let it settle before the baseline.
  await connectTarget(target, p, 1);
  const warm = await openSubscribers(
    target,
    Array.from({ length: 50 }, (_, i) => `${target.base}poll/w${i}`),
    50,
    onEvent,
    () => {},
  );
  closeAll(target, warm);
  await sleep(500);
  const rss0 = readRssKiB(p.pids);
  const cpu0 = readCpuMs(p.pids, p.clockTicks);
  const t0 = performance.now();
  // HTTP/2 sessions count as part of their streams' cost: they are opened after the baseline.
  await connectTarget(target, p, p.sessions);
  const subs = await openSubscribers(
    target,
    Array.from({ length: p.count }, (_, i) => `${target.base}poll/c${i}`),
    p.concurrency ?? 200,
    onEvent,
    onClose,
  );
  const openMs = performance.now() - t0;
  const cpu1 = readCpuMs(p.pids, p.clockTicks);
  // Let lazy work (timers, GC of the opening garbage) happen before RSS is read.
  await sleep(p.settleMs ?? 1500);
  const rss1 = readRssKiB(p.pids);
  const tlsResumed = countResumed(target, subs);
  closeAll(target, subs);
  return {
    metrics: {
      rssPerSubscriberKiB: (rss1 - rss0) / p.count,
      openMs,
      cpuPerConnectionUs: ((cpu1 - cpu0) * 1000) / p.count,
    },
    info: {
      count: p.count,
      transport: p.transport ?? 'h1',
      ...(p.transport === 'h2' ? { sessions: p.sessions } : {}),
      ...(tlsResumed === undefined ? {} : { tlsResumed }),
      rssBeforeKiB: rss0,
      rssAfterKiB: rss1,
    },
    checks,
  };
}

/**
 * The JWTs of a unicast run with auth: `subscribe[i]` grants token `u<i>` alone, `publish` every
 * token. HS256 with the listener's `--jwt-secret`, an hour's expiry.
 */
async function mintGrants(secret, tokens) {
  const { signAccessToken } = await import('../dist/index.js');
  const subscribe = [];
  for (let i = 0; i < tokens; i++) {
    subscribe.push(await signAccessToken({ subscribe: [`u${i}`], expiresIn: 3600 }, secret));
  }
  const publish = await signAccessToken({ publish: ['*'], expiresIn: 3600 }, secret);
  return { subscribe, publish };
}

/**
 * Scrapes `<base>metrics` every `everyMs` from now until stop(), one at a time, over one keep-alive
 * connection. A scrape that does not answer 200 with the deliveries counter counts as `badScrape`.
 * @returns {{ stop: () => { count: number, medianMs: number, maxMs: number } }}
 */
function startScraping(target, everyMs, checks) {
  checks.badScrape = 0;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const times = [];
  let isBusy = false;
  const scrape = () => {
    if (isBusy) return;
    isBusy = true;
    const startedAt = performance.now();
    const request = http.get(
      { host: target.host, port: target.port, path: `${target.base}metrics`, agent },
      (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (text) => (body += text));
        response.on('end', () => {
          times.push(performance.now() - startedAt);
          if (response.statusCode !== 200 || !body.includes('eventsource_deliveries_total ')) {
            checks.badScrape++;
          }
          isBusy = false;
        });
      },
    );
    request.on('error', () => {
      checks.badScrape++;
      isBusy = false;
    });
  };
  const timer = setInterval(scrape, everyMs);
  return {
    stop() {
      clearInterval(timer);
      agent.destroy();
      const sorted = times.slice().sort((a, b) => a - b);
      return {
        count: sorted.length,
        medianMs: percentile(sorted, 50),
        maxMs: percentile(sorted, 100),
      };
    },
  };
}

/** 1 subscriber per token; publishers POST as fast as answered, each owning a share of the tokens. */
async function runUnicast(p) {
  const target = targetOf(p);
  const checks = createChecks();
  const { tokens, events, publishers } = p;
  const latencies = new Float64Array(events);
  let delivered = 0;
  let lastDeliveryAt = 0;
  let answered = 0;
  let finish;
  const done = new Promise((resolve) => (finish = resolve));
  const isDone = () => delivered + checks.lost >= events && answered === events;
  const onEvent = (sub, event, data, now) => {
    const { seq, sentAt } = parseData(data);
    if (checkDelivery(checks, sub, event, seq, 'ping')) {
      latencies[delivered++] = now - sentAt;
      lastDeliveryAt = now;
      if (isDone()) finish();
    }
  };
  let streamQuery = () => '';
  if (p.jwtSecret !== undefined) {
    const grants = await mintGrants(p.jwtSecret, tokens);
    target.bearer = grants.publish;
    streamQuery = (i) => `?access_token=${grants.subscribe[i]}`;
  }
  const subs = await openSubscribers(
    target,
    Array.from({ length: tokens }, (_, i) => `${target.base}poll/u${i}${streamQuery(i)}`),
    p.concurrency ?? 200,
    onEvent,
    () => checks.dropped++,
  );
  await sleep(200);
  // Event k goes to token k % tokens as that token's event floor(k / tokens); token t always goes
  // through publisher t % publishers, so a token's events are sent one after another and their
  // order is the server's to keep.
  const queues = Array.from({ length: publishers }, () => []);
  for (let k = 0; k < events; k++) queues[(k % tokens) % publishers].push(k);
  const pubs = Array.from({ length: publishers }, () => new Publisher(target));
  await Promise.all(pubs.map((pub) => pub.ready));
  const cpu0 = readCpuMs(p.pids, p.clockTicks);
  const own0 = cpuNow();
  const t0 = performance.now();
  const scraping =
    p.scrapeEveryMs === undefined ? undefined : startScraping(target, p.scrapeEveryMs, checks);
  pubs.forEach((pub, index) => {
    const queue = queues[index];
    let at = 0;
    const sendNext = () => {
      if (at >= queue.length) return;
      const k = queue[at++];
      const token = k % tokens;
      pub.post(
        `${target.base}ping/u${token}`,
        `${Math.floor(k / tokens)} ${performance.now()}`,
        onReply,
      );
    };
    const onReply = (status) => {
      answered++;
      if (status < 200 || status > 299) checks.badStatus++;
      if (isDone()) finish();
      else sendNext();
    };
    sendNext();
  });
  const timer = setTimeout(finish, p.timeoutMs ?? 60000);
  await done;
  clearTimeout(timer);
  const tEnd = performance.now();
  const cpu1 = readCpuMs(p.pids, p.clockTicks);
  const own1 = cpuNow();
  const scrapes = scraping?.stop();
  if (delivered + checks.lost < events) checks.lost += events - delivered - checks.lost;
  for (const pub of pubs) pub.close();
  for (const sub of subs) sub.close();
  const seconds = ((lastDeliveryAt || tEnd) - t0) / 1000;
  const latency = summarize(latencies, delivered);
  return {
    metrics: {
      deliveriesPerSecond: delivered / seconds,
      cpuPerDeliveryUs: ((cpu1 - cpu0) * 1000) / Math.max(1, delivered),
      latencyP50Ms: latency.p50,
      latencyP99Ms: latency.p99,
      loadgenBusyPercent: ((own1 - own0) / (tEnd - t0)) * 100,
    },
    info: {
      tokens,
      events,
      publishers,
      delivered,
      answered,
      latencyMaxMs: latency.max,
      ...(p.jwtSecret === undefined ? {} : { auth: 'JWT per stream, 1 shared publish JWT' }),
      ...(scrapes === undefined ? {} : { scrapes }),
    },
    checks,
  };
}

/** Many subscribers on one token; one event at a time, the next once every subscriber has it. */
async function runBroadcast(p) {
  const target = targetOf(p);
  const checks = createChecks();
  const { subscribers, events, warmup = 10 } = p;
  const total = subscribers * events;
  const latencies = new Float64Array(total);
  const lastLatencies = new Float64Array(events);
  let delivered = 0;
  let current = -1; // the sequence number in flight
  let remaining = 0;
  let isAnswered = false;
  let sentAt = 0;
  let lastOfCurrent = 0;
  let step;
  const onEvent = (sub, event, data, now) => {
    const { seq, sentAt: stamp } = parseData(data);
    if (!checkDelivery(checks, sub, event, seq, 'ping')) return;
    if (seq >= warmup) latencies[delivered++] = now - stamp;
    if (seq === current) {
      remaining--;
      lastOfCurrent = now;
      if (remaining === 0 && isAnswered) step();
    }
  };
  await connectTarget(target, p, p.sessions);
  const subs = await openSubscribers(
    target,
    Array.from({ length: subscribers }, () => `${target.base}poll/b`),
    p.concurrency ?? 200,
    onEvent,
    () => checks.dropped++,
  );
  await sleep(200);
  const pub = new Publisher(target);
  await pub.ready;
  let cpu0 = 0;
  let own0 = 0;
  let t0 = 0;
  await new Promise((resolve, reject) => {
    let timer;
    step = () => {
      clearTimeout(timer);
      if (current >= warmup) lastLatencies[current - warmup] = lastOfCurrent - sentAt;
      current++;
      if (current === warmup) {
        cpu0 = readCpuMs(p.pids, p.clockTicks);
        own0 = cpuNow();
        t0 = performance.now();
      }
      if (current === warmup + events) {
        resolve();
        return;
      }
      remaining = subscribers;
      isAnswered = false;
      timer = setTimeout(
        () => reject(new Error(`event ${current}: ${remaining} subscribers still waiting`)),
        p.eventTimeoutMs ?? 15000,
      );
      sentAt = performance.now();
      pub.post(`${target.base}ping/b`, `${current} ${sentAt}`, (status) => {
        if (status < 200 || status > 299) checks.badStatus++;
        isAnswered = true;
        if (remaining === 0) step();
      });
    };
    step();
  });
  const tEnd = performance.now();
  const cpu1 = readCpuMs(p.pids, p.clockTicks);
  const own1 = cpuNow();
  pub.close();
  const tlsResumed = countResumed(target, subs);
  closeAll(target, subs);
  const latency = summarize(latencies, delivered);
  const last = summarize(lastLatencies, events);
  return {
    metrics: {
      deliveriesPerSecond: delivered / ((tEnd - t0) / 1000),
      latencyP50Ms: latency.p50,
      latencyP99Ms: latency.p99,
      lastSubscriberP50Ms: last.p50,
      lastSubscriberMaxMs: last.max,
      cpuPerDeliveryUs: ((cpu1 - cpu0) * 1000) / Math.max(1, delivered),
      loadgenBusyPercent: ((own1 - own0) / (tEnd - t0)) * 100,
    },
    info: {
      subscribers,
      events,
      warmup,
      delivered,
      expected: total,
      transport: p.transport ?? 'h1',
      ...(p.transport === 'h2' ? { sessions: p.sessions } : {}),
      ...(tlsResumed === undefined ? {} : { tlsResumed }),
    },
    checks,
  };
}

/** A client reads `count` events of GET /stream/<count> from the raw server. */
async function runClient(p) {
  const url = `${p.url}stream/${p.count}`;
  const checks = createChecks();
  const count = p.count;
  let received = 0;
  let t0 = 0;
  let t1 = 0;
  // Events are `id: n` / `data: {"n":n}` for n = 1..count.
  const check = (id, data) => {
    received++;
    if (Number(id) !== received) checks.outOfOrder++;
    if (data.length < 6 || data.charCodeAt(0) !== 123) checks.wrongEvent++;
  };
  if (p.client === 'toolkit' || p.client === 'toolkit-onEvent') {
    const { EventSourceClient } = await import('../dist/client.js');
    await new Promise((resolve, reject) => {
      const useOnEvent = p.client === 'toolkit-onEvent';
      const client = new EventSourceClient(url, {
        reconnect: false,
        ...(useOnEvent
          ? {
              onEvent: (event) => {
                check(event.id, event.data);
                if (received === count) {
                  t1 = performance.now();
                  client.close();
                }
              },
            }
          : {}),
      });
      client.addEventListener('open', () => (t0 = performance.now()));
      if (!useOnEvent) {
        client.addEventListener('message', (event) => {
          check(event.lastEventId, event.data);
          if (received === count) {
            t1 = performance.now();
            client.close();
          }
        });
      }
      client.closed.then(resolve, reject);
    });
  } else if (p.client === 'eventsource') {
    const { EventSource } = await import('eventsource');
    await new Promise((resolve, reject) => {
      const source = new EventSource(url);
      source.addEventListener('open', () => (t0 = performance.now()));
      source.addEventListener('message', (event) => {
        check(event.lastEventId, event.data);
        if (received === count) {
          t1 = performance.now();
          source.close();
          resolve();
        }
      });
      source.addEventListener('error', () => {
        source.close();
        if (received < count) reject(new Error(`eventsource stopped after ${received} events`));
      });
    });
  } else if (p.client === 'cli-json') {
    // The CLI writes to a file (as `> file` would), so that this process does nothing meanwhile.
    const dir = mkdtempSync(join(tmpdir(), 'bench-client-'));
    const outPath = join(dir, 'out.jsonl');
    const out = openSync(outPath, 'w');
    const child = spawn(
      process.execPath,
      [join(root, 'bin/eventsource-client.js'), '--url', url, '--json', '--count', String(count)],
      { stdio: ['ignore', out, 'pipe'], env: { ...process.env, NO_COLOR: '1' } },
    );
    closeSync(out);
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (text) => {
      if (t0 === 0 && (stderr + text).includes('connected to')) t0 = performance.now();
      stderr += text;
    });
    const [code] = await once(child, 'exit');
    t1 = performance.now();
    if (code !== 0) throw new Error(`eventsource-client exited ${code}: ${stderr.trim()}`);
    const lines = readFileSync(outPath, 'utf8').split('\n');
    rmSync(dir, { recursive: true, force: true });
    for (const line of lines) {
      if (line === '') continue;
      const event = JSON.parse(line);
      if (event.event !== 'message') checks.wrongEvent++;
      check(event.id, event.data);
    }
  } else {
    throw new Error(`unknown client ${p.client}`);
  }
  if (received !== count) checks.lost += count - received;
  return {
    metrics: { eventsPerSecond: count / ((t1 - t0) / 1000) },
    info: { count, received, ms: t1 - t0 },
    checks,
  };
}

/**
 * `count` events POSTed to our listener by `loops` loops at once (each awaits its previous reply;
 * loop j sends to token p<j>, which has one subscriber, so every token's order is checked), or by
 * one `eventsource-request --batch` process (one connection, one event after another, token p0).
 */
async function runPublish(p) {
  const target = targetOf(p);
  const checks = createChecks();
  const isCli = p.client === 'cli-batch';
  const loops = isCli ? 1 : (p.loops ?? 16);
  const count = p.count;
  const warmup = isCli ? 0 : (p.warmup ?? 500);
  const perLoop = Math.ceil((warmup + count) / loops);
  let delivered = 0;
  let allDelivered;
  const deliveredAll = new Promise((resolve) => (allDelivered = resolve));
  const subs = await openSubscribers(
    target,
    Array.from({ length: loops }, (_, j) => `${target.base}poll/p${j}`),
    loops,
    (s, event, data) => {
      checkDelivery(checks, s, event, parseData(data).seq, 'ping');
      if (++delivered === perLoop * loops) allDelivered();
    },
    () => checks.dropped++,
  );
  const data = (i) => `${i} ${performance.now()}`;
  let send;
  if (p.client === 'sendRequest') {
    const { sendRequest } = await import('../dist/request.js');
    send = async (j, i) => {
      const result = await sendRequest({
        host: target.host,
        port: target.port,
        prefix: target.base,
        token: `p${j}`,
        action: 'ping',
        data: data(i),
      });
      if (result.status !== 200) checks.badStatus++;
    };
  } else if (p.client === 'undici') {
    const { request } = await import('undici');
    send = async (j, i) => {
      const { statusCode, body } = await request(`${p.url}ping/p${j}`, {
        method: 'POST',
        headers: { 'content-type': 'text/plain; charset=utf-8' },
        body: data(i),
      });
      await body.text();
      if (statusCode !== 200) checks.badStatus++;
    };
  }
  let t0;
  let t1;
  let clientCpuMs;
  if (send !== undefined) {
    const loop = async (j, from, to) => {
      for (let i = from; i < to; i++) await send(j, i);
    };
    const warm = Math.ceil(warmup / loops);
    await Promise.all(Array.from({ length: loops }, (_, j) => loop(j, 0, warm)));
    const cpu0 = cpuNow();
    t0 = performance.now();
    await Promise.all(Array.from({ length: loops }, (_, j) => loop(j, warm, perLoop)));
    t1 = performance.now();
    clientCpuMs = cpuNow() - cpu0;
  } else if (isCli) {
    const dir = mkdtempSync(join(tmpdir(), 'bench-request-'));
    const inPath = join(dir, 'in.jsonl');
    const lines = [];
    for (let i = 0; i < perLoop; i++) {
      lines.push(`{"token":"p0","action":"ping","data":"${i} ${performance.now()}"}`);
    }
    writeFileSync(inPath, `${lines.join('\n')}\n`);
    const input = openSync(inPath, 'r');
    t0 = performance.now();
    const child = spawn(
      process.execPath,
      [
        join(root, 'bin/eventsource-request.js'),
        '-H',
        target.host,
        '-P',
        String(target.port),
        '--batch',
      ],
      { stdio: [input, 'ignore', 'pipe'], env: { ...process.env, NO_COLOR: '1' } },
    );
    closeSync(input);
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (text) => (stderr += text));
    const [code] = await once(child, 'exit');
    t1 = performance.now();
    rmSync(dir, { recursive: true, force: true });
    if (code !== 0) throw new Error(`eventsource-request exited ${code}: ${stderr.trim()}`);
  } else {
    throw new Error(`unknown publisher ${p.client}`);
  }
  const timer = setTimeout(allDelivered, 10000);
  await deliveredAll;
  clearTimeout(timer);
  for (const sub of subs) sub.close();
  if (delivered < perLoop * loops) checks.lost += perLoop * loops - delivered;
  const sent = perLoop * loops - Math.ceil(warmup / loops) * loops;
  return {
    metrics: {
      eventsPerSecond: sent / ((t1 - t0) / 1000),
      ...(clientCpuMs === undefined ? {} : { clientCpuPerEventUs: (clientCpuMs * 1000) / sent }),
    },
    info: { count: sent, loops, warmup, delivered, ms: t1 - t0 },
    checks,
  };
}

async function runParser(p) {
  const { runParserBench } = await import('./parser.js');
  const rows = await runParserBench({ quick: p.quick === true });
  return { rows, checks: createChecks() };
}

const modes = {
  connections: runConnections,
  unicast: runUnicast,
  broadcast: runBroadcast,
  client: runClient,
  publish: runPublish,
  parser: runParser,
};

async function main() {
  const params = JSON.parse(process.argv[2] ?? '{}');
  const run = modes[params.mode];
  if (run === undefined) throw new Error(`unknown mode ${params.mode}`);
  // Never outlive the run: a hung server must not keep the generator (and its sockets) around.
  setTimeout(() => {
    process.stderr.write(`loadgen: ${params.mode} did not finish in ${params.deadlineMs} ms\n`);
    process.exit(3);
  }, params.deadlineMs ?? 300000).unref();
  const result = await run(params);
  result.checkTotal = checkTotal(result.checks);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`loadgen: ${error.stack ?? error}\n`);
    process.exit(1);
  },
);
