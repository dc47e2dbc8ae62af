/**
 * Runs the code blocks of README.md and docs/*.md, so that an example cannot rot.
 *
 * The convention (also in docs/development.md). A block with no comment before it is run:
 *
 * - `js`, `mjs`, `ts`: written to a file in a temporary folder inside the package (so that
 *   `import 'eventsource-toolkit'` resolves to the built package by self-reference, and `jose` to
 *   node_modules) and run with `node` (`ts`: `node --import tsx`). It must exit 0 within 60 s, so
 *   it closes what it opens, and it listens on port 0 rather than on 8888.
 * - `sh`, `bash`: run with `bash -e` in such a folder (`npx eventsource-listener` works there, as
 *   inside a clone); it must exit 0 within 60 s.
 *
 * Any other block needs `<!-- doc-test: KIND ... -->` on a line before it (blank lines between
 * allowed), or the test fails:
 *
 * - `output`, `config`, `synopsis`, `diagram`: not code to run (what a command prints, a file's
 *   content, a usage line, a picture). A `json` block of these kinds must parse as JSON.
 * - `skip REASON`: a command that works, but needs what the test cannot provide (a certificate
 *   of a real host, Redis Sentinel, Prometheus, 46 s of watching). The reason is required.
 * - `server`: commands whose last starts a listener that runs until stopped. They run with
 *   `EVENTSOURCE_HOST=127.0.0.1 EVENTSOURCE_PORT=0` in the environment (so they must not pass
 *   `-H`/`-P`); the test waits for the `listening on` line and keeps the listener running for the
 *   `with-server` blocks that follow, until the next `server` block or the end of the file.
 * - `with-server`: an `sh` block run against the listener of the last `server` block, in the same
 *   folder (files the server block wrote are there); every `8888` becomes that listener's port.
 * - `with-listener FLAGS`: an `sh` block run against `eventsource-listener -P 0 FLAGS` started
 *   for it; the substitution: every `8888` in the block becomes that listener's port.
 * - `redis` (after any kind, or alone for a `js` block): a throwaway redis-server is started;
 *   `REDIS_URL` holds its URL and every `redis://127.0.0.1:6379` in the block becomes that URL.
 *   Skipped when redis-server is missing (a failure under `CI=true`).
 * - `tour`: the README's one-minute tour, run as the three terminals would: the first line (the
 *   listener, `-P 8888` replaced by `-H 127.0.0.1 -P 0`) and the second (the client) as
 *   background processes, then each other line to completion, with `-P <port>` inserted after
 *   `eventsource-client` and `eventsource-request`; the client must print the `ping` event.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { extractCodeBlocks, parseDirective, type CodeBlock } from '../helpers/markdown.js';
import { startListenerProcess } from '../helpers/process.js';
import { redisSkipReason, startRedis, type RedisServer } from '../helpers/redis.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SCRATCH = join(ROOT, 'build', 'doc-examples');
const BLOCK_TIMEOUT_MS = 60000;

const NOT_RUN = new Set(['output', 'config', 'synopsis', 'diagram']);
const KINDS = new Set([
  ...NOT_RUN,
  'skip',
  'server',
  'with-server',
  'with-listener',
  'redis',
  'tour',
]);
const JS = new Set(['js', 'mjs', 'javascript', 'ts', 'typescript']);
const SH = new Set(['sh', 'bash', 'shell']);

function documentationFiles(): string[] {
  const docs = readdirSync(join(ROOT, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .sort()
    .map((name) => `docs/${name}`);
  return ['README.md', ...docs];
}

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

interface Running {
  child: ChildProcess;
  stdout: string;
  stderr: string;
}

/**
 * Starts a command in its own process group (npx, sh and node beneath it), so that it can be
 * stopped as a whole.
 */
function start(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): Running {
  const child = spawn(command, args, {
    cwd,
    env: { ...process.env, NO_COLOR: '1', DEBUG: '', ...env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const running: Running = { child, stdout: '', stderr: '' };
  child.stdout?.setEncoding('utf8').on('data', (s: string) => (running.stdout += s));
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (running.stderr += s));
  return running;
}

function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** Waits for the process to end; past `timeoutMs` its whole group is killed and that is an error. */
async function finish(running: Running, timeoutMs: number, what: string): Promise<Outcome> {
  const { child } = running;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup(child, 'SIGKILL');
  }, timeoutMs);
  if (isRunning(child)) await once(child, 'exit');
  clearTimeout(timer);
  // A block's background jobs (a subscriber left running) would hold its pipes open: end them.
  killGroup(child, 'SIGKILL');
  if (child.stdout?.readableEnded === false || child.stderr?.readableEnded === false) {
    await once(child, 'close');
  }
  const outcome = { code: child.exitCode, signal: child.signalCode, ...running };
  if (timedOut) {
    throw new Error(`${what} did not finish within ${timeoutMs} ms; ${describe(outcome)}`);
  }
  return outcome;
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-(child.pid as number), signal);
  } catch (error) {
    // ESRCH: the group has already exited, which is what we wanted.
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

/** Stops a background command (its process group): SIGTERM, then SIGKILL after 5 s. */
async function stop(running: Running): Promise<void> {
  const { child } = running;
  if (!isRunning(child)) return;
  const closed = once(child, 'close');
  killGroup(child, 'SIGTERM');
  const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 5000);
  await closed;
  clearTimeout(timer);
  // npm does not wait for the node process beneath it: make sure the group is gone.
  killGroup(child, 'SIGKILL');
}

async function waitFor(
  running: Running,
  which: 'stdout' | 'stderr',
  pattern: RegExp,
  what: string,
  timeoutMs = 20000,
): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const match = running[which].match(pattern);
    if (match) return match;
    if (!isRunning(running.child) || Date.now() > deadline) {
      const state = isRunning(running.child) ? 'timed out' : 'exited';
      throw new Error(
        `${what} ${state} before printing ${pattern} on ${which}; ${describe(running)}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

function describe(outcome: Partial<Outcome> & { stdout: string; stderr: string }): string {
  const status = outcome.code !== undefined ? `exit ${outcome.code ?? outcome.signal}; ` : '';
  return `${status}stdout: ${JSON.stringify(outcome.stdout)}; stderr: ${JSON.stringify(outcome.stderr)}`;
}

/** A fresh folder inside the package, removed after the test. */
function scratchFolder(t: { after(fn: () => void): void }): string {
  mkdirSync(SCRATCH, { recursive: true });
  const folder = mkdtempSync(join(SCRATCH, 'block-'));
  t.after(() => rmSync(folder, { recursive: true, force: true }));
  return folder;
}

async function runShell(code: string, cwd: string, env: NodeJS.ProcessEnv, what: string) {
  const outcome = await finish(start('bash', ['-e', '-c', code], cwd, env), BLOCK_TIMEOUT_MS, what);
  assert.equal(outcome.code, 0, `${what} failed; ${describe(outcome)}`);
  return outcome;
}

async function runModule(block: CodeBlock, cwd: string, env: NodeJS.ProcessEnv, what: string) {
  const isTs = block.lang === 'ts' || block.lang === 'typescript';
  const file = join(cwd, isTs ? 'example.ts' : 'example.mjs');
  writeFileSync(file, block.code);
  const args = isTs ? ['--import', 'tsx', file] : [file];
  const outcome = await finish(start(process.execPath, args, cwd, env), BLOCK_TIMEOUT_MS, what);
  assert.equal(outcome.code, 0, `${what} failed; ${describe(outcome)}`);
  return outcome;
}

/** The README tour: three terminals, as the comment at the top of this file describes. */
async function runTour(block: CodeBlock, cwd: string, t: { after(fn: () => unknown): void }) {
  const lines = block.code
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  const [listenerLine, clientLine, ...requestLines] = lines;
  assert.match(
    listenerLine ?? '',
    /eventsource-listener .*-P 8888/,
    'the tour starts the listener',
  );
  assert.match(clientLine ?? '', /eventsource-client /, 'then the client');
  assert.ok(requestLines.length > 0 && requestLines.every((l) => /eventsource-request /.test(l)));

  const listener = start(
    'bash',
    ['-c', listenerLine!.replace('-P 8888', '-H 127.0.0.1 -P 0')],
    cwd,
    {},
  );
  t.after(() => stop(listener));
  const [, url] = await waitFor(listener, 'stderr', /listening on (http:\/\/\S+)/, 'the listener');
  const port = new URL(url!).port;
  const withPort = (line: string) =>
    line.replace(/(eventsource-(?:client|request)) /, `$1 -P ${port} `);

  const client = start('bash', ['-c', withPort(clientLine!)], cwd, {});
  t.after(() => stop(client));
  await waitFor(client, 'stderr', /connected to /, 'the client');

  for (const line of requestLines) {
    const outcome = await finish(start('bash', ['-c', withPort(line)], cwd, {}), 20000, line);
    assert.equal(outcome.code, 0, `${line}; ${describe(outcome)}`);
    if (/ ping /.test(line)) {
      // The client prints `type #id: data` for each event.
      await waitFor(client, 'stdout', /^ping #\d+: 42$/m, 'the client');
    }
  }
  // `close` ended the stream; with -r 5000 the client says it will reconnect.
  await waitFor(client, 'stderr', /reconnecting in 5000 ms/, 'the client');
}

async function withRedis(t: { after(fn: () => unknown): void }): Promise<RedisServer> {
  const redis = await startRedis();
  t.after(() => redis.close());
  return redis;
}

/** The listener of the last `server` block of a file, for the `with-server` blocks after it. */
let server: { running: Running; port: string; cwd: string } | undefined;
async function stopServer(): Promise<void> {
  const running = server?.running;
  server = undefined;
  if (running !== undefined) await stop(running);
}
/** The folders of the `server` blocks, removed once every test has run. */
const serverFolders: string[] = [];
after(async () => {
  await stopServer();
  for (const folder of serverFolders) rmSync(folder, { recursive: true, force: true });
});

for (const file of documentationFiles()) {
  test(`${file}: the servers of the previous file stop`, stopServer);
  const blocks = extractCodeBlocks(readFileSync(join(ROOT, file), 'utf8'), file);
  for (const block of blocks) {
    const directive = block.directive === undefined ? undefined : parseDirective(block.directive);
    const kind = directive?.kind ?? (JS.has(block.lang) ? 'js' : SH.has(block.lang) ? 'sh' : '');
    const where = `${file}:${block.line}`;
    const needsRedis = kind === 'redis' || /(^|\s)redis(\s|$)/.test(directive?.rest ?? '');
    const skipRedis = needsRedis ? redisSkipReason() : undefined;
    const name = `${where} (${block.lang || 'no language'}${directive ? `, ${block.directive}` : ''})`;

    if (kind === 'skip') {
      // Not run, like an output sample, but only with a reason a reader would accept (a
      // certificate, a Sentinel setup, a remote host): a block without one fails here.
      test(`${name}: not run, and says why`, () => {
        assert.ok(directive!.rest !== '', `${where}: "doc-test: skip" needs a reason`);
      });
      continue;
    }

    test(name, { timeout: 90000, skip: skipRedis }, async (t) => {
      assert.ok(
        kind !== '' && (directive === undefined || KINDS.has(kind)),
        `${where}: a ${block.lang || 'plain'} block needs <!-- doc-test: KIND --> before it` +
          ` (output, config, synopsis, skip REASON, server, with-listener, redis, tour);` +
          ` got ${JSON.stringify(block.directive ?? '')}`,
      );
      if (NOT_RUN.has(kind)) {
        if (block.lang === 'json') JSON.parse(block.code);
        return;
      }
      if (kind === 'server') await stopServer();
      const cwd = kind === 'with-server' ? (server?.cwd ?? '') : scratchFolder(t);
      let code = block.code;
      const env: NodeJS.ProcessEnv = {};
      if (needsRedis) {
        // A listener on this Redis stops with it (hooks run in the order they were added).
        if (kind === 'server') t.after(stopServer);
        const redis = await withRedis(t);
        env.REDIS_URL = redis.url;
        code = code.replaceAll('redis://127.0.0.1:6379', redis.url.replace(/\/\d*$/, ''));
      }
      if (kind === 'tour') {
        await runTour(block, cwd, t);
      } else if (kind === 'server') {
        // Its folder outlives this test: the with-server blocks after it work there.
        mkdirSync(SCRATCH, { recursive: true });
        const folder = mkdtempSync(join(SCRATCH, 'server-'));
        serverFolders.push(folder);
        const running = start('bash', ['-c', code], folder, {
          ...env,
          EVENTSOURCE_HOST: '127.0.0.1',
          EVENTSOURCE_PORT: '0',
        });
        server = { running, port: '', cwd: folder };
        const [, url] = await waitFor(running, 'stderr', /listening on (https?:\/\/\S+)/, where);
        server.port = new URL(url!).port;
      } else if (kind === 'with-server') {
        assert.ok(server !== undefined, `${where}: with-server needs a server block before it`);
        assert.ok(SH.has(block.lang), `${where}: with-server is for sh blocks`);
        await runShell(code.replaceAll('8888', server.port), server.cwd, env, where);
      } else if (kind === 'with-listener') {
        assert.ok(SH.has(block.lang), `${where}: with-listener is for sh blocks`);
        const listener = await startListenerProcess(directive!.rest.split(/\s+/).filter(Boolean));
        t.after(() => listener.stop());
        await runShell(code.replaceAll('8888', String(listener.port)), cwd, env, where);
      } else if (JS.has(block.lang)) {
        await runModule({ ...block, code }, cwd, env, where);
      } else if (SH.has(block.lang)) {
        await runShell(code, cwd, env, where);
      } else {
        assert.fail(`${where}: doc-test: ${kind} does not apply to a ${block.lang} block`);
      }
    });
  }
}
