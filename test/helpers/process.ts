/**
 * Helpers to run the package's CLIs as real processes. No side effects on import.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

/** Absolute path of a bin/ script. */
export function binPath(
  name: 'eventsource-listener' | 'eventsource-client' | 'eventsource-request',
): string {
  return fileURLToPath(new URL(`../../../bin/${name}.js`, import.meta.url));
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

/** Runs a CLI to completion and returns its exit code and output. */
export async function runBin(
  name: Parameters<typeof binPath>[0],
  args: string[],
  options: RunOptions = {},
): Promise<RunResult> {
  const child = spawnBin(name, args, options.env);
  if (options.input !== undefined) child.stdin.end(options.input);
  else child.stdin.end();
  return waitExit(child, options.timeoutMs ?? 20000);
}

/** Starts a CLI and returns the child process; stdout/stderr are collected on `child.output`. */
export function spawnBin(
  name: Parameters<typeof binPath>[0],
  args: string[],
  env: NodeJS.ProcessEnv = {},
): ChildProcessWithoutNullStreams & { output: { stdout: string; stderr: string } } {
  const child = spawn(process.execPath, [binPath(name), ...args], {
    env: { ...process.env, NO_COLOR: '1', DEBUG: '', ...env },
  }) as ChildProcessWithoutNullStreams & { output: { stdout: string; stderr: string } };
  child.output = { stdout: '', stderr: '' };
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (s: string) => (child.output.stdout += s));
  child.stderr.on('data', (s: string) => (child.output.stderr += s));
  return child;
}

/** Waits for a child to exit (killing it after `timeoutMs`). */
export async function waitExit(
  child: ReturnType<typeof spawnBin>,
  timeoutMs = 20000,
): Promise<RunResult> {
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  try {
    if (child.exitCode === null && child.signalCode === null) await once(child, 'close');
  } finally {
    clearTimeout(timer);
  }
  return {
    code: child.exitCode,
    signal: child.signalCode,
    stdout: child.output.stdout,
    stderr: child.output.stderr,
  };
}

/** Waits until the child's stream `which` has printed text matching `pattern`; returns the match. */
export async function waitForOutput(
  child: ReturnType<typeof spawnBin>,
  pattern: RegExp,
  which: 'stdout' | 'stderr' = 'stderr',
  timeoutMs = 10000,
): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const match = child.output[which].match(pattern);
    if (match) return match;
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `process exited (${child.exitCode ?? child.signalCode}) before printing ${pattern}; stderr: ${child.output.stderr}`,
      );
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${pattern}; ${which}: ${child.output[which]}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Starts `eventsource-listener -H 127.0.0.1 -P 0 ...args` and resolves with its base URL once bound.
 */
export async function startListenerProcess(
  args: string[] = [],
  env: NodeJS.ProcessEnv = {},
): Promise<{
  child: ReturnType<typeof spawnBin>;
  url: string;
  port: number;
  stop: () => Promise<RunResult>;
}> {
  const child = spawnBin('eventsource-listener', ['-H', '127.0.0.1', '-P', '0', ...args], env);
  const match = await waitForOutput(child, /listening on (https?:\/\/[^\s]+)/);
  const url = (match[1] ?? '').replace(/\/$/, '');
  const port = Number(new URL(url).port);
  return {
    child,
    url,
    port,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return waitExit(child, 5000);
    },
  };
}
