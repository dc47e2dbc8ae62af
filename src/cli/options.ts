/**
 * What the three CLIs share: option parsers that reject bad numbers with a clear message,
 * exit codes, and `runMain()` which wires a `run(argv, io)` function to the process
 * (exit code, signals, EPIPE on stdout).
 */
import { InvalidArgumentError, CommanderError, type Command } from 'commander';
import { readFileSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { flattenError } from '../errors.js';

/** Exit codes shared by the CLIs. */
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  sigint: 130,
  sigterm: 143,
} as const;

/** The process streams and environment a CLI run uses; tests pass their own. */
export interface CliIo {
  stdout: Writable;
  stderr: Writable;
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
  /** Aborted when the process receives SIGINT or SIGTERM; `reason` is the signal name. */
  signal: AbortSignal;
}

/**
 * The package version, read once from package.json: two levels up from `dist/cli/`, three from
 * the tests' `build/src/cli/`.
 */
export const version: string = readVersion();

function readVersion(): string {
  for (const path of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(path, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'eventsource-toolkit' && pkg.version !== undefined) return pkg.version;
    } catch {
      // Not at this depth; try the next one.
    }
  }
  return '0.0.0';
}

/** Parses a TCP port, 0 to 65535. */
export function parsePort(value: string): number {
  const n = parseInteger(value, 'a port number (0-65535)');
  if (n > 65535) throw new InvalidArgumentError(`expected a port number (0-65535), got "${value}"`);
  return n;
}

/** Parses a non-negative integer count or duration. */
export function parseNonNegativeInt(value: string): number {
  return parseInteger(value, 'a non-negative integer');
}

/** Parses a positive integer. */
export function parsePositiveInt(value: string): number {
  const n = parseInteger(value, 'a positive integer');
  if (n === 0) throw new InvalidArgumentError(`expected a positive integer, got "${value}"`);
  return n;
}

function parseInteger(value: string, what: string): number {
  const trimmed = value.trim();
  if (!/^[0-9]+$/.test(trimmed) || !Number.isSafeInteger(Number(trimmed))) {
    throw new InvalidArgumentError(`expected ${what}, got "${value}"`);
  }
  return Number(trimmed);
}

/** Parses a `Name: value` header and adds it to the list collected so far (repeatable option). */
export function collectHeader(
  value: string,
  previous: [string, string][] = [],
): [string, string][] {
  const colon = value.indexOf(':');
  const name = colon === -1 ? '' : value.slice(0, colon).trim();
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) {
    throw new InvalidArgumentError(`expected "Name: value", got "${value}"`);
  }
  return [...previous, [name, value.slice(colon + 1).trim()]];
}

/** Collects a repeatable string option. */
export function collectString(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** A usage error found after commander parsed the flags (exit code 2). */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/**
 * Runs a CLI's `run(argv, io)` as the process: maps SIGINT/SIGTERM to an AbortSignal (a second
 * signal exits at once), makes EPIPE on stdout (`| head -1`) end quietly, and turns an uncaught
 * error into one line on stderr (with the stack only when debugging).
 * @param run The command; resolves to its exit code.
 */
export function runMain(run: (argv: string[], io: CliIo) => Promise<number>): void {
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    if (controller.signal.aborted)
      process.exit(signal === 'SIGINT' ? ExitCode.sigint : ExitCode.sigterm);
    controller.abort(signal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    // The reader went away (`... | head -1`): nothing more can be shown, which is not a failure.
    if (error.code === 'EPIPE') process.exit(ExitCode.ok);
    throw error;
  });
  const io: CliIo = {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
    signal: controller.signal,
  };
  run(process.argv.slice(2), io).then(
    (code) => {
      process.exitCode = code;
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
    (error: unknown) => {
      const isDebug = Boolean(process.env.DEBUG);
      process.stderr.write(
        `${isDebug && error instanceof Error ? error.stack : flattenError(error)}\n`,
      );
      process.exitCode = ExitCode.failure;
    },
  );
}

/**
 * Maps a commander error to an exit code: help and version are 0, usage mistakes 2.
 * Commander has already printed its message.
 */
export function commanderExitCode(error: unknown): number | undefined {
  if (!(error instanceof CommanderError)) return undefined;
  if (
    error.code === 'commander.helpDisplayed' ||
    error.code === 'commander.version' ||
    error.code === 'commander.help'
  ) {
    return ExitCode.ok;
  }
  return ExitCode.usage;
}

/** Exit code for an interruption by a signal (128 + n). */
export function signalExitCode(signal: AbortSignal): number {
  return signal.reason === 'SIGTERM' ? ExitCode.sigterm : ExitCode.sigint;
}

/** Parses a byte size: an integer, optionally with a `k`, `m` or `g` suffix (KiB, MiB, GiB). */
export function parseBytes(value: string): number {
  const match = /^\s*([0-9]+)\s*([kmg])?i?b?\s*$/i.exec(value);
  if (match === null) {
    throw new InvalidArgumentError(
      `expected a size in bytes (e.g. 1048576, 512k, 1m), got "${value}"`,
    );
  }
  const unit = (match[2] ?? '').toLowerCase();
  const factor = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1;
  const n = Number(match[1]) * factor;
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError(`size too large: "${value}"`);
  return n;
}

/**
 * Commander sets a boolean flag whenever its environment variable exists, even `EVENTSOURCE_MULTI=0`.
 * This turns `0`, `false`, `no`, `off` and the empty string back into "off".
 * @param command A parsed command.
 * @param env The environment the values came from.
 */
export function applyBooleanEnv(command: Command, env: NodeJS.ProcessEnv): void {
  for (const option of command.options) {
    const name = option.attributeName();
    if (option.required || option.optional || option.envVar === undefined) continue;
    if (command.getOptionValueSource(name) !== 'env') continue;
    const value = (env[option.envVar] ?? '').trim().toLowerCase();
    if (['', '0', 'false', 'no', 'off'].includes(value)) command.setOptionValue(name, undefined);
  }
}
