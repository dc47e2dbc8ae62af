/**
 * Who may subscribe to a token, publish to it, or read the listener's counters.
 *
 * The core asks one {@link Authorize} hook before it opens a stream (`subscribe`), reads a POST's
 * body (`publish`, for events, `close` and `retry` alike) or answers `/stats` (`admin`). The JWT
 * options are such a hook ({@link createJwtAuthorizer}): the application's backend signs a grant,
 * `{"eventsource": {"subscribe": [...], "publish": [...], "admin": true}}`, and the listener checks
 * it without calling back. Verification is done by `jose` with the algorithms of the configured key
 * only (never `none`, never an HMAC made with a public key), once per distinct JWT: a verified JWT
 * is remembered until it expires, so a stream's reconnections and a publisher's POSTs cost a lookup.
 * @see https://www.rfc-editor.org/rfc/rfc6750 (Bearer tokens: where they are read, the answers)
 */
import { createPublicKey, createSecretKey, type KeyObject } from 'node:crypto';
import type { JWTPayload, JWTVerifyGetKey } from 'jose';

/** What a request wants to do. */
export type AccessKind = 'subscribe' | 'publish' | 'admin';

/** What an {@link Authorize} hook is told about a request. */
export interface AccessRequest {
  readonly kind: AccessKind;
  /** The token (percent-decoded) to subscribe or publish to; undefined for `admin`. */
  readonly token: string | undefined;
  /** The POST's action (`publish` only). */
  readonly action: string | undefined;
  /** The request target, path and query (`/poll/42?access_token=...`). */
  readonly url: string;
  /** The request headers an authorizer may need. */
  readonly headers: {
    readonly authorization?: string | undefined;
    readonly cookie?: string | undefined;
  };
}

/** A refusal: its status (`401`, `403`), a one-line reason and any headers (`WWW-Authenticate`). */
export interface AccessRefusal {
  readonly status: number;
  readonly message: string;
  /** Extra headers as a flat list (name, value, ...). */
  readonly headers?: readonly string[] | undefined;
}

/**
 * The answer of an {@link Authorize} hook: `true` lets the request through, `false` refuses it
 * with `403`, a refusal says how. A stream may also be given an expiry (ms since the epoch), at
 * which the listener ends it.
 */
export type AccessDecision = boolean | AccessRefusal | { readonly expiresAt: number };

/** Decides whether a request may go on; may answer later (a promise). */
export type Authorize = (request: AccessRequest) => AccessDecision | Promise<AccessDecision>;

/** What the grant of a JWT says (the `eventsource` claim). */
export interface AccessGrant {
  /** Token patterns that may be subscribed to; `*` matches any run of characters. */
  subscribe?: readonly string[];
  /** Token patterns that may be published to (events, `close`, `retry`). */
  publish?: readonly string[];
  /** Whether `/stats` (and the other operator routes) may be read. */
  admin?: boolean;
}

/** Options of the JWT authorizer (`createListener({ jwt })`, the CLI's `--jwt-*` flags). */
export interface JwtOptions {
  /** An HMAC secret (HS256, HS384, HS512), at least 32 bytes. */
  secret?: string | undefined;
  /**
   * A public key: PEM text (`-----BEGIN PUBLIC KEY-----`), a JWKS object (`{ keys: [...] }`) or a
   * KeyObject. RSA keys accept RS256/384/512 and PS256/384/512, EC keys ES256/384/512 by their
   * curve, Ed25519/Ed448 keys EdDSA.
   */
  key?: string | { keys: readonly object[] } | KeyObject | undefined;
  /** The `iss` every JWT must have. */
  issuer?: string | undefined;
  /** The `aud` every JWT must have (one of them). */
  audience?: string | undefined;
  /** The cookie read when neither header nor query holds a JWT. Defaults to `eventsource_access_token`. */
  cookie?: string | undefined;
}

/** The realm named in every `WWW-Authenticate` challenge. */
const REALM = 'Bearer realm="eventsource"';
/** Seconds of clock difference allowed for `exp` and `nbf`. */
const CLOCK_TOLERANCE_S = 5;
/** Verified JWTs remembered (oldest out first). */
const CACHE_SIZE = 10000;
/** Refused JWTs remembered, apart from the verified ones. */
const REFUSAL_CACHE_SIZE = 1000;
/** The longest JWT verified; longer ones are refused as malformed. */
const MAX_JWT_LENGTH = 4096;
/** Three base64url parts: the shape of a compact JWS, checked before any verification. */
const COMPACT_JWS = /^[\w-]+\.[\w-]+\.[\w-]*$/;
/** Verifications running at once; the others wait for a slot. */
const MAX_VERIFYING = 64;
/** The shortest HMAC secret accepted, in bytes (RFC 7518 §3.2: at least the hash's size). */
export const MIN_SECRET_BYTES = 32;

/** The answer to a request that carries no JWT at all. */
const NO_TOKEN: AccessRefusal = {
  status: 401,
  message: 'Unauthorized: an access token is required',
  headers: ['WWW-Authenticate', REALM],
};

/** The answer to a JWT that is not even shaped like one. */
const MALFORMED = invalidToken('the access token is malformed');

/** A verified JWT, or why it was refused. */
type Verdict =
  | { readonly grant: CompiledGrant; readonly expiresAt: number | undefined }
  | { readonly refusal: AccessRefusal; readonly isFinal: boolean };

/** A grant with its patterns made into tests. */
interface CompiledGrant {
  readonly subscribe: readonly Matcher[];
  readonly publish: readonly Matcher[];
  readonly admin: boolean;
}

type Matcher = (token: string) => boolean;

/**
 * Checks JWT options before anything is started.
 * @throws TypeError naming the problem (no key, both keys, a short secret, a key that is not one).
 */
export function checkJwtOptions(options: JwtOptions): void {
  if ((options.secret === undefined) === (options.key === undefined)) {
    throw new TypeError(
      '`jwt` needs exactly one of `secret` (HMAC) and `key` (a public key or JWKS)',
    );
  }
  if (options.secret !== undefined && Buffer.byteLength(options.secret) < MIN_SECRET_BYTES) {
    throw new RangeError(
      `\`jwt.secret\` must be at least ${MIN_SECRET_BYTES} bytes, got ${Buffer.byteLength(options.secret)}`,
    );
  }
  if (options.key !== undefined) resolveKey(options.key);
}

/**
 * Makes the hook of the JWT options: the JWT is read from `Authorization: Bearer` (any case of
 * the scheme), else the `access_token` query parameter, else the cookie; the first place that holds
 * one is the one judged.
 * @param options See {@link JwtOptions}.
 * @returns The hook: synchronous for a JWT seen before, a promise the first time.
 * @throws TypeError for invalid options (see {@link checkJwtOptions}).
 */
export function createJwtAuthorizer(options: JwtOptions): Authorize {
  checkJwtOptions(options);
  const cookieName = options.cookie ?? 'eventsource_access_token';
  // Grants and refusals are kept apart, so that a flood of bad JWTs cannot push the good ones out;
  // each drops its oldest entry when full.
  const grants = new Map<string, Verdict>();
  const refusals = new Map<string, Verdict>();
  // One verification per JWT at a time: the requests that carry it while it runs share it.
  const pending = new Map<string, Promise<Verdict>>();
  // A burst of new JWTs (every browser reconnecting after a restart) waits its turn rather than
  // queueing thousands of verifications on the thread pool at once.
  const slots = new Slots(MAX_VERIFYING);
  let verify: ((jwt: string) => Promise<Verdict>) | undefined;
  // The verdict last looked up: a backend's publisher sends one JWT with every POST, and comparing
  // it with the last one is cheaper than hashing a fresh copy of it for the map (~0.5 µs a request).
  let lastJwt: string | undefined;
  let lastVerdict: Verdict | undefined;

  const judge = (verdict: Verdict, request: AccessRequest): AccessDecision => {
    if ('refusal' in verdict) return verdict.refusal;
    // As jose does at verification: a little clock difference is allowed.
    if (
      verdict.expiresAt !== undefined &&
      Date.now() >= verdict.expiresAt + CLOCK_TOLERANCE_S * 1000
    ) {
      return invalidToken('the access token has expired');
    }
    return decide(verdict.grant, request, verdict.expiresAt);
  };

  const remember = (jwt: string, verdict: Verdict): void => {
    // A JWT that is not valid yet may be later: only final verdicts are remembered.
    if ('isFinal' in verdict && !verdict.isFinal) return;
    const cache = 'refusal' in verdict ? refusals : grants;
    const limit = 'refusal' in verdict ? REFUSAL_CACHE_SIZE : CACHE_SIZE;
    if (cache.size >= limit) cache.delete(cache.keys().next().value as string);
    cache.set(jwt, verdict);
  };

  return (request) => {
    const jwt = findJwt(request, cookieName);
    if (jwt === undefined) return NO_TOKEN;
    if (jwt === lastJwt) return judge(lastVerdict as Verdict, request);
    const known = grants.get(jwt) ?? refusals.get(jwt);
    if (known !== undefined) {
      lastJwt = jwt;
      lastVerdict = known;
      return judge(known, request);
    }
    // Not a compact JWS at all (or far too long to be one): refused without verification, and
    // not remembered, so that junk neither costs a signature check nor takes memory.
    if (jwt.length > MAX_JWT_LENGTH || !COMPACT_JWS.test(jwt)) return MALFORMED;
    let verifying = pending.get(jwt);
    if (verifying === undefined) {
      verify ??= makeVerifier(options);
      const run = verify;
      verifying = slots
        .run(() => run(jwt))
        .then((verdict) => {
          pending.delete(jwt);
          remember(jwt, verdict);
          return verdict;
        });
      pending.set(jwt, verifying);
    }
    return verifying.then((verdict) => judge(verdict, request));
  };
}

/** Whether `grant` allows `request`; a stream gets the JWT's expiry. */
function decide(
  grant: CompiledGrant,
  request: AccessRequest,
  expiresAt: number | undefined,
): AccessDecision {
  const { kind, token } = request;
  const allowed =
    kind === 'admin'
      ? grant.admin
      : (kind === 'subscribe' ? grant.subscribe : grant.publish).some((match) =>
          match(token ?? ''),
        );
  if (!allowed) {
    return insufficientScope(
      `the access token does not grant ${kind === 'admin' ? 'admin access' : `${kind} access to this token`}`,
      kind === 'admin' ? '' : ` (${JSON.stringify(token)})`,
    );
  }
  return kind === 'subscribe' && expiresAt !== undefined ? { expiresAt } : true;
}

/** The JWT of a request: `Authorization: Bearer`, then `?access_token=`, then the cookie. */
function findJwt(request: AccessRequest, cookieName: string): string | undefined {
  const authorization = request.headers.authorization;
  // `Bearer <jwt>`, the scheme in any case. A header of another scheme is not a JWT, and does not
  // hide the query or the cookie.
  if (
    authorization !== undefined &&
    authorization.charCodeAt(6) === 32 &&
    (authorization.startsWith('Bearer') || authorization.slice(0, 6).toLowerCase() === 'bearer')
  ) {
    const jwt = authorization.slice(7).trim();
    if (jwt !== '') return jwt;
  }
  const url = request.url;
  const query = url.indexOf('?');
  if (query !== -1 && url.includes('access_token=', query)) {
    const value = new URLSearchParams(url.slice(query + 1)).get('access_token');
    if (value !== null && value !== '') return value;
  }
  const cookie = request.headers.cookie;
  if (cookie !== undefined) {
    for (const part of cookie.split(';')) {
      const equals = part.indexOf('=');
      if (equals !== -1 && part.slice(0, equals).trim() === cookieName) {
        const value = part.slice(equals + 1).trim();
        if (value !== '') return safeDecode(value);
      }
    }
  }
  return undefined;
}

/** Makes the verification of one JWT with `jose` (loaded at the first JWT). */
function makeVerifier(options: JwtOptions): (jwt: string) => Promise<Verdict> {
  const loaded = import('jose');
  const { key, algorithms } =
    options.secret !== undefined
      ? // A KeyObject made once: jose would import raw bytes again at every verification.
        {
          key: createSecretKey(Buffer.from(options.secret)),
          algorithms: ['HS256', 'HS384', 'HS512'],
        }
      : resolveKey(options.key as NonNullable<JwtOptions['key']>);
  let getKey: Uint8Array | KeyObject | JWTVerifyGetKey | undefined;
  return async (jwt) => {
    const jose = await loaded;
    getKey ??= 'jwks' in key ? jose.createLocalJWKSet(key.jwks as never) : key;
    let payload: JWTPayload;
    try {
      ({ payload } = await jose.jwtVerify(jwt, getKey as never, {
        algorithms,
        clockTolerance: CLOCK_TOLERANCE_S,
        ...(options.issuer === undefined ? {} : { issuer: options.issuer }),
        ...(options.audience === undefined ? {} : { audience: options.audience }),
      }));
    } catch (error) {
      const isFinal = (error as { claim?: unknown }).claim !== 'nbf';
      return { refusal: invalidToken(describeJwtError(error)), isFinal };
    }
    const expiresAt = typeof payload.exp === 'number' ? payload.exp * 1000 : undefined;
    return { grant: compileGrant(payload.eventsource), expiresAt };
  };
}

/** The key (or key set) and the algorithms it may verify. */
function resolveKey(given: NonNullable<JwtOptions['key']>): {
  key: KeyObject | { jwks: object };
  algorithms: string[];
} {
  if (typeof given === 'object' && 'keys' in given) {
    if (!Array.isArray(given.keys) || given.keys.length === 0) {
      throw new TypeError('`jwt.key` is a JWKS without keys');
    }
    const algorithms = new Set<string>();
    for (const jwk of given.keys as { kty?: unknown; crv?: unknown; alg?: unknown }[]) {
      if (jwk.kty === 'oct') throw new TypeError('`jwt.key` must hold public keys, not a secret');
      for (const alg of algorithmsOf(String(jwk.kty), String(jwk.crv))) algorithms.add(alg);
    }
    return { key: { jwks: given }, algorithms: [...algorithms] };
  }
  let key: KeyObject;
  try {
    key = typeof given === 'string' ? createPublicKey(given) : given;
  } catch (error) {
    throw new TypeError(`\`jwt.key\` is not a PEM public key: ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (key.type !== 'public') throw new TypeError('`jwt.key` must be a public key');
  const type = key.asymmetricKeyType ?? '';
  const curve = key.asymmetricKeyDetails?.namedCurve ?? '';
  const kty = type === 'ec' ? 'EC' : type.startsWith('rsa') ? 'RSA' : 'OKP';
  const crv = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' }[curve] ?? type;
  const algorithms = algorithmsOf(kty, crv).filter(
    (alg) => type !== 'rsa-pss' || alg.startsWith('PS'),
  );
  if (algorithms.length === 0) throw new TypeError(`\`jwt.key\` has an unsupported type: ${type}`);
  return { key, algorithms };
}

/** The JWS algorithms a public key of this type and curve verifies. */
function algorithmsOf(kty: string, crv: string): string[] {
  switch (kty) {
    case 'RSA':
      return ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
    case 'EC':
      return { 'P-256': ['ES256'], 'P-384': ['ES384'], 'P-521': ['ES512'] }[crv] ?? [];
    case 'OKP':
      return ['EdDSA', 'Ed25519'];
    default:
      return [];
  }
}

/** Turns the `eventsource` claim into tests; anything malformed grants nothing. */
function compileGrant(claim: unknown): CompiledGrant {
  const grant = (typeof claim === 'object' && claim !== null ? claim : {}) as Record<
    string,
    unknown
  >;
  const patterns = (value: unknown): Matcher[] =>
    Array.isArray(value) ? value.filter((p) => typeof p === 'string').map(compilePattern) : [];
  return {
    subscribe: patterns(grant.subscribe),
    publish: patterns(grant.publish),
    admin: grant.admin === true,
  };
}

/** A pattern: a token, or with `*` matching any run of characters; it matches the whole token. */
export function compilePattern(pattern: string): Matcher {
  if (!pattern.includes('*')) return (token) => token === pattern;
  if (pattern === '*') return () => true;
  const source = pattern
    .split('*')
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  const regexp = new RegExp(`^${source}$`, 's');
  return (token) => regexp.test(token);
}

/**
 * `description` goes into the `WWW-Authenticate` header, so it holds none of `"` and `\\`
 * (RFC 6750 §3); `detail` is added to the body only.
 */
function invalidToken(description: string): AccessRefusal {
  return {
    status: 401,
    message: `Unauthorized: ${description}`,
    headers: [
      'WWW-Authenticate',
      `${REALM}, error="invalid_token", error_description="${description}"`,
    ],
  };
}

function insufficientScope(description: string, detail = ''): AccessRefusal {
  return {
    status: 403,
    message: `Forbidden: ${description}${detail}`,
    headers: [
      'WWW-Authenticate',
      `${REALM}, error="insufficient_scope", error_description="${description}"`,
    ],
  };
}

/** A short reason for a refused JWT, from jose's error codes (no quotes, no line breaks). */
function describeJwtError(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  const claim = (error as { claim?: unknown }).claim;
  switch (code) {
    case 'ERR_JWT_EXPIRED':
      return 'the access token has expired';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      return claim === 'nbf'
        ? 'the access token is not valid yet'
        : `the access token's ${String(claim)} claim is wrong or missing`;
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return 'the access token has a bad signature';
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return 'the access token is signed with an algorithm this listener does not accept';
    case 'ERR_JWKS_NO_MATCHING_KEY':
      return 'no key of this listener matches the access token';
    default:
      return 'the access token is malformed';
  }
}

function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/**
 * Signs a grant with an HMAC secret (HS256), for tests and for backends that hand browsers their
 * access tokens.
 * @param grant What the token allows, and `expiresIn` (seconds, or a jose time span such as `'1h'`).
 * @param secret The listener's `--jwt-secret` (at least 32 bytes).
 * @returns The compact JWT.
 */
export async function signAccessToken(
  grant: AccessGrant & {
    expiresIn?: number | string;
    issuer?: string;
    audience?: string;
  },
  secret: string,
): Promise<string> {
  if (Buffer.byteLength(secret) < MIN_SECRET_BYTES) {
    throw new RangeError(`\`secret\` must be at least ${MIN_SECRET_BYTES} bytes`);
  }
  const { SignJWT } = await import('jose');
  const { expiresIn, issuer, audience, ...claim } = grant;
  let jwt = new SignJWT({ eventsource: claim }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt();
  if (expiresIn !== undefined) {
    jwt = jwt.setExpirationTime(
      typeof expiresIn === 'number' ? Math.floor(Date.now() / 1000) + expiresIn : expiresIn,
    );
  }
  if (issuer !== undefined) jwt = jwt.setIssuer(issuer);
  if (audience !== undefined) jwt = jwt.setAudience(audience);
  return jwt.sign(new TextEncoder().encode(secret));
}

/** At most `size` tasks at once; the others start in order as slots free up. */
class Slots {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly size: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.size) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.running++;
    try {
      return await task();
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }
}
