/**
 * The network side of `diagnose()`: an agent that remembers how each connection was made (TLS,
 * the protocol ALPN chose, the certificate's standing), and one observed GET of an event stream,
 * every read of which is timed and parsed. Nothing here judges; `diagnose-checks.ts` does.
 */
import type { Transform } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import zlib from 'node:zlib';
import { Agent, buildConnector, interceptors, request, type Dispatcher } from 'undici';
import { debugClient as debug } from '../debug.js';
import { HttpStatusError } from '../errors.js';
import { serverMessage } from '../message.js';
import { createParser } from '../wire/parser.js';
import { discardBody, readFailure } from './response.js';

/** How the connection that carried a response was made. */
export interface ConnectionInfo {
  isTls: boolean;
  /** The protocol ALPN chose (`h2`, `http/1.1`), or undefined without TLS or without ALPN. */
  alpnProtocol: string | undefined;
  /** Why the certificate is not valid, when validation was off and it is not; else undefined. */
  certificateProblem: string | undefined;
}

/** The agent of one diagnosis: HTTP/2 offered by ALPN, and the last connection remembered. */
export interface DiagnoseAgent {
  /** For the stream's GETs: redirects followed, as EventSource does. */
  streamDispatcher: Dispatcher;
  /** For the probe POSTs: no redirects (a publisher is not redirected). */
  agent: Agent;
  /** The connection made last, if any. */
  readonly lastConnection: ConnectionInfo | undefined;
}

/** The TLS and timeout options of a {@link DiagnoseAgent}. */
export interface DiagnoseAgentOptions {
  rejectUnauthorized: boolean;
  ca: string | Buffer | (string | Buffer)[] | undefined;
  connectTimeoutMs: number;
  maxRedirections: number;
}

/**
 * Creates the agent of one diagnosis. Its connector is undici's own, wrapped to note each new
 * socket's TLS state and ALPN protocol: undici does not report which protocol a response came over.
 * @param options TLS, timeout and redirect options.
 * @returns The agent; `agent.destroy()` when done.
 */
export function createDiagnoseAgent(options: DiagnoseAgentOptions): DiagnoseAgent {
  const connectTls = buildConnector({
    // Offer h2 as a browser does, to learn whether the server would take it.
    allowH2: true,
    rejectUnauthorized: options.rejectUnauthorized,
    ...(options.ca !== undefined ? { ca: options.ca } : {}),
    ...(options.connectTimeoutMs > 0 ? { timeout: options.connectTimeoutMs } : {}),
  });
  let lastConnection: ConnectionInfo | undefined;
  const connect: buildConnector.connector = (connectOptions, callback) => {
    connectTls(connectOptions, (...args) => {
      const socket = args[1];
      if (socket !== null) {
        const isTls = connectOptions.protocol === 'https:';
        const tls = socket as TLSSocket;
        const authorizationError = isTls ? tls.authorizationError : undefined;
        lastConnection = {
          isTls,
          alpnProtocol:
            isTls && typeof tls.alpnProtocol === 'string' ? tls.alpnProtocol : undefined,
          certificateProblem:
            authorizationError === undefined || authorizationError === null
              ? undefined
              : String((authorizationError as Error).message ?? authorizationError),
        };
      }
      callback(...args);
    });
  };
  // undici's Client picks HTTP/2 whenever the socket's ALPN protocol is h2.
  const agent = new Agent({ connect, allowH2: true, bodyTimeout: 0, headersTimeout: 0 });
  const streamDispatcher =
    options.maxRedirections > 0
      ? agent.compose(interceptors.redirect({ maxRedirections: options.maxRedirections }))
      : agent;
  return {
    streamDispatcher,
    agent,
    get lastConnection() {
      return lastConnection;
    },
  };
}

/** One event received, with the time and the read it arrived in. */
export interface ObservedEvent {
  id: string;
  event: string;
  data: string;
  /** `Date.now()` when its last byte arrived. */
  at: number;
  /** The index of the network read that completed it. */
  read: number;
}

/** What one stream delivered, filled in as it arrives. */
export interface StreamObservation {
  /** When the response head arrived. */
  headAt: number;
  events: ObservedEvent[];
  /** The time of every read: any byte resets a proxy's idle timer, so any read ends a silence. */
  reads: number[];
  /** The last `retry:` value, if any. */
  retryMs: number | undefined;
  /** The last event ID string at the end (`''` while there is none). */
  lastEventId: string;
  /** When the server ended the stream or it failed, if it did (not when we closed it). */
  endedAt: number | undefined;
  /** What ended it, when it was an error (a reset, a bad compressed body). */
  endError: Error | undefined;
}

/** The answer to one GET. */
export type StreamAnswer =
  | { kind: 'error'; error: Error }
  | {
      kind: 'response';
      status: number;
      headers: Dispatcher.ResponseData['headers'];
      redirectCount: number;
      /** The server's message, for a status other than 200. */
      message: string;
      /** Set for a 200 `text/event-stream`: the stream, being read. */
      stream: OpenStream | undefined;
    };

/** A stream being read; `close()` it when done. */
export interface OpenStream {
  observation: StreamObservation;
  close(): void;
}

/** What {@link openStream} needs. */
export interface OpenStreamOptions {
  dispatcher: Dispatcher;
  headers: Record<string, string>;
  /** Sent as `Last-Event-ID`, and where the parser's last event ID starts. */
  lastEventId: string;
  signal: AbortSignal | undefined;
}

/**
 * Sends the GET and, for a 200 `text/event-stream`, starts reading the stream, decompressed when
 * the server compressed it, timing every read.
 * @param url The stream's URL.
 * @param options Dispatcher, headers, Last-Event-ID.
 * @returns The error, or the response (with the open stream).
 */
export async function openStream(url: string, options: OpenStreamOptions): Promise<StreamAnswer> {
  const headers = { ...options.headers };
  if (options.lastEventId !== '') headers['last-event-id'] = options.lastEventId;
  let response: Dispatcher.ResponseData;
  try {
    response = await request(url, {
      method: 'GET',
      headers,
      dispatcher: options.dispatcher,
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
      bodyTimeout: 0,
      headersTimeout: 0,
    });
  } catch (error) {
    return { kind: 'error', error: error instanceof Error ? error : new Error(String(error)) };
  }
  const headAt = Date.now();
  const history = (response.context as { history?: unknown[] } | undefined)?.history;
  // Every URL that answered, the last one included.
  const redirectCount = Array.isArray(history) ? Math.max(0, history.length - 1) : 0;
  const { statusCode: status } = response;
  const type = String(response.headers['content-type'] ?? '');
  const isEventStream = type.split(';', 1)[0]?.trim().toLowerCase() === 'text/event-stream';
  if (status !== 200) {
    const failure = await readFailure(response, url);
    const body =
      'error' in failure && failure.error instanceof HttpStatusError ? failure.error.body : '';
    return {
      kind: 'response',
      status,
      headers: response.headers,
      redirectCount,
      message: serverMessage(status, body, type, /[/+]json\b/i.test(type)).slice(0, 200),
      stream: undefined,
    };
  }
  if (!isEventStream) discardBody(response.body);
  return {
    kind: 'response',
    status,
    headers: response.headers,
    redirectCount,
    message: '',
    stream: isEventStream ? readStream(response, headAt, options) : undefined,
  };
}

// Reads an event stream into an observation, until it ends or is closed.
function readStream(
  response: Dispatcher.ResponseData,
  headAt: number,
  options: OpenStreamOptions,
): OpenStream {
  const observation: StreamObservation = {
    headAt,
    events: [],
    reads: [],
    retryMs: undefined,
    lastEventId: options.lastEventId,
    endedAt: undefined,
    endError: undefined,
  };
  let readIndex = -1;
  let readAt = headAt;
  let isClosed = false;
  const parser = createParser(
    {
      onEvent: ({ id, event, data }) => {
        observation.events.push({ id, event, data, at: readAt, read: readIndex });
      },
      onRetry: (ms) => {
        observation.retryMs = ms;
      },
    },
    { lastEventId: options.lastEventId },
  );
  const feed = (chunk: Buffer): void => {
    readAt = Date.now();
    observation.reads.push(readAt);
    parser.feed(chunk);
    observation.lastEventId = parser.lastEventId;
  };
  const end = (error: Error | undefined): void => {
    if (isClosed || observation.endedAt !== undefined) return;
    observation.endedAt = Date.now();
    observation.endError = error;
  };

  const { body } = response;
  const decoder = createDecoder(response.headers['content-encoding']);
  if (decoder === undefined) {
    body.on('data', (chunk: Buffer) => {
      readIndex++;
      feed(chunk);
    });
  } else {
    // The decoder's output comes a moment after the read that carried it, and is timed then: the
    // closest a compressed stream allows. Its read index is the last read seen when it came out.
    body.on('data', (chunk: Buffer) => {
      readIndex++;
      decoder.write(chunk);
    });
    decoder.on('data', feed);
    decoder.on('error', (error: Error) => {
      debug('diagnose: cannot decompress the stream: %s', error.message);
      end(error);
      discardBody(body);
    });
  }
  body.once('end', () => end(undefined));
  body.once('close', () => end(undefined));
  body.once('error', (error: Error) => end(error));
  return {
    observation,
    close: () => {
      isClosed = true;
      decoder?.destroy();
      if (!body.destroyed) discardBody(body);
    },
  };
}

// A streaming decompressor for the Content-Encoding, which flushes what it has at every read (so
// events are not held back by us), or undefined for an identity or unknown encoding.
function createDecoder(encoding: string | string[] | undefined): Transform | undefined {
  const name = String(encoding ?? '')
    .trim()
    .toLowerCase();
  const flush = { flush: zlib.constants.Z_SYNC_FLUSH, finishFlush: zlib.constants.Z_SYNC_FLUSH };
  if (name === 'gzip' || name === 'x-gzip') return zlib.createGunzip(flush);
  if (name === 'deflate') return zlib.createInflate(flush);
  if (name === 'br') {
    return zlib.createBrotliDecompress({
      flush: zlib.constants.BROTLI_OPERATION_FLUSH,
      finishFlush: zlib.constants.BROTLI_OPERATION_FLUSH,
    });
  }
  return undefined;
}
