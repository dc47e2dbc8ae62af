/**
 * `diagnose()`: connects to an SSE endpoint as a browser would, watches the stream for a while and
 * says what stands between it and a working `EventSource` in production: buffering proxies,
 * compression, caching headers, missing keepalives, HTTP/1.1's six streams per origin, CORS,
 * `Last-Event-ID` resumption.
 *
 * An eventsource-listener stream (a path ending in `/<listen action>/<token>`) is probed: the
 * diagnosis publishes its own events to `/<probe action>/<token>` and times their arrival, which
 * proves or disproves buffering in a second or two. Any other URL is observed passively.
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html
 */
import { randomUUID } from 'node:crypto';
import { sendRequest } from '../request.js';
import { flattenError } from '../errors.js';
import { debugClient as debug } from '../debug.js';
import { normalizePrefix } from '../listener/routes.js';
import { createHeaders, parseUrl } from './options.js';
import {
  evaluateChecks,
  type Diagnosis,
  type DiagnosisFacts,
  type Probe,
  type ProbeFacts,
  type ResumeFacts,
} from './diagnose-checks.js';
import {
  createDiagnoseAgent,
  openStream,
  type DiagnoseAgent,
  type ObservedEvent,
  type OpenStream,
  type StreamObservation,
} from './diagnose-stream.js';

export {
  DIAGNOSIS_CHECKS,
  type Diagnosis,
  type DiagnosisCheck,
  type DiagnosisCheckId,
  type DiagnosisStatus,
} from './diagnose-checks.js';

/** Options for {@link diagnose}. */
export interface DiagnoseOptions {
  /**
   * How long to watch the stream from its response head, in milliseconds; the window is at least
   * `keepaliveMaxMs` + 500 so that a missing keepalive shows. Defaults to `20000`.
   */
  observeMs?: number | undefined;
  /** The longest silence (not a byte) a stream may have before `keepalive` warns. Defaults to `45000`. */
  keepaliveMaxMs?: number | undefined;
  /** The page's origin: sent as `Origin`, and `cors` checks the answer against it. Defaults to none (`cors` skipped). */
  origin?: string | undefined;
  /**
   * Check CORS as for `new EventSource(url, { withCredentials: true })`: exactly `origin` and
   * `Access-Control-Allow-Credentials: true`. Defaults to `true` when a `Cookie` header is sent.
   */
  withCredentials?: boolean | undefined;
  /** The GET action of an eventsource-listener stream, which turns probing on. Defaults to `poll`. */
  listenAction?: string | undefined;
  /** The listener's prefix: when given, probing needs the path to be `<prefix>/<listen action>/<token>`. Defaults to any. */
  prefix?: string | undefined;
  /** The action the probe events are POSTed to. Defaults to `ping`. */
  probeAction?: string | undefined;
  /** `Authorization: Bearer <bearer>` on the stream's requests, and on the probes unless `secret` is given. */
  bearer?: string | undefined;
  /** The listener's publish secret, sent as `Authorization: Bearer <secret>` on the probe POSTs. Defaults to `bearer`. */
  secret?: string | undefined;
  /** Extra request headers for the stream. Defaults to none. */
  headers?: Record<string, string> | Iterable<readonly [string, string]> | undefined;
  /** User name for HTTP basic authentication on the stream. Defaults to none (or the URL's user info). */
  username?: string | undefined;
  /** Password for HTTP basic authentication (with `username`). Defaults to `''`. */
  password?: string | undefined;
  /** Validate the server's TLS certificate. Defaults to `true`. */
  rejectUnauthorized?: boolean | undefined;
  /** Certificate authorities to trust instead of Node's bundled ones (PEM). Defaults to none. */
  ca?: string | Buffer | (string | Buffer)[] | undefined;
  /** How long connecting may take. Defaults to `10000`. */
  connectTimeoutMs?: number | undefined;
  /** How many redirects the stream's GET follows. Defaults to `20`, as EventSource. */
  maxRedirections?: number | undefined;
  /** Stops the diagnosis: the promise rejects with the signal's reason. */
  signal?: AbortSignal | undefined;
}

interface ResolvedDiagnoseOptions {
  url: string;
  observeMs: number;
  resumeWindowMs: number;
  keepaliveMaxMs: number;
  origin: string | undefined;
  withCredentials: boolean;
  headers: Record<string, string>;
  probeTarget: { base: string; token: string } | undefined;
  probeAction: string;
  listenAction: string;
  probeSecret: string | undefined;
  rejectUnauthorized: boolean;
  ca: DiagnoseOptions['ca'];
  connectTimeoutMs: number;
  maxRedirections: number;
  signal: AbortSignal | undefined;
}

// When the probes are posted, from the response head: each at least 300 ms from the next, so
// that a buffering proxy delivers at least two of them in one read.
const PROBE_SCHEDULE_MS = [0, 400, 800];
const PROBE_TIMEOUT_MS = 5000;
// A 423 (the listener has not yet seen the old stream go) is retried this often, this long.
const LOCKED_RETRY_MS = 200;
const LOCKED_GIVE_UP_MS = 3000;
const POLL_MS = 20;

/**
 * Diagnoses an SSE endpoint: connects as a browser's `EventSource` would (`Accept:
 * text/event-stream`, `Cache-Control: no-cache`, `Accept-Encoding: gzip, deflate, br`, `Origin`
 * when given, redirects followed, HTTP/2 offered by ALPN), watches the stream, reconnects once
 * with `Last-Event-ID`, and judges each check of {@link DIAGNOSIS_CHECKS}.
 *
 * ```ts
 * const { verdict, checks } = await diagnose('https://push.example.com/poll/health', { observeMs: 5000 });
 * ```
 * @param url The stream's URL (http or https).
 * @param options See {@link DiagnoseOptions}.
 * @returns The report: every check in order, and the verdict (the worst status, skip counting as pass).
 *   An unreachable server is a report too (`connect` fails), not a rejection.
 * @throws TypeError for a URL that is not http(s) or a bad option; RangeError for a number out of range.
 */
export async function diagnose(
  url: string | URL,
  options: DiagnoseOptions = {},
): Promise<Diagnosis> {
  const resolved = resolveDiagnoseOptions(url, options);
  const agent = createDiagnoseAgent(resolved);
  try {
    return await run(resolved, agent);
  } finally {
    await agent.agent.destroy();
  }
}

function resolveDiagnoseOptions(
  url: string | URL,
  options: DiagnoseOptions,
): ResolvedDiagnoseOptions {
  const { parsed, username, password } = parseUrl(url, options.username, options.password);
  const observeMs = checkMs(options.observeMs, 'observeMs', 20000, 1);
  const keepaliveMaxMs = checkMs(options.keepaliveMaxMs, 'keepaliveMaxMs', 45000, 1);
  const origin = options.origin;
  if (
    origin !== undefined &&
    (typeof origin !== 'string' || /[\r\n\0]/.test(origin) || origin === '')
  ) {
    throw new TypeError(
      `\`origin\` must be an origin such as "https://app.example", got ${JSON.stringify(origin)}`,
    );
  }
  const headers = createHeaders(options.headers, username, password, options.bearer);
  // What a browser's EventSource sends besides Accept and Cache-Control.
  headers['accept-encoding'] ??= 'gzip, deflate, br';
  if (origin !== undefined) headers.origin = origin;
  const listenAction = checkName(options.listenAction, 'listenAction', 'poll');
  const probeAction = checkName(options.probeAction, 'probeAction', 'ping');
  return {
    url: parsed.href,
    observeMs,
    resumeWindowMs: Math.min(5000, Math.max(1000, Math.round(observeMs / 2))),
    keepaliveMaxMs,
    origin,
    withCredentials: options.withCredentials ?? headers.cookie !== undefined,
    headers,
    probeTarget: findProbeTarget(parsed, listenAction, options.prefix),
    probeAction,
    listenAction,
    probeSecret: options.secret ?? options.bearer,
    rejectUnauthorized: options.rejectUnauthorized ?? true,
    ca: options.ca,
    connectTimeoutMs: checkMs(options.connectTimeoutMs, 'connectTimeoutMs', 10000, 0),
    maxRedirections: checkMs(options.maxRedirections, 'maxRedirections', 20, 0),
    signal: options.signal,
  };
}

function checkMs(value: number | undefined, name: string, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min) {
    throw new RangeError(`\`${name}\` must be an integer of at least ${min}, got ${value}`);
  }
  return value;
}

function checkName(value: string | undefined, name: string, fallback: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || value === '' || value.includes('/')) {
    throw new TypeError(
      `\`${name}\` must be a non-empty action name, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

// An eventsource-listener stream: `[<prefix>]/<listen action>/<token>`. The probes then go to
// `[<prefix>]/<probe action>/<token>` on the same origin.
function findProbeTarget(
  url: URL,
  listenAction: string,
  prefix: string | undefined,
): { base: string; token: string } | undefined {
  const segments = url.pathname.split('/');
  if (segments.length < 3) return undefined;
  const rawToken = segments.at(-1) ?? '';
  const rawAction = segments.at(-2) ?? '';
  const basePath = segments.slice(0, -2).join('/');
  if (rawToken === '' || (prefix !== undefined && normalizePrefix(prefix) !== basePath))
    return undefined;
  try {
    if (decodeURIComponent(rawAction) !== listenAction) return undefined;
    return { base: `${url.origin}${basePath}`, token: decodeURIComponent(rawToken) };
  } catch {
    return undefined;
  }
}

async function run(options: ResolvedDiagnoseOptions, agent: DiagnoseAgent): Promise<Diagnosis> {
  const nonce = randomUUID().slice(0, 8);
  const probeMark = new RegExp(`"diagnose":"${nonce}-(\\w+)"`);
  const facts: DiagnosisFacts = {
    url: options.url,
    isInsecure: !options.rejectUnauthorized,
    keepaliveMaxMs: options.keepaliveMaxMs,
    observedUntil: Date.now(),
    origin: options.origin,
    withCredentials: options.withCredentials,
    connectError: undefined,
    connection: undefined,
    response: undefined,
    stream: undefined,
    probes: { mode: 'passive', reason: 'not observed' },
    resume: { kind: 'skipped', reason: 'not observed' },
  };
  debug('diagnose: %s', options.url);
  const answer = await openStream(options.url, {
    dispatcher: agent.streamDispatcher,
    headers: options.headers,
    lastEventId: '',
    signal: options.signal,
  });
  options.signal?.throwIfAborted();
  facts.connection = agent.lastConnection;
  if (answer.kind === 'error') {
    facts.connectError = answer.error;
    return evaluateChecks(facts);
  }
  facts.response = answer;
  const stream = answer.stream;
  if (stream === undefined) return evaluateChecks(facts);
  facts.stream = stream.observation;
  try {
    facts.probes = await observe(options, agent, stream, nonce, probeMark);
    facts.observedUntil = Date.now();
    stream.close();
    facts.resume = await resume(options, agent, stream.observation, facts.probes, nonce, probeMark);
  } finally {
    stream.close();
  }
  return evaluateChecks(facts);
}

// Watches the first stream for the window, posting the probes in probe mode.
async function observe(
  options: ResolvedDiagnoseOptions,
  agent: DiagnoseAgent,
  stream: OpenStream,
  nonce: string,
  probeMark: RegExp,
): Promise<ProbeFacts> {
  const { observation } = stream;
  const target = options.probeTarget;
  const probes: Probe[] = [];
  let facts: ProbeFacts = target
    ? { mode: 'probe', probes }
    : {
        mode: 'passive',
        reason: `passive mode: the URL is not an eventsource-listener stream (…/${options.listenAction}/<token>), so no probe events could be timed`,
      };
  // Our probes are bytes on the wire too, and a listener defers its keepalive after them: in
  // probe mode the window grows by the probes' span, so that a whole `keepaliveMaxMs` + 0.5 s
  // of the server's own silence still fits after the last probe.
  const probeSpanMs = target !== undefined ? (PROBE_SCHEDULE_MS.at(-1) as number) : 0;
  const end =
    observation.headAt + Math.max(options.observeMs, probeSpanMs + options.keepaliveMaxMs + 500);
  const cursor = { next: 0 };
  const postings: Promise<void>[] = [];
  while (Date.now() < end && observation.endedAt === undefined) {
    const dueMs = PROBE_SCHEDULE_MS[probes.length];
    if (
      facts.mode === 'probe' &&
      target !== undefined &&
      dueMs !== undefined &&
      Date.now() >= observation.headAt + dueMs
    ) {
      const probe: Probe = {
        n: probes.length + 1,
        postedAt: Date.now(),
        arrivedAt: undefined,
        read: undefined,
      };
      probes.push(probe);
      postings.push(
        postProbe(options, agent, target, `${nonce}-${probe.n}`).then((failure) => {
          if (failure !== undefined && facts.mode === 'probe') {
            facts = { mode: 'passive', reason: `passive mode: ${failure}` };
          }
        }),
      );
    }
    matchProbes(observation, probes, probeMark, cursor);
    await sleep(POLL_MS, options.signal);
  }
  await Promise.all(postings);
  matchProbes(observation, probes, probeMark, cursor);
  if (facts.mode === 'passive') {
    const seconds = ((Date.now() - observation.headAt) / 1000).toFixed(1);
    facts = {
      mode: 'passive',
      reason: `${facts.reason}; ${observation.events.length} event(s) arrived in ${seconds} s`,
    };
  }
  return facts;
}

// Notes the arrival of the probes among the events that came since the last call.
function matchProbes(
  observation: StreamObservation,
  probes: Probe[],
  probeMark: RegExp,
  cursor: { next: number },
): void {
  const { events } = observation;
  for (; cursor.next < events.length; cursor.next++) {
    const event = events[cursor.next] as ObservedEvent;
    const n = probeMark.exec(event.data)?.[1];
    const probe = probes.find((p) => String(p.n) === n);
    if (probe !== undefined && probe.arrivedAt === undefined) {
      probe.arrivedAt = event.at;
      probe.read = event.read;
    }
  }
}

// Posts one probe event; resolves with why it failed, or undefined when it was taken (2xx).
async function postProbe(
  options: ResolvedDiagnoseOptions,
  agent: DiagnoseAgent,
  target: { base: string; token: string },
  mark: string,
): Promise<string | undefined> {
  const where = `${target.base}/${options.probeAction}/…`;
  try {
    const result = await sendRequest({
      url: target.base,
      action: options.probeAction,
      token: target.token,
      data: JSON.stringify({ diagnose: mark }),
      json: true,
      dispatcher: agent.agent,
      timeoutMs: PROBE_TIMEOUT_MS,
      ...(options.probeSecret !== undefined ? { secret: options.probeSecret } : {}),
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
    });
    debug('diagnose: probe %s answered %d', mark, result.status);
    return undefined;
  } catch (error) {
    // Never a rejection, not even on abort: the caller's wait notices the abort by itself.
    debug('diagnose: probe %s failed: %O', mark, error);
    return `the probe POST to ${where} failed (${flattenError(error)}), so buffering could not be timed`;
  }
}

// Reconnects once with the last event ID seen, after posting a probe while away (probe mode),
// and watches what comes.
async function resume(
  options: ResolvedDiagnoseOptions,
  agent: DiagnoseAgent,
  first: StreamObservation,
  probes: ProbeFacts,
  nonce: string,
  probeMark: RegExp,
): Promise<ResumeFacts> {
  const lastEventId = first.lastEventId;
  if (lastEventId === '') return { kind: 'skipped', reason: 'the stream carried no ids' };
  const target = probes.mode === 'probe' ? options.probeTarget : undefined;
  let isMissedProbePosted = false;
  if (target !== undefined) {
    // Posted while nobody listens: a listener keeps it (202) for the Last-Event-ID replay.
    isMissedProbePosted = (await postProbe(options, agent, target, `${nonce}-away`)) === undefined;
  }
  const received = new Set(
    first.events.filter((e) => e.id !== '').map((e) => `${e.id}\n${e.event}\n${e.data}`),
  );
  const startedAt = Date.now();
  let lockedCount = 0;
  let stream: OpenStream | undefined;
  for (;;) {
    const answer = await openStream(options.url, {
      dispatcher: agent.streamDispatcher,
      headers: options.headers,
      lastEventId,
      signal: options.signal,
    });
    options.signal?.throwIfAborted();
    if (answer.kind === 'error') {
      return { kind: 'skipped', reason: `reconnecting failed: ${flattenError(answer.error)}` };
    }
    if (
      answer.kind === 'response' &&
      answer.status === 423 &&
      Date.now() - startedAt < LOCKED_GIVE_UP_MS
    ) {
      lockedCount++;
      await sleep(LOCKED_RETRY_MS, options.signal);
      continue;
    }
    if (answer.stream === undefined) {
      return {
        kind: 'skipped',
        reason: `reconnecting with Last-Event-ID ${JSON.stringify(lastEventId)} answered ${answer.status}${answer.message ? `: ${answer.message}` : ''}`,
      };
    }
    stream = answer.stream;
    break;
  }
  try {
    const { observation } = stream;
    const end = observation.headAt + options.resumeWindowMs;
    const isMissedProbe = (data: string): boolean => probeMark.exec(data)?.[1] === 'away';
    let settleUntil: number | undefined;
    while (Date.now() < (settleUntil ?? end) && observation.endedAt === undefined) {
      if (settleUntil === undefined) {
        // Probe mode waits for the missed probe; passive mode for the first event. Then a moment
        // more, in case repeats follow.
        const isDone = isMissedProbePosted
          ? observation.events.some((e) => isMissedProbe(e.data))
          : observation.events.length > 0;
        if (isDone) settleUntil = Math.min(end, Date.now() + 300);
      }
      await sleep(POLL_MS, options.signal);
    }
    const repeatedIds: string[] = [];
    let newCount = 0;
    for (const event of observation.events) {
      if (received.has(`${event.id}\n${event.event}\n${event.data}`)) repeatedIds.push(event.id);
      else newCount++;
    }
    return {
      kind: 'done',
      lastEventId,
      repeatedIds,
      newCount,
      hasMissedProbe: isMissedProbePosted
        ? observation.events.some((e) => isMissedProbe(e.data))
        : undefined,
      lockedCount,
    };
  } finally {
    stream.close();
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason as Error);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason as Error);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
