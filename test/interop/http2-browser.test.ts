/**
 * Why the TLS listener speaks HTTP/2: a browser holds HTTP/1.1 to six connections per origin, so a
 * page's seventh EventSource waits for one of the first six to close. Over HTTP/2 every stream
 * shares one connection. Headless Chromium (Debian's, driven by playwright-core) opens twelve
 * EventSources from a page on the listener's own origin, `https://127.0.0.1:<port>/`, with the
 * throwaway certificate's error ignored; once over HTTP/2, once with `http2: false`.
 */
import assert from 'node:assert/strict';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import { test, type TestContext } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import { createListener } from '../../src/listener/listener.js';
import { launchChromium } from '../helpers/interop-browser.js';
import { waitUntil } from '../helpers/interop-peers.js';
import { sleep } from '../helpers/listener-helpers.js';
import { fixture } from '../helpers/recorder.js';

const STREAM_COUNT = 12;
/** Chromium's limit of HTTP/1.1 connections per host (its socket pool's group limit). */
const HTTP1_CONNECTION_LIMIT = 6;
const TOKENS = Array.from({ length: STREAM_COUNT }, (_, i) => `t${i}`);

/** What the page holds for each of its EventSources. */
interface PageStream {
  token: string;
  readyState: number;
  received: string[];
}

/**
 * Starts a TLS listener on 127.0.0.1 (closed in `t.after`) and records the ALPN protocol of every
 * connection it accepts.
 */
async function startTlsListener(t: TestContext, http2: boolean) {
  const listener = createListener({
    tls: { key: fixture('key.pem'), cert: fixture('cert.pem') },
    http2,
    keepalive: 0,
  });
  t.after(() => listener.close());
  const url = await listener.listen(0, '127.0.0.1');
  const protocols: (string | false | null)[] = [];
  listener.server?.on('secureConnection', (socket: TLSSocket) =>
    protocols.push(socket.alpnProtocol),
  );
  return { listener, url, protocols };
}

/** POSTs from node (HTTP/1.1, trusting the fixture CA), as a service beside the page would. */
function postOverTls(
  url: string,
  body: string,
  agent: https.Agent,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = https.request(url, { method: 'POST', agent }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (piece: string) => (text += piece));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: text }));
    });
    request.on('error', reject);
    request.end(body);
  });
}

/** Opens one EventSource per token in the page; each keeps the data of its `ping` events. */
async function openEventSources(page: Page, baseUrl: string): Promise<void> {
  await page.evaluate(
    `window.streams = ${JSON.stringify(TOKENS)}.map((token) => {
      const source = new EventSource(${JSON.stringify(baseUrl)} + 'poll/' + token);
      const stream = { token, source, received: [] };
      source.addEventListener('ping', (event) => stream.received.push(event.data));
      return stream;
    })`,
  );
}

function readStreams(page: Page): Promise<PageStream[]> {
  return page.evaluate<PageStream[]>(
    `window.streams.map(({ token, source, received }) =>
      ({ token, readyState: source.readyState, received: [...received] }))`,
  );
}

/** The protocol the page itself was loaded over, as the browser reports it. */
function pageProtocol(page: Page): Promise<string> {
  return page.evaluate<string>(`performance.getEntriesByType('navigation')[0].nextHopProtocol`);
}

/** Resolves once the page holds `count` events in all, however they are spread. */
async function waitForDeliveries(page: Page, count: number): Promise<void> {
  await page.waitForFunction(
    `window.streams.reduce((sum, stream) => sum + stream.received.length, 0) >= ${count}`,
    undefined,
    { timeout: 10000 },
  );
}

/** Opens a page on the listener's root (plain text): what matters is that it is the same origin. */
async function openPage(context: BrowserContext, url: string): Promise<Page> {
  const page = await context.newPage();
  const response = await page.goto(url);
  assert.equal(response?.status(), 200);
  return page;
}

test(
  'over HTTP/2, Chromium opens 12 EventSources to one origin and each gets the event posted to it',
  { timeout: 60000 },
  async (t) => {
    const context = await launchChromium(t, { ignoreHTTPSErrors: true });
    if (context === undefined) return;
    const { listener, url, protocols } = await startTlsListener(t, true);
    const page = await openPage(context, url);
    assert.equal(await pageProtocol(page), 'h2');

    const startedAt = Date.now();
    await openEventSources(page, url);
    await waitUntil(
      () => listener.stats().streams === STREAM_COUNT,
      `${STREAM_COUNT} open streams`,
      5000,
      () => `${listener.stats().streams} open`,
    );
    t.diagnostic(`${STREAM_COUNT} streams open after ${Date.now() - startedAt} ms over h2`);
    await page.waitForFunction(
      `window.streams.every((stream) => stream.source.readyState === 1)`,
      undefined,
      { timeout: 5000 },
    );

    // The browser's connections only: node's POSTs below make their own.
    const browserProtocols = [...protocols];
    const agent = new https.Agent({ ca: fixture('ca.pem'), keepAlive: true });
    t.after(() => agent.destroy());
    for (const token of TOKENS) {
      const reply = await postOverTls(`${url}ping/${token}`, `for ${token}`, agent);
      assert.equal(reply.status, 200, `${token}: ${reply.body}`);
    }
    await waitForDeliveries(page, STREAM_COUNT);
    assert.deepEqual(
      await readStreams(page),
      TOKENS.map((token) => ({ token, readyState: 1, received: [`for ${token}`] })),
    );

    // Every connection the browser made was HTTP/2 (one, unless it preconnected a spare).
    assert.ok(browserProtocols.length >= 1);
    assert.deepEqual([...new Set(browserProtocols)], ['h2']);
    t.diagnostic(
      `connections from Chromium: ${browserProtocols.length}, ALPN ${browserProtocols.join(', ')}`,
    );
  },
);

test(
  'with http2: false (--no-http2), Chromium opens only 6 of the 12; the other 6 wait in CONNECTING',
  { timeout: 60000 },
  async (t) => {
    const context = await launchChromium(t, { ignoreHTTPSErrors: true });
    if (context === undefined) return;
    const { listener, url, protocols } = await startTlsListener(t, false);
    const page = await openPage(context, url);
    assert.equal(await pageProtocol(page), 'http/1.1');

    await openEventSources(page, url);
    await waitUntil(
      () => listener.stats().streams === HTTP1_CONNECTION_LIMIT,
      `${HTTP1_CONNECTION_LIMIT} open streams`,
      5000,
      () => `${listener.stats().streams} open`,
    );
    // Nothing to wait for that would show a seventh stream not opening: give it time to.
    await sleep(2000);
    assert.equal(listener.stats().streams, HTTP1_CONNECTION_LIMIT);
    const states = await readStreams(page);
    const open = states.filter((stream) => stream.readyState === 1).map((stream) => stream.token);
    const waiting = states
      .filter((stream) => stream.readyState === 0)
      .map((stream) => stream.token);
    t.diagnostic(`open: ${open.join(' ')}; CONNECTING: ${waiting.join(' ')}`);
    assert.equal(open.length, HTTP1_CONNECTION_LIMIT);
    assert.equal(waiting.length, STREAM_COUNT - HTTP1_CONNECTION_LIMIT);
    const browserProtocols = [...protocols];

    const agent = new https.Agent({ ca: fixture('ca.pem'), keepAlive: true });
    t.after(() => agent.destroy());
    for (const token of TOKENS) {
      const reply = await postOverTls(`${url}ping/${token}`, `for ${token}`, agent);
      // The waiting EventSources never reached the listener: their tokens are unknown to it.
      if (open.includes(token)) assert.equal(reply.status, 200, `${token}: ${reply.body}`);
      else assert.deepEqual(reply, { status: 404, body: 'Target is not connected' }, token);
    }
    await waitForDeliveries(page, HTTP1_CONNECTION_LIMIT);
    assert.deepEqual(
      await readStreams(page),
      states.map(({ token, readyState }) => ({
        token,
        readyState,
        received: readyState === 1 ? [`for ${token}`] : [],
      })),
    );

    // One connection per open stream (the page's own is reused for one of them), all HTTP/1.1.
    assert.equal(browserProtocols.length, HTTP1_CONNECTION_LIMIT);
    assert.deepEqual([...new Set(browserProtocols)], ['http/1.1']);
    t.diagnostic(
      `connections from Chromium: ${browserProtocols.length}, ALPN ${browserProtocols.join(', ')}`,
    );
  },
);
