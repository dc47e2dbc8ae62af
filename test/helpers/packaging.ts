/**
 * Helpers for the packaging tests: run a command to completion, and an environment for the npm
 * processes they start. No side effects on import.
 */
import { spawn, type SpawnOptions } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

/** The repository's root (the tests run from build/test/...). */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * This process's environment without what `npm test` adds for its script, above all
 * `npm_config_local_prefix`, which would point an npm started elsewhere at this repository (an
 * `npm ci` in a temporary project would then reinstall the repository's node_modules), and
 * without `NODE_TEST_CONTEXT`, which would make a `node --test` started here report to this run.
 */
export function npmEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (/^npm_(config_local_prefix|package_|lifecycle_|command$)/i.test(name)) continue;
    if (name === 'INIT_CWD' || name === 'NODE_TEST_CONTEXT') continue;
    env[name] = value;
  }
  return { ...env, NO_COLOR: '1', DEBUG: '', ...extra };
}

/**
 * Runs a command without a shell and collects its output.
 * @param command The program.
 * @param args Its arguments.
 * @param options `cwd`, `env`, and `timeoutMs` after which it is killed (its result then says so).
 * @returns Its exit code or signal, stdout and stderr.
 */
export async function runCommand(
  command: string,
  args: readonly string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string },
): Promise<CommandResult> {
  const spawnOptions: SpawnOptions = { cwd: options.cwd, env: options.env ?? npmEnv() };
  const child = spawn(command, args, spawnOptions);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  child.stderr?.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  child.stdin?.end(options.input ?? '');
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60000);
  try {
    await once(child, 'close');
  } finally {
    clearTimeout(timer);
  }
  return { code: child.exitCode, signal: child.signalCode, stdout, stderr };
}

/** What a failed command said, for assertion messages. */
export function describeRun(what: string, result: CommandResult): string {
  return `${what} exited ${result.code ?? result.signal}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`;
}
