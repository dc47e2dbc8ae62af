/**
 * Route parsing for the listener: `/<action>/<token>`, optionally under `/<prefix>/`, with the
 * token percent-decoded as one path segment (it may contain `:`, a MAC address is the classic token).
 */

/** A parsed request target. */
export type Route =
  | { kind: 'event'; action: string; token: string }
  | { kind: 'root' }
  | { kind: 'stats' }
  /** `/stats/<token>`: whether a token is connected. */
  | { kind: 'presence'; token: string }
  /** `/metrics`: the Prometheus scrape. */
  | { kind: 'metrics' }
  | { kind: 'bad-token' }
  | { kind: 'none' };

/** The parts of a request target: the route, and the query's Last-Event-ID if any. */
export interface ParsedTarget {
  route: Route;
  /** `?lastEventId=` or `?last_event_id=`, for clients that cannot set headers. */
  lastEventId: string | undefined;
}

const NONE: Route = { kind: 'none' };
const ROOT: Route = { kind: 'root' };
const STATS: Route = { kind: 'stats' };
const METRICS: Route = { kind: 'metrics' };
const BAD_TOKEN: Route = { kind: 'bad-token' };

/**
 * Normalises a `--prefix` value to `/p` form (no trailing slash), or `''` for none.
 * @param prefix The prefix as given (`p`, `/p`, `/p/`, `a/b`).
 * @returns The normalised prefix.
 */
export function normalizePrefix(prefix: string | undefined): string {
  if (prefix === undefined) return '';
  const trimmed = prefix.replace(/^\/+|\/+$/g, '');
  return trimmed === '' ? '' : `/${trimmed}`;
}

/**
 * Parses a request target (`req.url`).
 * @param url The request target, e.g. `/poll/42%3A42?lastEventId=7`.
 * @param prefix A normalised prefix (see {@link normalizePrefix}) or `''`.
 * @returns The route and the Last-Event-ID from the query string.
 */
export function parseTarget(url: string, prefix: string): ParsedTarget {
  const queryStart = url.indexOf('?');
  let path = queryStart === -1 ? url : url.slice(0, queryStart);
  const lastEventId = queryStart === -1 ? undefined : queryLastEventId(url.slice(queryStart + 1));
  if (prefix !== '') {
    if (!path.startsWith(prefix) || (path.length > prefix.length && path[prefix.length] !== '/')) {
      return { route: NONE, lastEventId };
    }
    path = path.slice(prefix.length);
    if (path === '') path = '/';
  }
  return { route: parsePath(path), lastEventId };
}

function parsePath(path: string): Route {
  if (path === '/') return ROOT;
  if (path === '/stats') return STATS;
  if (path === '/metrics') return METRICS;
  // Exactly two non-empty segments: /<action>/<token>
  const slash = path.indexOf('/', 1);
  if (path.charCodeAt(0) !== 47 || slash === -1 || slash === 1) return NONE;
  if (slash === path.length - 1 || path.indexOf('/', slash + 1) !== -1) return NONE;
  const action = path.slice(1, slash);
  const rawToken = path.slice(slash + 1);
  let token: string;
  if (rawToken.indexOf('%') === -1) token = rawToken;
  else {
    try {
      token = decodeURIComponent(rawToken);
    } catch {
      return BAD_TOKEN;
    }
  }
  return action === 'stats' ? { kind: 'presence', token } : { kind: 'event', action, token };
}

function queryLastEventId(query: string): string | undefined {
  if (query.indexOf('ast') === -1) return undefined;
  const params = new URLSearchParams(query);
  return params.get('lastEventId') ?? params.get('last_event_id') ?? undefined;
}
