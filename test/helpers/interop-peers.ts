/**
 * Helpers for the interoperability tests: finding the real peers (Chromium, curl, nginx), polling
 * for a condition with a deadline, and publishing to a listener over plain node:http.
 * No side effects on import.
 */
import assert from 'node:assert/strict';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import type { TestContext } from 'node:test';
import type { CliIo } from '../../src/cli/options.js';
import { httpRequest } from './net.js';

/** Whether the tests run under CI (`.ci/run` exports `CI=true`): there, a missing peer fails. */
export const isCI = process.env.CI === 'true';

/** The first executable named `name` on PATH (or in `extraDirs`), or undefined. */
export function findExecutable(name: string, extraDirs: string[] = []): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), ...extraDirs].filter(Boolean);
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not in this directory: try the next one.
    }
  }
  return undefined;
}

/**
 * Checks that a real peer was found. Under CI a missing peer fails the test (`.ci/run` installs
 * them all); elsewhere the test is skipped with the reason printed, so a partial machine still runs
 * the rest of the suite.
 * @returns true when the peer is there and the test should go on.
 */
export function requirePeer(
  t: TestContext,
  name: string,
  path: string | undefined,
  hint: string,
): path is string {
  if (path !== undefined) return true;
  const reason = `${name} not found (${hint})`;
  if (isCI) assert.fail(`${reason}: .ci/run must install it, CI never skips a real peer`);
  t.diagnostic(`skipped: ${reason}`);
  t.skip(reason);
  return false;
}

/**
 * Polls `check` every 10 ms until it returns a value other than undefined/false.
 * @throws Error naming `what` (and the last state `describe` gives) after `timeoutMs`.
 */
export async function waitUntil<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  what: string,
  timeoutMs = 10000,
  describe?: () => string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${describe ? `; ${describe()}` : ''}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** What the listener answers to a POST: status and, for 2xx, its JSON reply. */
export interface PostReply {
  status: number;
  body: string;
  id: string | null;
}

/** POSTs `body` to `<baseUrl>/<action>/<token>` and returns the status and the event's id. */
export async function post(
  baseUrl: string,
  action: string,
  token: string,
  body: string,
  contentType = 'text/plain',
): Promise<PostReply> {
  const reply = await httpRequest(`${baseUrl}/${action}/${encodeURIComponent(token)}`, {
    method: 'POST',
    body,
    headers: { 'content-type': contentType },
  });
  let id: string | null = null;
  if (reply.status < 300 && reply.body.startsWith('{')) {
    id = (JSON.parse(reply.body) as { id: string | null }).id;
  }
  return { status: reply.status, body: reply.body, id };
}

/**
 * The built CLI module (`dist/cli/<name>.js`, as bin/ loads it). Not `build/src/cli`: the CLIs read
 * the version from `../../package.json`, which only resolves from `dist/`.
 */
export async function loadCli(
  name: 'client' | 'request' | 'listener',
): Promise<{ run: (argv: string[], io: CliIo) => Promise<number> }> {
  const url = new URL(`../../../dist/cli/${name}.js`, import.meta.url);
  return (await import(url.href)) as { run: (argv: string[], io: CliIo) => Promise<number> };
}

/**
 * Runs a CLI's `run(argv, io)` in this process, with collected stdout/stderr: the same code as the
 * bin/ script without the cost of starting Node (many short runs on a busy machine).
 */
export async function runInProcess(
  run: (argv: string[], io: CliIo) => Promise<number>,
  argv: string[],
  timeoutMs = 15000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = { stdout: '', stderr: '' };
  const sink = (key: 'stdout' | 'stderr') =>
    new Writable({
      write(chunk: Buffer | string, _encoding, callback) {
        output[key] += chunk.toString();
        callback();
      },
    });
  const stdin = Readable.from([]) as CliIo['stdin'];
  const signal = AbortSignal.timeout(timeoutMs);
  const code = await run(argv, {
    stdout: sink('stdout'),
    stderr: sink('stderr'),
    stdin,
    env: { NO_COLOR: '1' },
    signal,
  });
  if (signal.aborted) throw new Error(`run(${argv.join(' ')}) still running after ${timeoutMs} ms`);
  return { code, ...output };
}
