/**
 * The listener against a real browser: headless Chromium's native EventSource (Debian's chromium,
 * driven by playwright-core) on a page served from another origin, through `--cors`.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { launchChromium, pageProbe, probePageHtml } from '../helpers/interop-browser.js';
import { checkJsonStream, checkStringStream, waitForEntries } from '../helpers/interop-scenario.js';
import { listen } from '../helpers/net.js';
import { startListenerProcess } from '../helpers/process.js';

async function startPageServer(t: import('node:test').TestContext) {
  const server = await listen((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(probePageHtml());
  });
  t.after(() => server.close());
  return server;
}

test(
  'headless Chromium subscribes from another origin through --cors',
  { timeout: 90000 },
  async (t) => {
    const context = await launchChromium(t);
    if (context === undefined) return;
    const pages = await startPageServer(t);
    const origin = pages.url;
    const strings = await startListenerProcess(['-i', '-d', '--cors', origin]);
    t.after(() => strings.stop());
    const json = await startListenerProcess(['-j', '-i', '--cors', origin]);
    t.after(() => json.stop());
    const page = await context.newPage();
    await page.goto(`${origin}/`);

    await t.test(
      'gets string and multi-line events with ids, the replay after close through Last-Event-ID, and honours retry',
      async (st) => {
        const gaps = await checkStringStream(
          { url: strings.url, stderr: () => strings.child.output.stderr },
          pageProbe(page),
          'browser-strings',
        );
        st.diagnostic(
          `reconnected after ${gaps.shortGapMs} ms (retry 200), ${gaps.longGapMs} ms (retry 1200)`,
        );
      },
    );

    await t.test(
      'gets JSON events POSTed by the page itself (a preflighted cross-origin fetch), with credentials',
      async () => {
        const token = 'browser-json';
        await checkJsonStream(
          { url: json.url, stderr: () => '' },
          pageProbe(page, true),
          token,
          (body) =>
            page.evaluate<{ status: number; body: string }>(
              `window.probe.publish(${JSON.stringify(`${json.url}/ping/${token}`)}, ${JSON.stringify(body)}, 'application/json')`,
            ),
        );
      },
    );

    await t.test(
      'a page on an origin not given to --cors is refused and stops for good',
      async () => {
        const other = await startPageServer(t);
        const otherPage = await context.newPage();
        await otherPage.goto(`${other.url}/`);
        const probe = pageProbe(otherPage);
        await probe.subscribe('refused', `${strings.url}/poll/browser-refused`, [
          'ping',
          'message',
        ]);
        const [error] = await waitForEntries(probe, 'refused', 'error', 1);
        // A CORS failure fails the connection: CLOSED (2), no reconnection, never an open event.
        assert.equal(error?.readyState, 2);
        assert.deepEqual(
          (await probe.log('refused')).map((entry) => entry.kind),
          ['error'],
        );
        await otherPage.close();
      },
    );
  },
);
