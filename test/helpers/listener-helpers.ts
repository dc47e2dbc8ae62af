/**
 * Helpers for the listener tests: a library listener on 127.0.0.1:0, POSTs, raw sockets, the
 * memory of a process. No side effects on import.
 */
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import {
  createListener,
  type Listener,
  type ListenerOptions,
} from '../../src/listener/listener.js';
import { listen } from './net.js';

export interface RunningListener {
  listener: Listener;
  url: string;
  port: number;
  server: http.Server;
  close(): Promise<void>;
}

/** `createListener(options)` mounted on `http.createServer(handler)` on 127.0.0.1:0. */
export async function startListener(options: ListenerOptions = {}): Promise<RunningListener> {
  const listener = createListener(options);
  const running = await listen(listener.handler);
  return {
    listener,
    url: running.url,
    port: running.port,
    server: running.server,
    close: async () => {
      await listener.close();
      await running.close();
    },
  };
}

export interface PostResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** POSTs `body` to `url` (optionally over `agent`) and returns status, headers and body text. */
export async function post(
  url: string,
  body: string | Buffer = '',
  options: { agent?: http.Agent; headers?: http.OutgoingHttpHeaders } = {},
): Promise<PostResult> {
  const request = http.request(url, {
    method: 'POST',
    headers: { 'content-type': 'text/plain', ...options.headers },
    ...(options.agent ? { agent: options.agent } : {}),
  });
  request.end(body);
  const [response] = (await once(request, 'response')) as [http.IncomingMessage];
  response.setEncoding('utf8');
  let text = '';
  for await (const chunk of response) text += chunk as string;
  return { status: response.statusCode ?? 0, headers: response.headers, body: text };
}

/** The `id` of a 2xx reply body. */
export function replyId(result: PostResult): string {
  const parsed = JSON.parse(result.body) as { id: string | null };
  if (typeof parsed.id !== 'string') throw new Error(`no id in ${result.body}`);
  return parsed.id;
}

export interface RawConnection {
  socket: net.Socket;
  /** Everything received so far, as latin1 text (bytes preserved). */
  readonly text: string;
  /** Resolves once the received text matches `pattern` (rejects after `timeoutMs`). */
  waitFor(pattern: RegExp | string, timeoutMs?: number): Promise<string>;
  /** Resolves when the socket is closed. */
  closed: Promise<void>;
}

/**
 * Opens a TCP connection and writes `request` as is. With `isReading: false` the socket is paused
 * at once and never read (a slow reader).
 */
export async function rawRequest(
  port: number,
  request: string,
  options: { isReading?: boolean } = {},
): Promise<RawConnection> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  let text = '';
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('error', () => {
    // A reset from the listener (a slow reader cut off) is what some tests wait for.
  });
  if (options.isReading === false) socket.pause();
  else socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
  socket.write(request);
  return {
    socket,
    get text() {
      return text;
    },
    async waitFor(pattern, timeoutMs = 10000) {
      const deadline = Date.now() + timeoutMs;
      const matches = () =>
        typeof pattern === 'string' ? text.includes(pattern) : pattern.test(text);
      while (!matches()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern}; got ${text}`);
        await sleep(5);
      }
      return text;
    },
    closed,
  };
}

/** Waits until `check()` is true (polling every 5 ms), failing after `timeoutMs`. */
export async function waitUntil(
  check: () => boolean,
  what: string,
  timeoutMs = 10000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resident memory of a process in bytes, from /proc/<pid>/status (Linux). */
export function residentBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (match === null) throw new Error(`no VmRSS for ${pid}`);
  return Number(match[1]) * 1024;
}

/** Runs `task(i)` for i in 0..count-1 with at most `concurrency` running at once. */
export async function runPool(
  count: number,
  concurrency: number,
  task: (i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}
