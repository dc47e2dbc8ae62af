/**
 * The `--demo` page: served by the listener at `/` (under its prefix), used in headless Chromium as
 * a person would (type a token, connect, watch, send with the form). Its screenshot is the README's
 * docs/demo.png.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { escapeHtml, renderDemoPage } from '../../src/listener/demo.js';
import { launchChromium } from '../helpers/interop-browser.js';
import { post } from '../helpers/interop-peers.js';
import { httpRequest } from '../helpers/net.js';
import { startListenerProcess } from '../helpers/process.js';

const SCREENSHOT = fileURLToPath(new URL('../../../docs/demo.png', import.meta.url));

test('the demo page escapes what it is given and loads nothing from elsewhere', () => {
  const html = renderDemoPage('/p', 'poll', ['ping', '</script><b>"x"&y']);
  assert.ok(html.startsWith('<!doctype html>'));
  assert.ok(!html.includes('<b>'), 'no markup from an action name');
  assert.ok(html.includes(`<option value="${escapeHtml('</script><b>"x"&y')}">`));
  assert.equal(html.match(/<\/script>/g)?.length, 2, 'only the two script elements end');
  assert.ok(
    html.includes('"actions":["ping","\\u003c/script\\u003e\\u003cb\\u003e\\"x\\"\\u0026y"]'),
  );
  assert.doesNotMatch(html, /\b(src|href)=|@import|url\(/, 'no external resources');
  assert.equal(
    escapeHtml(`<a href="x">'&'</a>`),
    '&#60;a href=&#34;x&#34;&#62;&#39;&#38;&#39;&#60;/a&#62;',
  );
});

test('--demo serves the page at the prefix root as HTML', { timeout: 30000 }, async (t) => {
  const listener = await startListenerProcess(['-i', '--demo', '--prefix', 'hub']);
  t.after(() => listener.stop());
  const page = await httpRequest(`${listener.url}/`);
  assert.equal(page.status, 200);
  assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
  assert.ok(
    page.body.includes('"prefix":"/hub","listen":"poll","actions":["ping","close","retry"]'),
  );
});

test(
  'in Chromium, the demo page connects, shows events live and sends one with the form',
  { timeout: 60000 },
  async (t) => {
    const context = await launchChromium(t);
    if (context === undefined) return;
    const listener = await startListenerProcess(['-i', '--demo', '--prefix', 'hub']);
    t.after(() => listener.stop());
    const page = await context.newPage();
    await page.setViewportSize({ width: 900, height: 760 });
    await page.goto(`${listener.url}/`);
    const token = 'my-token';
    await page.fill('#token', token);
    await page.click('#connect');
    await page.waitForSelector('#status[data-state="open"]', { timeout: 10000 });
    assert.equal(await page.textContent('#status'), `Connected: listening to ${token}`);

    // From outside the page (a terminal, another service): multi-line text, then JSON text.
    const fromTerminal = await post(listener.url, 'ping', token, 'from a terminal\nsecond line');
    assert.equal(fromTerminal.status, 200);
    const json = await post(listener.url, 'ping', token, '{"temperature":21.5,"unit":"°C"}');
    assert.equal(json.status, 200);
    await page.waitForSelector('#events tr:nth-child(2) td.data', { timeout: 10000 });

    // From the page itself: a click on Send, with markup in the data that must stay text.
    const text = 'Hello from the demo page <b>not bold</b>';
    await page.selectOption('#action', 'ping');
    await page.fill('#data', text);
    await page.click('#send');
    await page.waitForFunction(
      `document.querySelector('#events tr td.data')?.textContent === ${JSON.stringify(text)}`,
      undefined,
      { timeout: 10000 },
    );
    await page.waitForFunction(
      `document.querySelector('#reply').textContent === '200 sent'`,
      undefined,
      {
        timeout: 10000,
      },
    );
    const rows = await page.$$eval('#events tr:not(#empty)', (trs) =>
      trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)),
    );
    const sentId = rows[0]?.[1] ?? '';
    assert.match(sentId, /^\d+$/);
    assert.deepEqual(rows, [
      ['ping', sentId, text],
      ['ping', json.id, '{"temperature":21.5,"unit":"°C"}'],
      ['ping', fromTerminal.id, 'from a terminal\nsecond line'],
    ]);
    assert.equal(await page.$$eval('#events b', (bold) => bold.length), 0, 'data is never markup');
    assert.equal(await page.textContent('#count'), '3');

    const png = await page.screenshot({ fullPage: true });
    assert.deepEqual([...png.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
    // The README's picture: written when missing or when asked for, so test runs leave git clean.
    if (!existsSync(SCREENSHOT) || process.env.UPDATE_SCREENSHOTS === '1') {
      mkdirSync(dirname(SCREENSHOT), { recursive: true });
      writeFileSync(SCREENSHOT, png);
      t.diagnostic(`screenshot written to ${SCREENSHOT}`);
    }
  },
);
