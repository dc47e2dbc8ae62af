/**
 * eventsource-client: connects to an SSE stream (the listener's `/poll/<token>` or any `--url`)
 * and prints each event on stdout, one readable line, or one JSON object with `--json`.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { EventSourceClient, EventSourceErrorEvent, type ClientEvent } from '../client.js';
import { diagnose, type Diagnosis } from '../client/diagnose.js';
import { enableDebug } from '../debug.js';
import { ContentTypeError, flattenError, HttpStatusError } from '../errors.js';
import {
  applyBooleanEnv,
  collectHeader,
  commanderExitCode,
  ExitCode,
  parseNonNegativeInt,
  parsePort,
  parsePositiveInt,
  runMain,
  signalExitCode,
  UsageError,
  version,
  type CliIo,
} from './options.js';
import { serverMessage } from '../message.js';
import { normalizePrefix } from '../listener/routes.js';
import { MAX_RETRY_MS, MIN_RETRY_MS } from '../wire/retry.js';

interface ClientCliOptions {
  host: string;
  port: number;
  debug?: true;
  retry: number;
  secure?: true;
  verify?: true;
  keep?: true;
  action: string;
  prefix?: string;
  user?: string;
  password?: string | undefined;
  url?: string;
  json?: true;
  lastEventId?: string;
  header: [string, string][];
  insecure?: true;
  ca?: string;
  count?: number;
  timeout?: number;
  http2?: true;
  bearer?: string;
  secret?: string;
  diagnose?: true;
  diagnoseSeconds: number;
  keepaliveMax: number;
  origin?: string;
  withCredentials?: true;
  probeAction: string;
}

const DEFAULT_RETRY_MS = 3000;

function createCommand(io: CliIo): Command {
  return new Command('eventsource-client')
    .description('Connect to a Server-Sent Events stream and print its events.')
    .argument('[token]', "the token to listen to, or the stream's http(s) URL (as --url gives it)")
    .option('-H, --host <host>', 'listener host', '127.0.0.1')
    .option('-P, --port <port>', 'listener port', parsePort, 8888)
    .option('-d, --debug', 'print debug output on stderr (DEBUG=eventsource:*)')
    .option(
      '-r, --retry <ms>',
      `reconnect after <ms> when the stream ends (the server's "retry:" overrides it; every wait is kept between ${MIN_RETRY_MS} ms and ${MAX_RETRY_MS / 3600000} h); 0 = no reconnection`,
      parseNonNegativeInt,
      0,
    )
    .option('-S, --secure', 'connect with https')
    .option('-V, --verify', 'validate TLS certificates (accepted for compatibility: always on)')
    .option(
      '-k, --keep',
      `keep reconnecting after errors too (every ${DEFAULT_RETRY_MS} ms when -r is 0)`,
    )
    .option('-a, --action <action>', 'listener action', 'poll')
    .option('-x, --prefix <prefix>', 'path prefix of the listener')
    .option('-u, --user <user>', 'user name for basic authentication')
    .option(
      '-p, --password <password>',
      'password for basic authentication (env: EVENTSOURCE_PASSWORD)',
    )
    .option('--url <url>', 'connect to this SSE URL instead (no token needed)')
    .option('--json', 'print one JSON object per event: {"id","event","data"}')
    .option('--last-event-id <id>', 'send this Last-Event-ID on the first connection')
    .option(
      '--header <header>',
      'extra request header "Name: value" (repeatable)',
      collectHeader,
      [],
    )
    .option('--insecure', 'do not validate TLS certificates')
    .option('--ca <file>', 'trust the certificate authorities in this PEM file')
    .addOption(
      new Option(
        '--http2',
        'speak HTTP/2 when the server offers it over TLS (-S or an https --url); HTTP/1.1 otherwise',
      ).env('EVENTSOURCE_HTTP2'),
    )
    .addOption(
      new Option('--bearer <token>', 'send "Authorization: Bearer <token>" on stream requests').env(
        'EVENTSOURCE_BEARER',
      ),
    )
    .addOption(new Option('--count <n>', 'exit after <n> events').argParser(parsePositiveInt))
    .addOption(
      new Option(
        '--timeout <ms>',
        'connect timeout, and how long a stream may stay silent',
      ).argParser(parsePositiveInt),
    )
    .option(
      '--diagnose',
      'check the endpoint (buffering, compression, keepalive, HTTP/2, CORS, Last-Event-ID...) and print a report',
    )
    .option(
      '--diagnose-seconds <s>',
      'with --diagnose: how long to watch the stream (at least --keepalive-max + 0.5 s)',
      parseSeconds,
      20,
    )
    .option(
      '--keepalive-max <ms>',
      'with --diagnose: the longest silence allowed before "keepalive" warns',
      parsePositiveInt,
      45000,
    )
    .option('--origin <origin>', 'with --diagnose: send this Origin and check CORS against it')
    .option(
      '--with-credentials',
      'with --diagnose: check CORS as for EventSource withCredentials (exact origin + credentials)',
    )
    .option(
      '--probe-action <action>',
      'with --diagnose: the action probe events are POSTed to on an eventsource-listener',
      'ping',
    )
    .addOption(
      new Option(
        '--secret <secret>',
        'with --diagnose: publish secret for the probe POSTs (default: --bearer)',
      ).env('EVENTSOURCE_SECRET'),
    )
    .version(version, '-v, --version')
    .addHelpText(
      'after',
      `
Exit codes: 0 stream ended (no reconnection due), --count reached or 204; 1 HTTP error or
unreachable server; 2 usage error; 130/143 after SIGINT/SIGTERM.
With --diagnose: 0 verdict pass or warn, 1 fail, 2 usage error.

Examples:
  $ eventsource-client -P 8888 mytoken
  $ eventsource-client -r 1000 -k --json mytoken | jq .data
  $ eventsource-client --url https://example.com/stream --header "Authorization: Bearer x"
  $ eventsource-client --http2 -S --ca ca.pem -P 8443 mytoken
  $ EVENTSOURCE_BEARER="$JWT" eventsource-client mytoken
  $ eventsource-client --diagnose https://push.example.com/poll/mytoken --origin https://app.example
  $ eventsource-client --diagnose --json --diagnose-seconds 5 --keepalive-max 2000 -P 8888 mytoken`,
    )
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
    });
}

/** Parses a duration in seconds, decimals allowed (`--diagnose-seconds 2.5`). */
function parseSeconds(value: string): number {
  const seconds = Number(value.trim());
  if (!/^\s*[0-9]*\.?[0-9]+\s*$/.test(value) || !(seconds > 0) || seconds > 86400) {
    throw new InvalidArgumentError(`expected a positive number of seconds, got "${value}"`);
  }
  return seconds;
}

function checkUrl(text: string, what: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`${what} must be an absolute http(s) URL, got "${text}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`${what} must be an http(s) URL, got "${text}"`);
  }
  return url.href;
}

/** Builds the URL the options point at. */
function buildUrl(token: string | undefined, options: ClientCliOptions): string {
  if (options.url !== undefined) {
    if (token !== undefined) throw new UsageError('give either a token or --url, not both');
    return checkUrl(options.url, '--url');
  }
  // An argument with a scheme is the URL itself, as `--url` gives it (a token such as a MAC
  // address has colons, but never `://`): `eventsource-client http://host/poll/tok` is what
  // people type first, and taken as a token it went to 127.0.0.1:8888/poll/http%3A%2F%2F...
  if (token !== undefined && /^[a-z][a-z0-9+.-]*:\/\//i.test(token)) {
    return checkUrl(token, 'the URL');
  }
  if (token === undefined) {
    throw new UsageError(
      options.diagnose
        ? 'missing the URL (or a token) to diagnose'
        : "missing required argument 'token' (or --url)",
    );
  }
  const host =
    options.host.includes(':') && !options.host.startsWith('[')
      ? `[${options.host}]`
      : options.host;
  const path = `${normalizePrefix(options.prefix)}/${encodeURIComponent(options.action)}/${encodeURIComponent(token)}`;
  return `${options.secure ? 'https' : 'http'}://${host}:${options.port}${path}`;
}

// The JSON of the last id and type seen: consecutive events mostly share both (or the type).
let lastId: string | null = null;
let lastIdJson = 'null';
let lastType = 'message';
let lastTypeJson = '"message"';

function formatJson(event: ClientEvent): string {
  if (event.id !== lastId) {
    lastId = event.id;
    lastIdJson = lastId === null ? 'null' : JSON.stringify(lastId);
  }
  if (event.event !== lastType) {
    lastType = event.event;
    lastTypeJson = JSON.stringify(lastType);
  }
  return `{"id":${lastIdJson},"event":${lastTypeJson},"data":${JSON.stringify(event.data)}}\n`;
}

// For a person: `type #id: data`, continuation lines of multi-line data indented.
function formatText(event: ClientEvent): string {
  const data = event.data.includes('\n') ? event.data.replaceAll('\n', '\n  ') : event.data;
  return `${event.event}${event.id === null ? '' : ` #${event.id}`}: ${data}\n`;
}

/** Whether the error, or one of its causes, is a refused TCP connection (nothing listens there). */
function isConnectionRefused(error: unknown): boolean {
  for (let depth = 0; error instanceof Error && depth < 8; depth++) {
    if ((error as NodeJS.ErrnoException).code === 'ECONNREFUSED') return true;
    // `localhost` tries ::1 and 127.0.0.1: both refusals come as one AggregateError.
    if (error instanceof AggregateError && error.errors.some(isConnectionRefused)) return true;
    error = error.cause;
  }
  return false;
}

function describe(error: Error, url: string, wasOpen: boolean): string {
  if (error instanceof HttpStatusError) {
    return `Unable to connect to ${url} (${error.status}): ${serverMessage(error.status, error.body, '', false)}`;
  }
  if (error instanceof ContentTypeError) return `${error.message} (is the URL right?)`;
  const what = wasOpen ? `Connection to ${url} lost` : `Unable to connect to ${url}`;
  return `${what}: ${flattenError(error)}`;
}

/**
 * Runs eventsource-client with these arguments.
 * @param argv The arguments after the command name.
 * @param io The process streams, environment and interruption signal.
 * @returns The exit code.
 */
export async function run(argv: string[], io: CliIo): Promise<number> {
  const program = createCommand(io);
  let options: ClientCliOptions;
  let url: string;
  let ca: string | undefined;
  try {
    await program.parseAsync(argv, { from: 'user' });
    applyBooleanEnv(program, io.env);
    options = program.opts<ClientCliOptions>();
    if (options.debug) enableDebug();
    url = buildUrl(program.args[0], options);
    if (options.password !== undefined && options.user === undefined) {
      throw new UsageError('-p/--password is the HTTP Basic password: give -u/--user with it');
    }
    options.password ??= io.env.EVENTSOURCE_PASSWORD;
    if (options.user !== undefined && options.bearer !== undefined) {
      throw new UsageError('use either -u/--user or --bearer, not both');
    }
    if (options.ca !== undefined) {
      try {
        ca = readFileSync(options.ca, 'utf8');
      } catch (error) {
        throw new UsageError(`cannot read --ca file: ${flattenError(error)}`);
      }
    }
  } catch (error) {
    const code = commanderExitCode(error);
    if (code !== undefined) return code;
    if (error instanceof UsageError) {
      io.stderr.write(`error: ${error.message}\n`);
      return ExitCode.usage;
    }
    throw error;
  }

  if (options.diagnose) return runDiagnose(url, options, ca, io);

  const isJson = options.json === true;
  const count = options.count;
  let received = 0;
  let output = '';
  let isFlushScheduled = false;
  // Events from one network chunk are dispatched synchronously: collect them and write once.
  // A slow reader of stdout (`| jq` on a busy machine) pauses the connection instead of letting
  // output pile up in memory.
  let isWaitingForDrain = false;
  const flush = (): void => {
    isFlushScheduled = false;
    if (output === '') return;
    const text = output;
    output = '';
    if (!io.stdout.write(text) && !isWaitingForDrain) {
      isWaitingForDrain = true;
      client.pause();
      io.stdout.once('drain', () => {
        isWaitingForDrain = false;
        client.resume();
      });
    }
  };
  let client: EventSourceClient;
  try {
    client = new EventSourceClient(url, {
      headers: options.header,
      ...(options.user !== undefined
        ? { username: options.user, password: options.password ?? '' }
        : {}),
      ...(options.bearer !== undefined ? { bearer: options.bearer } : {}),
      ...(options.lastEventId !== undefined ? { lastEventId: options.lastEventId } : {}),
      retryMs: options.retry > 0 ? options.retry : DEFAULT_RETRY_MS,
      reconnect: options.retry > 0,
      keepReconnecting: options.keep === true,
      rejectUnauthorized: options.insecure !== true,
      ...(ca !== undefined ? { ca } : {}),
      ...(options.http2 ? { http2: true } : {}),
      ...(options.timeout !== undefined
        ? { connectTimeoutMs: options.timeout, readTimeoutMs: options.timeout }
        : {}),
      signal: io.signal,
      onEvent: (event) => {
        output += isJson ? formatJson(event) : formatText(event);
        if (!isFlushScheduled) {
          isFlushScheduled = true;
          queueMicrotask(flush);
        }
        if (count !== undefined && ++received >= count) client.close();
      },
    });
  } catch (error) {
    if (error instanceof TypeError || error instanceof RangeError) {
      io.stderr.write(`error: ${error.message}\n`);
      return ExitCode.usage;
    }
    throw error;
  }
  // Whether the current connection is open: it decides between "unable to connect" and "lost".
  let isOpen = false;
  let failure: string | undefined;
  // A refused connection is said once with what to do, then retried quietly until one opens.
  const refusedHint =
    options.url === undefined ? 'is eventsource-listener running?' : 'is the server running?';
  let isRefusalSaid = false;
  client.addEventListener('open', () => {
    isOpen = true;
    isRefusalSaid = false;
    io.stderr.write(`connected to ${url}\n`);
  });
  client.addEventListener('error', (event: Event) => {
    // A server may name its own events `error`: only the client's own are notices.
    if (!(event instanceof EventSourceErrorEvent)) return;
    const { error, willReconnect, delayMs } = event;
    if (error !== undefined && client.readyState === EventSourceClient.OPEN) {
      io.stderr.write(`${flattenError(error)}; event skipped\n`);
      return;
    }
    const reason = error === undefined ? 'stream ended' : describe(error, url, isOpen);
    const isRefused = !isOpen && isConnectionRefused(error);
    isOpen = false;
    if (willReconnect && isRefused) {
      if (isRefusalSaid) return;
      isRefusalSaid = true;
      io.stderr.write(
        `${reason} (${refusedHint}); reconnecting in ${delayMs} ms, quietly while refused\n`,
      );
    } else if (willReconnect) {
      io.stderr.write(`${reason}; reconnecting in ${delayMs} ms\n`);
    } else if (isRefused) {
      failure = `${reason} (${refusedHint} Start it first, or add -k to keep trying)`;
    } else if (error instanceof HttpStatusError && error.status === 204) {
      io.stderr.write(`${url} answered 204 No Content: not reconnecting\n`);
    } else if (error !== undefined) {
      failure = reason;
    }
  });

  try {
    await client.closed;
  } catch (error) {
    flush();
    const isDebug = options.debug === true || Boolean(io.env.DEBUG);
    const message = failure ?? describe(error as Error, url, false);
    io.stderr.write(
      `${isDebug && error instanceof Error ? `${message}\n${error.stack}` : message}\n`,
    );
    return ExitCode.failure;
  }
  flush();
  if (io.signal.aborted) return signalExitCode(io.signal);
  return ExitCode.ok;
}

/** The human report: one line per check, then the verdict. */
function formatReport(diagnosis: Diagnosis): string {
  const lines = diagnosis.checks.map(
    ({ id, status, detail }) => `${id.padEnd(14)} ${status.padEnd(5)} ${detail}`,
  );
  return `${lines.join('\n')}\nverdict: ${diagnosis.verdict}\n`;
}

// `--diagnose`: the report on stdout (one JSON object with --json), exit 1 when it fails.
async function runDiagnose(
  url: string,
  options: ClientCliOptions,
  ca: string | undefined,
  io: CliIo,
): Promise<number> {
  const windowMs = Math.max(Math.round(options.diagnoseSeconds * 1000), options.keepaliveMax + 500);
  io.stderr.write(`diagnosing ${url} (watching for ${(windowMs / 1000).toFixed(1)} s or more)\n`);
  let diagnosis: Diagnosis;
  try {
    diagnosis = await diagnose(url, {
      observeMs: Math.round(options.diagnoseSeconds * 1000),
      keepaliveMaxMs: options.keepaliveMax,
      ...(options.origin !== undefined ? { origin: options.origin } : {}),
      ...(options.withCredentials ? { withCredentials: true } : {}),
      listenAction: options.action,
      ...(options.prefix !== undefined ? { prefix: options.prefix } : {}),
      probeAction: options.probeAction,
      ...(options.bearer !== undefined ? { bearer: options.bearer } : {}),
      ...(options.secret !== undefined ? { secret: options.secret } : {}),
      headers: options.header,
      ...(options.user !== undefined
        ? { username: options.user, password: options.password ?? '' }
        : {}),
      rejectUnauthorized: options.insecure !== true,
      ...(ca !== undefined ? { ca } : {}),
      ...(options.timeout !== undefined ? { connectTimeoutMs: options.timeout } : {}),
      signal: io.signal,
    });
  } catch (error) {
    if (io.signal.aborted) return signalExitCode(io.signal);
    if (error instanceof TypeError || error instanceof RangeError) {
      io.stderr.write(`error: ${error.message}\n`);
      return ExitCode.usage;
    }
    throw error;
  }
  io.stdout.write(options.json ? `${JSON.stringify(diagnosis)}\n` : formatReport(diagnosis));
  return diagnosis.verdict === 'fail' ? ExitCode.failure : ExitCode.ok;
}

/** Runs eventsource-client as the process (see bin/eventsource-client.js). */
export function main(): void {
  // undici parses HTTP with llhttp, compiled to WebAssembly when the first connection opens. Once
  // a response has been parsed, V8 recompiles llhttp's one huge function with its optimizing
  // compiler on a background thread: about 300 ms of CPU, which Node waits for before the process
  // can exit (`--count 1` exits that much later), and which takes a core from the event loop
  // meanwhile. On an event stream llhttp only frames the body (the bytes pass through as spans),
  // so the baseline code is enough: raise the tiering budget out of reach for this process. The
  // process is the CLI's own, and the flag is read when the module compiles, which is later.
  setFlagsFromString('--wasm-tiering-budget=2000000000');
  runMain(run);
}
