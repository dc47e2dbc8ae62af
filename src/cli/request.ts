/**
 * `eventsource-request`: send one event to a listener (or many with `--batch`) and print the reply.
 */
import { Command, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { debugRequest, enableDebug } from '../debug.js';
import { flattenError } from '../errors.js';
import {
  createRequestAgent,
  RequestError,
  RequestTimeoutError,
  sendRequest,
  type SendRequestOptions,
  type SendRequestResult,
} from '../request.js';
import {
  applyBooleanEnv,
  collectHeader,
  commanderExitCode,
  ExitCode,
  parsePort,
  parsePositiveInt,
  runMain,
  signalExitCode,
  version,
  type CliIo,
} from './options.js';

interface Flags {
  host: string;
  port: number;
  json?: boolean;
  prefix?: string;
  ssl?: boolean;
  verify?: boolean;
  user?: string;
  password?: string;
  url?: string;
  header?: [string, string][];
  secret?: string;
  bearer?: string;
  insecure?: boolean;
  ca?: string;
  timeout?: number;
  batch?: boolean;
  http2?: boolean;
  debug?: boolean;
}

const EXAMPLES = `
Examples:
  $ eventsource-request my-token ping 'hello'
  $ echo '{"n":1}' | eventsource-request -j my-token ping
  $ eventsource-request --url https://push.example.com/events --bearer "$TOKEN" my-token ping hi
  $ eventsource-request --http2 -S --ca ca.pem -P 8443 my-token ping hi
  $ printf '%s\\n' '{"token":"t","action":"ping","data":"a"}' | eventsource-request --batch

Exit codes: 0 sent (2xx), 1 HTTP error or unreachable, 2 usage or invalid data, 130/143 interrupted.`;

/**
 * Runs `eventsource-request` with the given arguments.
 * @param argv The arguments after the program name.
 * @param io The streams, environment and abort signal to use.
 * @returns The exit code.
 */
export async function run(argv: string[], io: CliIo): Promise<number> {
  const program = new Command('eventsource-request')
    .description('Send an event to an eventsource listener: POST data to /<action>/<token>.')
    .argument('[token]', 'the target token')
    .argument('[action]', 'the action, e.g. ping')
    .argument('[data]', 'the event data; "-" or absent with piped stdin reads stdin')
    .option('-H, --host <host>', 'listener host', '127.0.0.1')
    .option('-P, --port <port>', 'listener port', parsePort, 8888)
    .option('-j, --json', 'check that the data is JSON and send it as application/json')
    .option('-x, --prefix <prefix>', 'path prefix the listener serves under')
    .option('-S, --ssl', 'use https')
    .option('-V, --verify', 'validate certificates (the default; accepted for compatibility)')
    .option('-u, --user <user>', 'HTTP Basic user')
    .addOption(
      new Option('-p, --password <password>', 'HTTP Basic password (with -u)').env(
        'EVENTSOURCE_PASSWORD',
      ),
    )
    .option('--url <base>', 'base URL replacing scheme, host, port and prefix')
    .option('--header <header>', 'extra "Name: value" header (repeatable)', collectHeader)
    .addOption(
      new Option(
        '--bearer <token>',
        'send "Authorization: Bearer <token>": a JWT with a publish grant, or the publish secret',
      ).env('EVENTSOURCE_BEARER'),
    )
    .addOption(
      new Option('--secret <secret>', 'the older name of --bearer').env('EVENTSOURCE_SECRET'),
    )
    .option('--insecure', 'accept any TLS certificate')
    .option('--ca <file>', 'trust the CA certificates in this PEM file')
    .addOption(
      new Option(
        '--http2',
        'speak HTTP/2 when the server offers it over TLS (-S or an https --url); HTTP/1.1 otherwise',
      ).env('EVENTSOURCE_HTTP2'),
    )
    .option('--timeout <ms>', 'give up after this long without a response', parsePositiveInt)
    .option(
      '--batch',
      'read NDJSON {"token","action","data"} lines from stdin and send them in order',
    )
    .option('-d, --debug', 'log debugging output and stack traces to stderr')
    .version(version, '-v, --version')
    .addHelpText('after', EXAMPLES)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    });

  try {
    await program.parseAsync(argv, { from: 'user' });
    applyBooleanEnv(program, io.env);
  } catch (error) {
    const code = commanderExitCode(error);
    if (code !== undefined) return code;
    throw error;
  }
  const flags = program.opts<Flags>();
  const [token, action, data] = program.args as (string | undefined)[];
  const isDebug = Boolean(flags.debug || io.env.DEBUG);
  if (flags.debug) enableDebug();

  const usage = (message: string): number => {
    io.stderr.write(`error: ${message}\n`);
    return ExitCode.usage;
  };
  if (flags.batch) {
    if (token !== undefined)
      return usage('--batch reads token, action and data from stdin; give none as arguments');
  } else {
    if (token === undefined) return usage("missing required argument 'token'");
    if (action === undefined) return usage("missing required argument 'action'");
  }

  // Flags beat the environment; commander reads process.env, the io's env is the one to honour.
  const fromEnv = (
    name: 'password' | 'secret' | 'bearer',
    variable: string,
  ): string | undefined => {
    if (program.getOptionValueSource(name) === 'cli') return flags[name];
    return io.env[variable] || undefined;
  };
  const password = fromEnv('password', 'EVENTSOURCE_PASSWORD');
  const bearerFlag = program.getOptionValueSource('bearer') === 'cli';
  const secretFlag = program.getOptionValueSource('secret') === 'cli';
  if (bearerFlag && secretFlag) return usage('--secret is another name for --bearer: give one');
  // A flag beats either variable; of the two variables, the newer name wins.
  const secret = bearerFlag
    ? flags.bearer
    : secretFlag
      ? flags.secret
      : (fromEnv('bearer', 'EVENTSOURCE_BEARER') ?? fromEnv('secret', 'EVENTSOURCE_SECRET'));
  if (program.getOptionValueSource('password') === 'cli' && flags.user === undefined) {
    return usage('-p/--password is the HTTP Basic password: give -u/--user with it');
  }
  if (flags.user !== undefined && (bearerFlag || secretFlag)) {
    return usage(`use either -u/--user or --${bearerFlag ? 'bearer' : 'secret'}, not both`);
  }

  let ca: Buffer | undefined;
  if (flags.ca !== undefined) {
    try {
      ca = readFileSync(flags.ca);
    } catch (error) {
      return usage(`cannot read --ca file: ${flattenError(error)}`);
    }
  }

  const base: Omit<SendRequestOptions, 'token' | 'action'> = {
    signal: io.signal,
    ...(flags.json ? { json: true } : {}),
    ...(flags.header ? { headers: flags.header } : {}),
    ...(flags.user !== undefined ? { user: flags.user, password: password ?? '' } : {}),
    ...(flags.user === undefined && secret !== undefined ? { bearer: secret } : {}),
    ...(flags.timeout !== undefined ? { timeoutMs: flags.timeout } : {}),
  };
  if (flags.url !== undefined) {
    let url: URL;
    try {
      url = new URL(flags.url);
    } catch {
      return usage(`--url must be an http or https URL, got "${flags.url}"`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      return usage(`--url must be an http or https URL, got "${flags.url}"`);
    }
    base.url = flags.url;
  } else {
    base.host = flags.host;
    base.port = flags.port;
    if (flags.prefix !== undefined) base.prefix = flags.prefix;
    if (flags.ssl) base.ssl = true;
  }

  const agent = createRequestAgent({
    ...(ca ? { ca } : {}),
    ...(flags.insecure ? { insecure: true } : {}),
    ...(flags.http2 ? { http2: true } : {}),
    ...(flags.timeout !== undefined ? { connectTimeoutMs: flags.timeout } : {}),
    // One connection: a batch goes out in order over a single keep-alive socket.
    connections: 1,
  });
  base.dispatcher = agent;
  const context: Context = { io, isDebug, base };
  try {
    if (flags.batch) return await runBatch(context);
    return await runOne(context, token ?? '', action ?? '', data);
  } finally {
    // After an interruption the in-flight request is already aborted; do not wait on anything.
    if (io.signal.aborted) void agent.destroy();
    else await agent.close();
  }
}

interface Context {
  io: CliIo;
  isDebug: boolean;
  base: Omit<SendRequestOptions, 'token' | 'action'>;
}

async function runOne(
  { io, isDebug, base }: Context,
  token: string,
  action: string,
  data: string | undefined,
): Promise<number> {
  let body: string | Buffer | undefined = data;
  // Stdin is read when asked for with "-", or when no data is given and something is piped in;
  // never by surprise from a terminal.
  if (data === '-' || (data === undefined && !io.stdin.isTTY)) {
    debugRequest('reading the data from stdin');
    try {
      body = await readAll(io.stdin, io.signal);
    } catch (error) {
      if (io.signal.aborted) return signalExitCode(io.signal);
      throw error;
    }
  }
  if (base.json) {
    const text = body === undefined ? '' : body.toString();
    try {
      JSON.parse(text);
    } catch (error) {
      io.stderr.write(`Invalid JSON data, nothing sent: ${(error as Error).message}\n`);
      return ExitCode.usage;
    }
  }
  try {
    const result = await sendRequest({ ...base, token, action, data: body ?? '' });
    writeReply(io, result.body);
    io.stderr.write(`${deliveryNote(result)}\n`);
    return ExitCode.ok;
  } catch (error) {
    if (io.signal.aborted) return signalExitCode(io.signal);
    io.stderr.write(`${failureMessage(error)}\n`);
    if (isDebug) debugRequest('%O', error);
    return ExitCode.failure;
  }
}

/**
 * What became of a sent event, for the person at the terminal: `200` reached live subscribers
 * (how many, when the listener says), `202` is kept for a subscriber that reconnects in time.
 */
function deliveryNote({ status, reply }: SendRequestResult): string {
  if (status === 202) return 'kept for a reconnecting subscriber (202: none is connected now)';
  if (status !== 200) return `sent (${status})`;
  const count = reply?.subscribers;
  if (typeof count !== 'number') return 'delivered';
  return `delivered to ${count} subscriber${count === 1 ? '' : 's'}`;
}

/** One line per failure, as the original printed it. */
function failureMessage(error: unknown): string {
  if (error instanceof RequestError) return error.message + refusalHint(error);
  // Its cause is undici's "Headers Timeout Error", which adds nothing.
  if (error instanceof RequestTimeoutError) return `Unable to send request: ${error.message}`;
  const reason = flattenError(error);
  // As the client says it: nothing listens there, most often because the listener is not started.
  if (/\bECONNREFUSED\b/.test(reason)) {
    return `Unable to send request: ${reason} (is eventsource-listener running? Start it first)`;
  }
  return `Unable to send request: ${reason}`;
}

/** What to do about the listener's usual refusals, after its own words. */
function refusalHint(error: RequestError): string {
  if (error.status === 404 && error.serverMessage === 'Target is not connected') {
    return ' (nobody subscribes to this token now: start a subscriber first)';
  }
  if (error.status === 401)
    return ' (give the secret or a JWT with --bearer or EVENTSOURCE_BEARER)';
  return '';
}

function writeReply(io: CliIo, body: string): void {
  if (body === '') return;
  io.stdout.write(body.endsWith('\n') ? body : `${body}\n`);
}

/**
 * `--batch`: each non-blank stdin line is `{"token","action","data"}`. A string `data` is sent as
 * it is, any other JSON value JSON-encoded (application/json), a missing one as an empty body.
 * Sends wait for each other, so order is kept and nothing is sent after the first failure.
 */
async function runBatch({ io, isDebug, base }: Context): Promise<number> {
  const lines = createInterface({ input: io.stdin, crlfDelay: Infinity });
  const onAbort = (): void => lines.close();
  io.signal.addEventListener('abort', onAbort, { once: true });
  const started = performance.now();
  let sentCount = 0;
  let failedCount = 0;
  let lineNumber = 0;
  const summary = (): void => {
    const seconds = (performance.now() - started) / 1000;
    const rate = seconds > 0 ? Math.round(sentCount / seconds) : 0;
    io.stderr.write(`sent ${sentCount}, failed ${failedCount}, ${rate} events/s\n`);
  };
  try {
    for await (const line of lines) {
      lineNumber++;
      if (line.trim() === '') continue;
      const event = parseBatchLine(line);
      if (typeof event === 'string') {
        io.stderr.write(`line ${lineNumber}: ${event}\n`);
        summary();
        return ExitCode.usage;
      }
      try {
        const result = await sendRequest({ ...base, ...event });
        sentCount++;
        writeReply(io, result.body);
      } catch (error) {
        if (io.signal.aborted) break;
        if (error instanceof TypeError) {
          // Rejected before anything was sent (with -j, string data that is not JSON).
          io.stderr.write(`line ${lineNumber}: ${error.message}\n`);
          summary();
          return ExitCode.usage;
        }
        failedCount++;
        io.stderr.write(`line ${lineNumber}: ${failureMessage(error)}\n`);
        if (isDebug) debugRequest('%O', error);
        summary();
        return ExitCode.failure;
      }
    }
  } finally {
    io.signal.removeEventListener('abort', onAbort);
  }
  summary();
  return io.signal.aborted ? signalExitCode(io.signal) : ExitCode.ok;
}

/** The event on a batch line, or why it is malformed. */
function parseBatchLine(line: string): { token: string; action: string; data?: unknown } | string {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    return `not valid JSON: ${(error as Error).message}`;
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    return 'expected an object {"token","action","data"}';
  }
  const { token, action, data } = value as { token?: unknown; action?: unknown; data?: unknown };
  if (typeof token !== 'string' || token === '') return '"token" must be a non-empty string';
  if (typeof action !== 'string' || action === '') return '"action" must be a non-empty string';
  return data === undefined ? { token, action } : { token, action, data };
}

/** Reads a stream to its end, or rejects with the signal's reason when it fires first. */
function readAll(stream: CliIo['stdin'], signal: AbortSignal): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    const cleanup = (): void => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      signal.removeEventListener('abort', onAbort);
    };
    const onData = (chunk: Buffer | string): void => {
      chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks));
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(error);
    };
    const onAbort = (): void => {
      cleanup();
      stream.pause();
      reject(signal.reason);
    };
    if (signal.aborted) return onAbort();
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('error', onError);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Runs the CLI as the process (used by bin/eventsource-request.js). */
export function main(): void {
  runMain(run);
}
