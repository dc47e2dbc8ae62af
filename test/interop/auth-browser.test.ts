/**
 * A browser's EventSource with signed grants: Chromium (Debian's, driven by playwright-core) on a
 * page of another origin, allowed by CORS, opens one stream authorised by `?access_token=`, one by
 * the listener's cookie with `withCredentials`, and one with no grant, which never opens.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { test } from 'node:test';
import { createListener } from '../../src/listener/listener.js';
import { signAccessToken } from '../../src/listener/auth.js';
import { launchChromium } from '../helpers/interop-browser.js';
import { waitUntil } from '../helpers/interop-peers.js';
import { listen } from '../helpers/net.js';
import { sleep } from '../helpers/listener-helpers.js';

const SECRET = 'a-browser-test-secret-of-32-bytes!';

interface PageStream {
  readyState: number;
  received: string[];
  errors: number;
}

test(
  'Chromium: EventSources authorised by ?access_token= and by the cookie with withCredentials get their events; one without a grant never opens',
  { timeout: 60000 },
  async (t) => {
    const context = await launchChromium(t);
    if (context === undefined) return;
    // The page's origin: another port on the same host, so the listener's cookie is same-site.
    const page = await context.newPage();
    const pageServer = await listen((_req: http.IncomingMessage, res: http.ServerResponse) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><title>app</title>');
    });
    t.after(() => pageServer.close());
    const pageOrigin = pageServer.url;
    const listener = createListener({ keepalive: 0, cors: pageOrigin, jwt: { secret: SECRET } });
    t.after(() => listener.close());
    const base = (await listener.listen(0, '127.0.0.1')).replace(/\/$/, '');

    const byQuery = await signAccessToken({ subscribe: ['by-query'] }, SECRET);
    const byCookie = await signAccessToken({ subscribe: ['by-cookie'] }, SECRET);
    await context.addCookies([
      { name: 'eventsource_access_token', value: byCookie, url: `${base}/` },
    ]);
    await page.goto(`${pageOrigin}/`);
    await page.evaluate(
      ({ base, byQuery }) => {
        const streams: Record<string, { readyState: number; received: string[]; errors: number }> =
          {};
        const open = (name: string, url: string, withCredentials: boolean): void => {
          const record = { readyState: 0, received: [] as string[], errors: 0 };
          streams[name] = record;
          const source = new EventSource(url, { withCredentials });
          source.onopen = () => (record.readyState = source.readyState);
          source.onerror = () => {
            record.errors++;
            record.readyState = source.readyState;
          };
          source.addEventListener('ping', (event) =>
            record.received.push((event as MessageEvent).data as string),
          );
        };
        open('query', `${base}/poll/by-query?access_token=${byQuery}`, false);
        open('cookie', `${base}/poll/by-cookie`, true);
        open('none', `${base}/poll/by-nobody`, false);
        (globalThis as unknown as { streams: typeof streams }).streams = streams;
      },
      { base, byQuery },
    );
    const streams = (): Promise<Record<string, PageStream>> =>
      page.evaluate(
        () => (globalThis as unknown as { streams: Record<string, PageStream> }).streams,
      );
    await waitUntil(() => listener.stats().streams === 2, 'two streams to open', 10000);
    const publisher = await signAccessToken({ publish: ['*'] }, SECRET);
    for (const token of ['by-query', 'by-cookie']) {
      const reply = await fetch(`${base}/ping/${token}`, {
        method: 'POST',
        body: `for ${token}`,
        headers: { authorization: `Bearer ${publisher}` },
      });
      assert.equal(reply.status, 200, await reply.text());
    }
    await waitUntil(
      async () => {
        const seen = await streams();
        return seen.query?.received.length === 1 && seen.cookie?.received.length === 1;
      },
      'each stream to receive its event',
      10000,
    );
    await sleep(300);
    const seen = await streams();
    assert.deepEqual(seen.query?.received, ['for by-query']);
    assert.deepEqual(seen.cookie?.received, ['for by-cookie']);
    assert.equal(seen.none?.readyState, 2, 'the stream without a grant is CLOSED (a 401 is fatal)');
    assert.deepEqual(seen.none?.received, []);
    assert.equal(listener.stats().streams, 2);
  },
);
