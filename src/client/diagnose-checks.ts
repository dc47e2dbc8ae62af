/**
 * The checks of `diagnose()`: what was observed in, one verdict per check out, each with a detail
 * a person can act on. No I/O here; `diagnose.ts` observes, this module judges.
 */
import type { Dispatcher } from 'undici';
import { flattenError } from '../errors.js';
import type { ConnectionInfo, StreamObservation } from './diagnose-stream.js';

/** The checks, in the order they are reported. */
export const DIAGNOSIS_CHECKS = [
  'connect',
  'status',
  'content-type',
  'cache-control',
  'compression',
  'buffering',
  'keepalive',
  'http-version',
  'cors',
  'last-event-id',
  'retry',
] as const;

/** The id of one check. */
export type DiagnosisCheckId = (typeof DIAGNOSIS_CHECKS)[number];

/** How a check came out; `skip` when it could not run (the detail says why). */
export type DiagnosisStatus = 'pass' | 'warn' | 'fail' | 'skip';

/** One check's outcome. */
export interface DiagnosisCheck {
  id: DiagnosisCheckId;
  status: DiagnosisStatus;
  /** One line: what was seen and, unless it passed, what to change. */
  detail: string;
}

/** The report of `diagnose()`. */
export interface Diagnosis {
  /** The URL diagnosed. */
  url: string;
  /** The worst status of the checks (`skip` counts as `pass`). */
  verdict: 'pass' | 'warn' | 'fail';
  /** Every check, in the order of {@link DIAGNOSIS_CHECKS}. */
  checks: DiagnosisCheck[];
}

/** One probe event: posted by us, timed on arrival. */
export interface Probe {
  /** 1, 2, 3 in the order posted. */
  n: number;
  postedAt: number;
  /** When it arrived, and in which read; undefined while it has not. */
  arrivedAt: number | undefined;
  read: number | undefined;
}

/** How the probes went. */
export type ProbeFacts = { mode: 'passive'; reason: string } | { mode: 'probe'; probes: Probe[] };

/** What became of the reconnection with `Last-Event-ID`. */
export type ResumeFacts =
  | { kind: 'skipped'; reason: string }
  | {
      kind: 'done';
      lastEventId: string;
      /** Ids of events received again after reconnecting. */
      repeatedIds: string[];
      /** Events received after reconnecting that are not repeats. */
      newCount: number;
      /** In probe mode, whether the probe posted while disconnected arrived; else undefined. */
      hasMissedProbe: boolean | undefined;
      /** How many `423` answers were retried. */
      lockedCount: number;
    };

/** Everything observed, for {@link evaluateChecks}. */
export interface DiagnosisFacts {
  url: string;
  /** Certificate validation off (`--insecure`). */
  isInsecure: boolean;
  keepaliveMaxMs: number;
  /** When the observation of the first stream stopped. */
  observedUntil: number;
  origin: string | undefined;
  withCredentials: boolean;
  connectError: Error | undefined;
  connection: ConnectionInfo | undefined;
  response:
    | {
        status: number;
        headers: Dispatcher.ResponseData['headers'];
        redirectCount: number;
        message: string;
      }
    | undefined;
  stream: StreamObservation | undefined;
  probes: ProbeFacts;
  resume: ResumeFacts;
}

const BUFFERING_HINT =
  'with nginx set `proxy_buffering off` or send `X-Accel-Buffering: no`; make proxies and CDNs pass the stream through unbuffered';
const LATE_MS = 1000;
const BURST_GAP_MS = 300;

/**
 * Judges every check from the facts.
 * @param facts What was observed.
 * @returns The report, checks in the order of {@link DIAGNOSIS_CHECKS}.
 */
export function evaluateChecks(facts: DiagnosisFacts): Diagnosis {
  const checks: DiagnosisCheck[] = [];
  const add = (id: DiagnosisCheckId, status: DiagnosisStatus, detail: string): void => {
    checks.push({ id, status, detail });
  };
  const { response, stream } = facts;
  if (facts.connectError !== undefined || response === undefined) {
    add('connect', 'fail', describeConnectError(facts.connectError));
    for (const id of DIAGNOSIS_CHECKS.slice(1)) add(id, 'skip', 'no connection');
    return report(facts.url, checks);
  }
  add('connect', 'pass', describeConnection(facts));
  const type = header(response.headers, 'content-type');
  const noStream =
    response.status !== 200
      ? `no stream (status ${response.status})`
      : stream === undefined
        ? 'not an event stream'
        : undefined;

  if (response.status === 200) add('status', 'pass', '200 OK');
  else if (response.status === 204) {
    add(
      'status',
      'fail',
      '204 No Content: browsers stop and never reconnect; answer 200 with the stream',
    );
  } else {
    add(
      'status',
      'fail',
      `${response.status}${response.message ? `: ${response.message}` : ''}; an EventSource needs 200`,
    );
  }

  if (response.status !== 200) add('content-type', 'skip', noStream ?? '');
  else if (stream !== undefined) add('content-type', 'pass', type ?? 'text/event-stream');
  else {
    add(
      'content-type',
      'fail',
      `${type === undefined ? 'no Content-Type' : `Content-Type is "${type}"`}: browsers refuse the stream; send \`Content-Type: text/event-stream\``,
    );
  }

  if (response.status !== 200) {
    add('cache-control', 'skip', noStream ?? '');
    add('compression', 'skip', noStream ?? '');
  } else {
    checks.push(checkCacheControl(header(response.headers, 'cache-control')));
    checks.push(checkCompression(header(response.headers, 'content-encoding')));
  }

  if (stream === undefined) {
    add('buffering', 'skip', noStream ?? '');
    add('keepalive', 'skip', noStream ?? '');
  } else {
    checks.push(checkBuffering(facts.probes));
    checks.push(checkKeepalive(stream, facts.observedUntil, facts.keepaliveMaxMs));
  }
  checks.push(checkHttpVersion(facts.connection));
  if (response.status !== 200) add('cors', 'skip', noStream ?? '');
  else checks.push(checkCors(response.headers, facts.origin, facts.withCredentials));
  if (stream === undefined) add('last-event-id', 'skip', noStream ?? '');
  else checks.push(checkResume(facts.resume, facts.probes.mode === 'probe'));
  add(
    'retry',
    'pass',
    stream?.retryMs !== undefined
      ? `the server sets retry: ${stream.retryMs} ms`
      : 'no retry: field seen; browsers wait their own default (about 3 s) before reconnecting',
  );
  return report(facts.url, checks);
}

function report(url: string, checks: DiagnosisCheck[]): Diagnosis {
  const verdict = checks.some((c) => c.status === 'fail')
    ? 'fail'
    : checks.some((c) => c.status === 'warn')
      ? 'warn'
      : 'pass';
  return { url, verdict, checks };
}

function header(headers: Dispatcher.ResponseData['headers'], name: string): string | undefined {
  const value = headers[name];
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value.join(', ') : String(value);
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

function describeConnectError(error: Error | undefined): string {
  if (error === undefined) return 'no response';
  const text = flattenError(error);
  const code = String((error as { code?: unknown }).code ?? '');
  const causeCode = String((error.cause as { code?: unknown } | undefined)?.code ?? '');
  const isCertificate = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS_CERT/.test(
    `${code} ${causeCode}`,
  );
  return isCertificate
    ? `${text} (the certificate is not valid here: trust its CA, e.g. --ca FILE, or fix the chain)`
    : text;
}

function describeConnection(facts: DiagnosisFacts): string {
  const { connection, response } = facts;
  const redirects =
    response !== undefined && response.redirectCount > 0
      ? ` after ${response.redirectCount} redirect(s)`
      : '';
  if (connection === undefined) return `connected${redirects}`;
  if (!connection.isTls) return `TCP connection made (plain HTTP)${redirects}`;
  if (facts.isInsecure) {
    return connection.certificateProblem === undefined
      ? `TLS handshake made; certificate valid (validation was off)${redirects}`
      : `TLS handshake made; certificate NOT valid (${connection.certificateProblem}), accepted because validation is off${redirects}`;
  }
  return `TLS handshake made, certificate valid${redirects}`;
}

function checkCacheControl(value: string | undefined): DiagnosisCheck {
  const id = 'cache-control';
  if (value === undefined) {
    return {
      id,
      status: 'warn',
      detail:
        'no Cache-Control header: a cache or proxy may hold or replay the stream; send `Cache-Control: no-cache`',
    };
  }
  const directives = value
    .toLowerCase()
    .split(',')
    .map((d) => d.trim().split('=', 1)[0]);
  if (directives.includes('no-cache') || directives.includes('no-store')) {
    return { id, status: 'pass', detail: `Cache-Control: ${value}` };
  }
  return {
    id,
    status: 'warn',
    detail: `Cache-Control: ${value} allows caching: send \`Cache-Control: no-cache\``,
  };
}

function checkCompression(encoding: string | undefined): DiagnosisCheck {
  const id = 'compression';
  if (encoding === undefined || encoding.trim().toLowerCase() === 'identity') {
    return { id, status: 'pass', detail: 'not compressed' };
  }
  return {
    id,
    status: 'warn',
    detail: `the stream is compressed (Content-Encoding: ${encoding}): compressors and the proxies that decode them hold events until a block fills; send text/event-stream uncompressed (with nginx, leave it out of \`gzip_types\`)`,
  };
}

function checkBuffering(probes: ProbeFacts): DiagnosisCheck {
  const id = 'buffering';
  if (probes.mode === 'passive') return { id, status: 'skip', detail: probes.reason };
  const list = probes.probes;
  const problems: string[] = [];
  for (const probe of list) {
    if (probe.arrivedAt === undefined) {
      problems.push(`probe ${probe.n} never arrived`);
    } else if (probe.arrivedAt - probe.postedAt > LATE_MS) {
      problems.push(`probe ${probe.n} arrived ${seconds(probe.arrivedAt - probe.postedAt)} late`);
    }
  }
  // A probe in the same read as one posted well after it was held back until the later one came.
  const burst = list.some((a) =>
    list.some(
      (b) => a.read !== undefined && a.read === b.read && b.postedAt - a.postedAt >= BURST_GAP_MS,
    ),
  );
  if (burst) problems.push('probes posted apart arrived in one burst');
  if (problems.length > 0) {
    return {
      id,
      status: 'fail',
      detail: `responses are buffered: ${problems.join(', ')}; ${BUFFERING_HINT}`,
    };
  }
  const delays = list.map((p) => (p.arrivedAt ?? 0) - p.postedAt);
  return {
    id,
    status: 'pass',
    detail: `${list.length} probe events arrived ${Math.min(...delays)}-${Math.max(...delays)} ms after their POSTs, each as it was sent`,
  };
}

function checkKeepalive(
  stream: StreamObservation,
  observedUntil: number,
  keepaliveMaxMs: number,
): DiagnosisCheck {
  const id = 'keepalive';
  const end = stream.endedAt ?? observedUntil;
  let longest = 0;
  let previous = stream.headAt;
  for (const at of [...stream.reads, end]) {
    longest = Math.max(longest, at - previous);
    previous = Math.max(previous, at);
  }
  const ended =
    stream.endedAt !== undefined
      ? ` (the stream ended after ${seconds(stream.endedAt - stream.headAt)})`
      : '';
  if (longest > keepaliveMaxMs) {
    return {
      id,
      status: 'warn',
      detail: `the stream was silent for ${seconds(longest)} (limit ${seconds(keepaliveMaxMs)})${ended}: idle proxies and load balancers cut silent streams (often at 60 s); send a comment line (\`:\`) every 15-30 s`,
    };
  }
  return {
    id,
    status: 'pass',
    detail: `longest silence ${seconds(longest)} in ${seconds(end - stream.headAt)} (limit ${seconds(keepaliveMaxMs)})${ended}`,
  };
}

function checkHttpVersion(connection: ConnectionInfo | undefined): DiagnosisCheck {
  const id = 'http-version';
  const limit = 'browsers open at most six streams per origin over HTTP/1.1, across all tabs';
  if (connection === undefined) return { id, status: 'skip', detail: 'connection not seen' };
  if (!connection.isTls) {
    return {
      id,
      status: 'warn',
      detail: `plain HTTP/1.1: ${limit}; serve over TLS with HTTP/2`,
    };
  }
  if (connection.alpnProtocol === 'h2') {
    return { id, status: 'pass', detail: 'HTTP/2, negotiated by ALPN' };
  }
  return {
    id,
    status: 'warn',
    detail: `TLS without HTTP/2 (ALPN chose ${connection.alpnProtocol ?? 'nothing'}): ${limit}; enable HTTP/2 on the server or proxy`,
  };
}

function checkCors(
  headers: Dispatcher.ResponseData['headers'],
  origin: string | undefined,
  withCredentials: boolean,
): DiagnosisCheck {
  const id = 'cors';
  if (origin === undefined) {
    return { id, status: 'skip', detail: 'no origin given (--origin) to check against' };
  }
  const allowed = header(headers, 'access-control-allow-origin');
  const credentials = header(headers, 'access-control-allow-credentials');
  const seen =
    allowed === undefined
      ? 'no Access-Control-Allow-Origin'
      : `Access-Control-Allow-Origin: ${allowed}`;
  if (withCredentials) {
    if (allowed === origin && credentials === 'true') {
      return { id, status: 'pass', detail: `${seen} with credentials allowed` };
    }
    return {
      id,
      status: 'fail',
      detail: `${seen}${credentials === 'true' ? '' : ', no Access-Control-Allow-Credentials: true'}: a page on ${origin} with withCredentials cannot read the stream; answer exactly that origin and allow credentials`,
    };
  }
  if (allowed === origin || allowed === '*') return { id, status: 'pass', detail: seen };
  return {
    id,
    status: 'fail',
    detail: `${seen}: a page on ${origin} cannot read the stream; allow that origin on the server`,
  };
}

function checkResume(resume: ResumeFacts, isProbeMode: boolean): DiagnosisCheck {
  const id = 'last-event-id';
  if (resume.kind === 'skipped') return { id, status: 'skip', detail: resume.reason };
  const after = `after reconnecting with Last-Event-ID ${JSON.stringify(resume.lastEventId)}`;
  const hint = 'replay only the events after that id';
  if (resume.repeatedIds.length > 0) {
    const ids = resume.repeatedIds
      .slice(0, 3)
      .map((i) => JSON.stringify(i))
      .join(', ');
    return {
      id,
      status: 'fail',
      detail: `${after}, events already received came again (id ${ids}${resume.repeatedIds.length > 3 ? ', …' : ''}): ${hint}`,
    };
  }
  if (isProbeMode && resume.hasMissedProbe === false) {
    return {
      id,
      status: 'fail',
      detail: `${after}, the event posted while disconnected never arrived: keep recent events and ${hint}`,
    };
  }
  const locked = resume.lockedCount > 0 ? ` (423 retried ${resume.lockedCount}x)` : '';
  if (resume.newCount > 0) {
    return {
      id,
      status: 'pass',
      detail: `resumed ${after}${isProbeMode ? ': the event posted while disconnected arrived' : ''}, nothing repeated${locked}`,
    };
  }
  return { id, status: 'skip', detail: `nothing arrived ${after}${locked}` };
}
