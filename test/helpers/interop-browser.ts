/**
 * Headless Chromium for the interop tests: Debian's `chromium` driven by playwright-core (its own
 * browser download does not work on these machines), plus a probe that drives EventSource objects
 * in a page. No side effects on import.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { findExecutable, requirePeer } from './interop-peers.js';
import type { LogEntry, SubscriberProbe } from './interop-scenario.js';

/**
 * The flags these machines need: no sandbox as root, no GPU, no QUIC, and none of the background
 * traffic (component updates, sync, field trials) that a closed network refuses at every start.
 */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** `CHROMIUM_PATH`, else `chromium` on PATH, else undefined. */
export function findChromium(): string | undefined {
  return process.env.CHROMIUM_PATH || findExecutable('chromium', ['/usr/bin']);
}

/** What a test may change in {@link launchChromium}'s context. */
export interface ChromiumOptions {
  /**
   * Accepts any server certificate (the listener's throwaway one in test/fixtures is signed by a
   * CA the browser does not know). Defaults to false.
   */
  ignoreHTTPSErrors?: boolean;
}

/**
 * Launches Chromium with a fresh profile directory; closes it and removes the directory in
 * `t.after`. Resolves undefined when Chromium is missing outside CI (the test is then skipped).
 */
export async function launchChromium(
  t: TestContext,
  options: ChromiumOptions = {},
): Promise<BrowserContext | undefined> {
  const executablePath = findChromium();
  if (!requirePeer(t, 'chromium', executablePath, 'apt-get install chromium, or set CHROMIUM_PATH'))
    return undefined;
  const userDataDir = mkdtempSync(join(tmpdir(), 'eventsource-chromium-'));
  // Playwright refuses --user-data-dir in `args`: a persistent context is how a profile is given.
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 30000,
    ignoreHTTPSErrors: options.ignoreHTTPSErrors === true,
  });
  t.after(async () => {
    await context.close();
    rmSync(userDataDir, { recursive: true, force: true });
  });
  return context;
}

/** The probe page's HTML (test/interop/fixtures/probe.html). */
export function probePageHtml(): string {
  return readFileSync(
    new URL('../../../test/interop/fixtures/probe.html', import.meta.url),
    'utf8',
  );
}

/** A {@link SubscriberProbe} over the probe page's `window.probe`. */
export function pageProbe(page: Page, withCredentials = false): SubscriberProbe {
  return {
    async subscribe(name, url, types) {
      await page.evaluate(
        `window.probe.subscribe(${JSON.stringify(name)}, ${JSON.stringify(url)}, ${JSON.stringify(types)}, ${withCredentials})`,
      );
    },
    async log(name) {
      return page.evaluate<LogEntry[]>(`window.probe.log(${JSON.stringify(name)})`);
    },
  };
}
