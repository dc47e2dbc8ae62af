/**
 * `eventsource-listener`: runs the SSE listener as a small push hub.
 */
import { Command, Option } from 'commander';
import cluster from 'node:cluster';
import { servePrimaryGather, workerGather } from './cluster.js';
import type { ListenerStats } from '../listener/stats.js';
import { readFileSync } from 'node:fs';
import { enableDebug } from '../debug.js';
import { flattenError } from '../errors.js';
import { JSONEvent, JSONIdEvent, StringEvent, StringIdEvent, type EventClass } from '../events.js';
import { createListener } from '../listener/listener.js';
import { DEFAULTS, type ListenerOptions } from '../listener/options.js';
import { MIN_SECRET_BYTES, checkJwtOptions, type JwtOptions } from '../listener/auth.js';
import { normalizePrefix } from '../listener/routes.js';
import { createRedisBroker } from '../listener/redis/broker.js';
import {
  ExitCode,
  applyBooleanEnv,
  UsageError,
  collectString,
  commanderExitCode,
  parseBytes,
  parseNonNegativeInt,
  parsePort,
  parsePositiveInt,
  runMain,
  version,
  type CliIo,
} from './options.js';

interface ListenerFlags {
  host: string;
  port: number;
  debug?: boolean;
  json?: boolean;
  id?: boolean;
  keepalive: number;
  keyfile?: string;
  certfile?: string;
  multi?: boolean;
  takeover?: boolean;
  history: number;
  historyBytes: number;
  grace: number;
  gapEvent?: string;
  maxBuffer: number;
  maxBody: number;
  prefix?: string;
  cors?: string[];
  publishSecret?: string;
  jwtSecret?: string;
  jwtKey?: string;
  jwtIssuer?: string;
  jwtAudience?: string;
  jwtCookie: string;
  metrics?: boolean;
  presenceToken?: string;
  maxConnections?: number;
  maxMemory: number;
  demo?: boolean;
  redis?: string;
  redisWaitReplicas: number;
  redisWaitTimeout: number;
  workers?: number;
  fastPath?: boolean;
  http2?: boolean;
}

function buildCommand(io: CliIo): Command {
  const env = (name: string) => `EVENTSOURCE_${name}`;
  const command = new Command('eventsource-listener')
    .description(
      'Server-Sent Events listener: clients subscribe with GET /poll/<token>, publishers POST /<action>/<token>.',
    )
    .version(version, '-v, --version')

    .addHelpText(
      'after',
      `
Examples:
  eventsource-listener -P 8888 -i -k 50000
  eventsource-listener -H 127.0.0.1 -P 0 --multi --cors '*'
  eventsource-listener -i --takeover --gap-event gap --publish-secret s3cret

Subscribe: curl -N http://127.0.0.1:8888/poll/TOKEN
Publish:   curl -d 'hello' http://127.0.0.1:8888/ping/TOKEN

Exit codes:
  0  stopped by SIGINT or SIGTERM (every stream ended cleanly)
  1  cannot listen (address in use, permission) or a worker failed to start
  2  usage error (unknown flag, bad number, -K without -C)`,
    )
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    });
  for (const option of [
    ...serverOptions(env),
    ...streamOptions(env),
    ...accessOptions(env),
    ...operationOptions(env),
  ]) {
    command.addOption(option);
  }
  return command;
}

/** Where and how it listens, and what events look like. */
function serverOptions(env: (name: string) => string): Option[] {
  return [
    new Option('-H, --host <host>', 'host to bind on').default('0.0.0.0').env(env('HOST')),
    new Option('-P, --port <port>', 'port to bind on (0 picks a free one)')
      .default(8888)
      .argParser(parsePort)
      .env(env('PORT')),
    new Option('-d, --debug', 'enable debug output on stderr').env(env('DEBUG')),
    new Option('-j, --json', 'JSON events: bodies must be JSON, sent as compact JSON').env(
      env('JSON'),
    ),
    new Option('-i, --id', 'give every event an increasing id (enables replay and retry)').env(
      env('ID'),
    ),
    new Option('-k, --keepalive <ms>', 'keepalive comment interval on idle streams, 0 = off')
      .default(DEFAULTS.keepaliveMs)
      .argParser(parseNonNegativeInt)
      .env(env('KEEPALIVE')),
    new Option(
      '-K, --keyfile <file>',
      'TLS private key (PEM); with -C serves HTTPS, with HTTP/2 and HTTP/1.1 on one port',
    ).env(env('KEYFILE')),
    new Option('-C, --certfile <file>', 'TLS certificate (PEM); with -K serves HTTPS').env(
      env('CERTFILE'),
    ),
    new Option('--prefix <path>', 'mount every route under /<path>/').env(env('PREFIX')),
    new Option(
      '--no-fast-path',
      'leave every request to node:http (by default simple POSTs are read by a faster front)',
    ).env(env('NO_FAST_PATH')),
    new Option(
      '--no-http2',
      'with -K/-C, offer HTTP/1.1 only (by default HTTP/2 too, chosen by ALPN)',
    ).env(env('NO_HTTP2')),
  ];
}

/** Streams and their tokens: sharing, history, limits. */
function streamOptions(env: (name: string) => string): Option[] {
  return [
    new Option('--multi', 'any number of subscribers share a token, each gets every event')
      .conflicts('takeover')
      .env(env('MULTI')),
    new Option('--takeover', 'the newest subscriber of a token replaces the old one').env(
      env('TAKEOVER'),
    ),
    new Option('--history <n>', 'events kept per token for replay after Last-Event-ID')
      .default(DEFAULTS.history)
      .argParser(parseNonNegativeInt)
      .env(env('HISTORY')),
    new Option('--history-bytes <bytes>', 'bytes kept per token for replay (k/m/g suffixes)')
      .default(DEFAULTS.historyBytes, '8m')
      .argParser(parseBytes)
      .env(env('HISTORY_BYTES')),
    new Option('--grace <ms>', 'how long a token and its history outlive its last subscriber')
      .default(DEFAULTS.graceMs)
      .argParser(parseNonNegativeInt)
      .env(env('GRACE')),
    new Option('--gap-event <name>', 'also signal a replay gap with an event of this type').env(
      env('GAP_EVENT'),
    ),
    new Option('--max-buffer <bytes>', 'bytes waiting for one subscriber before it is cut off')
      .default(DEFAULTS.maxBuffer, '1m')
      .argParser(parseBytes)
      .env(env('MAX_BUFFER')),
    new Option('--max-body <bytes>', 'largest POST body (413 above)')
      .default(DEFAULTS.maxBody, '1m')
      .argParser(parseBytes)
      .env(env('MAX_BODY')),
    new Option('--max-connections <n>', 'open streams allowed at once (503 above)')
      .argParser(parsePositiveInt)
      .env(env('MAX_CONNECTIONS')),
    new Option(
      '--max-memory <bytes>',
      'bytes for all history plus events waiting for slow readers: oldest history goes first, then POSTs get 503 (0 = no bound)',
    )
      .default(DEFAULTS.maxMemory, '256m')
      .argParser(parseBytes)
      .env(env('MAX_MEMORY')),
  ];
}

/** Who may read and write: CORS, the publish secret, JWT grants. */
function accessOptions(env: (name: string) => string): Option[] {
  return [
    new Option(
      '--cors <origin>',
      'allow this origin, with credentials (repeatable; * for any origin, without credentials)',
    )
      .argParser(collectString)
      .env(env('CORS')),
    new Option(
      '--publish-secret <secret>',
      'POST and /stats need "Authorization: Bearer <secret>" (else 401)',
    ).env(env('PUBLISH_SECRET')),
    new Option(
      '--jwt-secret <secret>',
      'streams, POSTs and /stats need a JWT granting them, signed with this HMAC secret (HS256/384/512, 32+ bytes)',
    ).env(env('JWT_SECRET')),
    new Option(
      '--jwt-key <file>',
      'the same with a public key: a PEM file or a JWKS JSON file (RS256, PS256, ES256, EdDSA)',
    ).env(env('JWT_KEY')),
    new Option('--jwt-issuer <iss>', 'JWTs must have this issuer (iss)').env(env('JWT_ISSUER')),
    new Option('--jwt-audience <aud>', 'JWTs must have this audience (aud)').env(
      env('JWT_AUDIENCE'),
    ),
    new Option('--jwt-cookie <name>', 'the cookie a JWT is read from')
      .default('eventsource_access_token')
      .env(env('JWT_COOKIE')),
  ];
}

/** Running it: the demo page, metrics, presence, Redis and workers. */
function operationOptions(env: (name: string) => string): Option[] {
  return [
    new Option('--demo', 'serve a demo page at / to watch and send events').env(env('DEMO')),
    new Option(
      '--metrics',
      'serve GET /metrics in the Prometheus text format (same access rule as /stats)',
    ).env(env('METRICS')),
    new Option(
      '--presence-token <token>',
      'publish a join or leave event {"token","subscribers"} to this token whenever a stream opens or closes',
    ).env(env('PRESENCE_TOKEN')),
    new Option(
      '--redis <url>',
      'share tokens, history and ids with every listener on this Redis (redis://host:port/db, or redis+sentinel://host:port,host:port/<master-name>)',
    ).env(env('REDIS')),
    new Option(
      '--redis-wait-replicas <n>',
      'answer a POST 2xx only once n Redis replicas have its event (503 when they do not in time)',
    )
      .default(0)
      .argParser(parseNonNegativeInt)
      .env(env('REDIS_WAIT_REPLICAS')),
    new Option('--redis-wait-timeout <ms>', 'longest wait for --redis-wait-replicas')
      .default(2000)
      .argParser(parsePositiveInt)
      .env(env('REDIS_WAIT_TIMEOUT')),
    new Option('--workers <n>', 'fork n worker processes sharing the port (needs --redis)')
      .argParser(parsePositiveInt)
      .env(env('WORKERS')),
  ];
}

function pickClass(flags: ListenerFlags): EventClass {
  if (flags.json) return flags.id ? JSONIdEvent : JSONEvent;
  return flags.id ? StringIdEvent : StringEvent;
}

/**
 * Runs the listener until SIGINT/SIGTERM.
 * @returns The exit code.
 */
export async function run(argv: string[], io: CliIo): Promise<number> {
  const command = buildCommand(io);
  let flags: ListenerFlags;
  try {
    command.parse(argv, { from: 'user' });
    applyBooleanEnv(command, process.env);
    flags = command.opts<ListenerFlags>();
    if ((flags.keyfile === undefined) !== (flags.certfile === undefined)) {
      throw new UsageError('-K/--keyfile and -C/--certfile go together: give both to serve HTTPS');
    }
    if (flags.jwtSecret !== undefined && flags.jwtKey !== undefined) {
      throw new UsageError('--jwt-secret and --jwt-key do not go together: give one');
    }
    if (flags.jwtSecret !== undefined && Buffer.byteLength(flags.jwtSecret) < MIN_SECRET_BYTES) {
      throw new UsageError(
        `--jwt-secret must be at least ${MIN_SECRET_BYTES} bytes (got ${Buffer.byteLength(flags.jwtSecret)}): use a long random string`,
      );
    }
    if (flags.workers !== undefined && flags.redis === undefined) {
      throw new UsageError('--workers needs --redis: the workers share their tokens through Redis');
    }
  } catch (error) {
    const code = commanderExitCode(error);
    if (code !== undefined) return code;
    io.stderr.write(`eventsource-listener: ${(error as Error).message}\n`);
    return ExitCode.usage;
  }
  if (flags.debug) enableDebug();
  const eventClass = pickClass(flags);
  let tls: ListenerOptions['tls'];
  if (flags.keyfile !== undefined && flags.certfile !== undefined) {
    try {
      tls = { key: readFileSync(flags.keyfile), cert: readFileSync(flags.certfile) };
    } catch (error) {
      io.stderr.write(`eventsource-listener: cannot read TLS files: ${flattenError(error)}\n`);
      return ExitCode.usage;
    }
  }
  let jwt: JwtOptions | undefined;
  try {
    jwt = readJwtOptions(flags);
  } catch (error) {
    io.stderr.write(`eventsource-listener: ${flattenError(error)}\n`);
    return ExitCode.usage;
  }
  if (flags.workers !== undefined && cluster.isPrimary) {
    return runPrimary(
      flags.workers,
      io,
      `${eventClass.name}${describeOptions(flags)}`,
      flags.metrics === true,
    );
  }
  const mode = flags.multi ? 'multi' : flags.takeover ? 'takeover' : 'single';
  const brokerOptions = {
    mode,
    history: flags.history,
    historyBytes: flags.historyBytes,
    graceMs: flags.grace,
    gapEvent: flags.gapEvent,
  } as const;
  let broker;
  try {
    broker =
      flags.redis === undefined
        ? undefined
        : await createRedisBroker(flags.redis, {
            ...brokerOptions,
            waitReplicas: flags.redisWaitReplicas,
            waitTimeoutMs: flags.redisWaitTimeout,
          });
  } catch (error) {
    io.stderr.write(`eventsource-listener: --redis: ${flattenError(error)}\n`);
    return ExitCode.usage;
  }
  if (broker !== undefined && broker.status !== 'ready') {
    io.stderr.write(
      `eventsource-listener: Redis is not reachable yet (${broker.stats().redisLastError || broker.status}); POSTs get 503 until it is\n`,
    );
  }
  let listener: ReturnType<typeof createListener> | undefined;
  try {
    listener = createListener({
      ...(broker === undefined ? brokerOptions : { broker }),
      eventClass,
      keepalive: flags.keepalive,
      // The CLI owns its process: it may force collections to give large bodies' memory back.
      reclaimBodies: true,
      maxBuffer: flags.maxBuffer,
      maxBody: flags.maxBody,
      maxMemory: flags.maxMemory,
      prefix: flags.prefix,
      cors: flags.cors,
      publishSecret: flags.publishSecret,
      jwt,
      metrics: flags.metrics,
      // A worker's /metrics and /stats speak for every worker.
      ...(cluster.isWorker
        ? { gather: workerGather(() => listener?.stats() as ListenerStats) }
        : {}),
      presenceToken: flags.presenceToken,
      maxConnections: flags.maxConnections,
      demo: flags.demo,
      fastPath: flags.fastPath,
      http2: flags.http2,
      tls,
    });
  } catch (error) {
    io.stderr.write(`eventsource-listener: ${flattenError(error)}\n`);
    return ExitCode.usage;
  }
  let url: string;
  try {
    url = await listener.listen(flags.port, flags.host);
  } catch (error) {
    io.stderr.write(
      `eventsource-listener: cannot listen on ${flags.host}:${flags.port}: ${flattenError(error)}\n`,
    );
    await listener.close();
    return ExitCode.failure;
  }
  // A worker tells the primary, which prints the one line once every worker listens.
  if (cluster.isWorker) process.send?.({ listening: url });
  else io.stderr.write(`listening on ${url} (${eventClass.name}${describeOptions(flags)})\n`);
  if (!io.signal.aborted)
    await new Promise((resolve) => io.signal.addEventListener('abort', resolve, { once: true }));
  await listener.close();
  // The IPC channel would keep a worker alive.
  if (cluster.isWorker) process.disconnect();
  return ExitCode.ok;
}

/**
 * The JWT options of the flags, with the key file read: a JWKS when it is JSON, else PEM.
 * @throws Error naming the file when it cannot be read or is not a key.
 */
function readJwtOptions(flags: ListenerFlags): JwtOptions | undefined {
  if (flags.jwtSecret === undefined && flags.jwtKey === undefined) return undefined;
  let key: JwtOptions['key'];
  if (flags.jwtKey !== undefined) {
    let text: string;
    try {
      text = readFileSync(flags.jwtKey, 'utf8');
    } catch (error) {
      throw new Error(`cannot read --jwt-key file: ${flattenError(error)}`, { cause: error });
    }
    try {
      key = text.trimStart().startsWith('{') ? (JSON.parse(text) as { keys: object[] }) : text;
    } catch (error) {
      throw new Error(`--jwt-key file ${flags.jwtKey} is not valid JSON: ${flattenError(error)}`, {
        cause: error,
      });
    }
  }
  const jwt: JwtOptions = {
    secret: flags.jwtSecret,
    key,
    issuer: flags.jwtIssuer,
    audience: flags.jwtAudience,
    cookie: flags.jwtCookie,
  };
  try {
    checkJwtOptions(jwt);
  } catch (error) {
    throw new Error(`--jwt-key ${flags.jwtKey ?? ''}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return jwt;
}

/** The options that differ from the defaults, for the start-up line. */
function describeOptions(flags: ListenerFlags): string {
  const parts: string[] = [];
  if (flags.keepalive !== DEFAULTS.keepaliveMs)
    parts.push(flags.keepalive === 0 ? 'keepalive off' : `keepalive ${flags.keepalive} ms`);
  if (flags.multi) parts.push('multi');
  if (flags.takeover) parts.push('takeover');
  if (flags.history !== DEFAULTS.history) parts.push(`history ${flags.history}`);
  if (flags.historyBytes !== DEFAULTS.historyBytes)
    parts.push(`history-bytes ${flags.historyBytes}`);
  if (flags.grace !== DEFAULTS.graceMs) parts.push(`grace ${flags.grace} ms`);
  if (flags.gapEvent !== undefined) parts.push(`gap-event ${flags.gapEvent}`);
  if (flags.maxBuffer !== DEFAULTS.maxBuffer) parts.push(`max-buffer ${flags.maxBuffer}`);
  if (flags.maxBody !== DEFAULTS.maxBody) parts.push(`max-body ${flags.maxBody}`);
  if (flags.cors !== undefined) parts.push(`cors ${flags.cors.join(' ')}`);
  if (flags.publishSecret !== undefined) parts.push('publish-secret set');
  if (flags.jwtSecret !== undefined || flags.jwtKey !== undefined) parts.push('JWT auth');
  if (flags.metrics) parts.push('metrics at /metrics');
  if (flags.presenceToken !== undefined) parts.push(`presence on ${flags.presenceToken}`);
  if (flags.maxConnections !== undefined) parts.push(`max-connections ${flags.maxConnections}`);
  if (flags.maxMemory !== DEFAULTS.maxMemory) parts.push(`max-memory ${flags.maxMemory}`);
  if (flags.demo) parts.push(`demo page at ${normalizePrefix(flags.prefix)}/`);
  if (flags.redis !== undefined)
    parts.push(`redis ${flags.redis.replace(/\/\/[^@/]*@/, '//***@')}`);
  if (flags.redisWaitReplicas > 0)
    parts.push(`redis-wait-replicas ${flags.redisWaitReplicas} (${flags.redisWaitTimeout} ms)`);
  if (flags.workers !== undefined) parts.push(`workers ${flags.workers}`);
  if (flags.fastPath === false) parts.push('no fast path');
  if (flags.http2 === false && flags.keyfile !== undefined) parts.push('HTTP/1.1 only');
  return parts.length === 0 ? '' : `; ${parts.join(', ')}`;
}

/**
 * The primary of `--workers n`: forks the workers (the same command line; they share the port
 * through node:cluster, so `-P 0` gives them one port), prints the line once all listen, passes
 * SIGINT/SIGTERM on and exits when they are done. A worker that dies is replaced.
 * @returns The exit code.
 */
async function runPrimary(
  count: number,
  io: CliIo,
  description: string,
  hasMetrics: boolean,
): Promise<number> {
  servePrimaryGather(hasMetrics);
  let isStopping = false;
  let url: string | undefined;
  const listening = new Set<number>();
  const exited = new Set<number>();
  let failure = '';
  const fork = (): void => {
    const worker = cluster.fork();
    worker.on('message', (message: { listening?: string }) => {
      if (typeof message?.listening !== 'string') return;
      url = message.listening;
      listening.add(worker.id);
    });
    worker.on('exit', (code, signal) => {
      exited.add(worker.id);
      if (isStopping) return;
      if (!listening.has(worker.id)) {
        failure = `a worker exited (${signal ?? code}) before listening`;
        return;
      }
      io.stderr.write(
        `eventsource-listener: worker ${worker.process.pid} died (${signal ?? code}); starting another\n`,
      );
      fork();
    });
  };
  for (let i = 0; i < count; i++) fork();
  const allExited = async (): Promise<void> => {
    while (Object.keys(cluster.workers ?? {}).length > 0) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  const stop = async (): Promise<void> => {
    isStopping = true;
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
    const timer = setTimeout(() => {
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGKILL');
    }, 5000);
    await allExited();
    clearTimeout(timer);
  };
  while (listening.size < count && failure === '' && !io.signal.aborted) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  if (failure !== '') {
    await stop();
    io.stderr.write(`eventsource-listener: ${failure}\n`);
    return ExitCode.failure;
  }
  if (!io.signal.aborted) {
    io.stderr.write(`listening on ${url} (${description})\n`);
    await new Promise((resolve) => io.signal.addEventListener('abort', resolve, { once: true }));
  }
  let isClean = true;
  cluster.on('exit', (_worker, code) => {
    if (code !== 0) isClean = false;
  });
  await stop();
  return isClean ? ExitCode.ok : ExitCode.failure;
}

/** Entry point of bin/eventsource-listener.js. */
export function main(): void {
  runMain(run);
}
