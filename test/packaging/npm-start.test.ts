/**
 * `npm start` builds and runs the listener; a signal to npm must stop the listener too. The script
 * runs in a copy of the sources (its build writes dist/ there, not under the other test files).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitForOutput, type spawnBin } from '../helpers/process.js';
import { npmEnv, repoRoot } from '../helpers/packaging.js';

/** The parent pid of each process, read from /proc/<pid>/stat. */
function parentPids(): Map<number, number> {
  const parents = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parents.set(Number(name), ppid);
    } catch {
      // The process ended while the list was read.
    }
  }
  return parents;
}

/** The pids of a process's descendants whose command line contains `text`. */
function descendantsRunning(pid: number, text: string): number[] {
  const parents = parentPids();
  const found: number[] = [];
  const isUnder = (child: number): boolean => {
    for (let at = parents.get(child); at !== undefined && at > 1; at = parents.get(at)) {
      if (at === pid) return true;
    }
    return false;
  };
  for (const child of parents.keys()) {
    if (!isUnder(child)) continue;
    try {
      if (readFileSync(`/proc/${child}/cmdline`, 'utf8').includes(text)) found.push(child);
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function isRefused(port: number): Promise<boolean> {
  const socket = net.connect(port, '127.0.0.1');
  try {
    await once(socket, 'connect');
    return false;
  } catch {
    return true;
  } finally {
    socket.destroy();
  }
}

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`${signal} to npm start stops the listener it started`, { timeout: 120000 }, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'eventsource-start-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    for (const entry of ['package.json', 'tsconfig.json', 'tsconfig.build.json', 'src', 'bin']) {
      cpSync(join(repoRoot, entry), join(dir, entry), { recursive: true });
    }
    symlinkSync(join(repoRoot, 'node_modules'), join(dir, 'node_modules'));

    const npm = spawn('npm', ['start', '--', '-H', '127.0.0.1', '-P', '0'], {
      cwd: dir,
      env: npmEnv(),
    }) as ReturnType<typeof spawnBin>;
    npm.output = { stdout: '', stderr: '' };
    npm.stdout.setEncoding('utf8').on('data', (s: string) => (npm.output.stdout += s));
    npm.stderr.setEncoding('utf8').on('data', (s: string) => (npm.output.stderr += s));
    t.after(() => npm.kill('SIGKILL'));
    const [, url] = await waitForOutput(npm, /listening on (http:\/\/\S+)/, 'stderr', 90000);
    const port = Number(new URL(url ?? '').port);
    const listeners = descendantsRunning(npm.pid as number, 'bin/eventsource-listener.js');
    assert.equal(listeners.length, 1, `one listener under npm: ${listeners.join(', ')}`);
    const [listener] = listeners as [number];
    t.after(() => {
      if (isAlive(listener)) process.kill(listener, 'SIGKILL');
    });

    // Waits for npm's exit, not for its output to close: a listener left running would hold the
    // pipes open.
    const exited = once(npm, 'exit');
    npm.kill(signal);
    await exited;
    const deadline = Date.now() + 10000;
    while (isAlive(listener) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(isAlive(listener), false, `the listener (pid ${listener}) is still running`);
    assert.equal(await isRefused(port), true, `port ${port} still accepts connections`);
  });
}
