import { createHash, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { AccessJwtConfig, ServiceToken } from './config/config.js';
import { AgentError } from './errors.js';
import { setClientId } from './http/respond.js';

/**
 * Every credential check of the agent. The checks are pure functions of the request headers and the
 * configuration; the middleware at the bottom only wires them into Express.
 */

export const CLIENT_ID_HEADER = 'cf-access-client-id';
export const CLIENT_SECRET_HEADER = 'cf-access-client-secret';
export const ACCESS_JWT_HEADER = 'cf-access-jwt-assertion';

const unauthorized = (reason: string) => new AgentError(401, reason);

// The agent's clock and Cloudflare's may disagree a little: "nbf", "iat" and "exp" are allowed this
// much slack, and no more.
export const CLOCK_SKEW_SECONDS = 60;

// Hashing both sides first gives equal-length inputs to timingSafeEqual, so neither the content nor
// the length of the configured value leaks through response timing.
const digest = (value: string): Buffer => createHash('sha256').update(value, 'utf8').digest();

export interface HashedToken {
  readonly clientId: string;
  readonly idDigest: Buffer;
  readonly secretDigest: Buffer;
}

/** The configured tokens, hashed once: each request hashes only what it sent. */
export function hashTokens(tokens: readonly ServiceToken[]): readonly HashedToken[] {
  return tokens.map((t) => ({ clientId: t.clientId, idDigest: digest(t.clientId), secretDigest: digest(t.clientSecret) }));
}

/**
 * Whether `value` is one of `secrets`, compared as SHA-256 digests in constant time against every one
 * of them: for deciding that a header value must never be written down (see http/header-guard.ts).
 */
export function secretMatcher(secrets: readonly string[]): (value: string) => boolean {
  const digests = secrets.map(digest);
  return (value) => {
    const candidate = digest(value);
    let found = false;
    for (const known of digests) found = timingSafeEqual(candidate, known) || found;
    return found;
  };
}

/**
 * Checks the Cloudflare Access service-token headers. Returns the client id that matched (the primary
 * token or, during a rotation window, the second one).
 */
export function checkServiceToken(
  headers: Readonly<Record<string, string | string[] | undefined>>,
  tokens: readonly ServiceToken[] | readonly HashedToken[],
): string {
  const id = headers[CLIENT_ID_HEADER];
  const secret = headers[CLIENT_SECRET_HEADER];
  if (typeof id !== 'string' || typeof secret !== 'string' || id === '' || secret === '') {
    throw unauthorized('missing CF-Access-Client-Id or CF-Access-Client-Secret header');
  }
  const hashed = tokens.map((t) => ('idDigest' in t ? t : (hashTokens([t])[0] as HashedToken)));
  const idDigest = digest(id);
  const secretDigest = digest(secret);
  // Security: compare against every configured token without stopping at the first match, and
  // compare id and secret both, so timing tells nothing about which part or which token was wrong.
  let matched: string | null = null;
  for (const token of hashed) {
    const idOk = timingSafeEqual(idDigest, token.idDigest);
    const secretOk = timingSafeEqual(secretDigest, token.secretDigest);
    if (idOk && secretOk && matched === null) matched = token.clientId;
  }
  if (matched === null) throw unauthorized('invalid service token');
  return matched;
}

/** Verifies an Access JWT; throws the AgentError to answer with. */
export interface AccessJwtVerifier {
  (token: string | undefined): Promise<void>;
  /** Seconds since the signing keys in use were fetched (for the status); null before the first fetch. */
  keysAgeSeconds(): number | null;
}

export interface AccessJwtOptions {
  /** The least time between two fetches of the keys (an unknown `kid` fetches at once otherwise). */
  readonly cooldownMs?: number;
  readonly fetchTimeoutMs?: number;
  /** The key cache's clock: tests move it past the cache age instead of waiting. */
  readonly now?: () => number;
  /** Told when a refresh of the keys failed (the agent logs it). */
  readonly onKeysRefreshFailed?: (error: AgentError) => void;
}

/** Keys this old are fetched again; while the endpoint is down, the last good ones are used. */
export const KEYS_MAX_AGE_MS = 10 * 60_000;
/** Cloudflare keeps a rotated-out signing key valid for 7 days: keys older than that are not used. */
export const KEYS_MAX_STALE_MS = 7 * 24 * 3_600_000;

/**
 * Verifies the Cloudflare Access JWT that the edge adds to every request it let through. Keys come
 * from the team's certs endpoint, cached, kept through an outage of the endpoint, and fetched again
 * when a token names an unknown `kid` (Cloudflare rotates its signing keys): see access-keys.ts.
 */
export function createAccessJwtVerifier(config: AccessJwtConfig, options: AccessJwtOptions = {}): AccessJwtVerifier {
  // jose is loaded here, when the check is configured, and not at start: an agent without the JWT
  // check never holds it in memory.
  const loaded = Promise.all([import('jose'), import('./access-keys.js')]).then(([jose, { createAccessKeys }]) => ({
    jose,
    keys: createAccessKeys(jose, {
      url: config.certsUrl,
      cooldownMs: options.cooldownMs ?? 30_000,
      fetchTimeoutMs: options.fetchTimeoutMs ?? 5_000,
      maxAgeMs: KEYS_MAX_AGE_MS,
      maxStaleMs: KEYS_MAX_STALE_MS,
      now: options.now ?? (() => Date.now()),
      onRefreshFailed: options.onKeysRefreshFailed ?? (() => undefined),
    }),
  }));
  let ready: Awaited<typeof loaded> | null = null;
  const issuer = `https://${config.teamDomain}`;

  const verify = async (token: string | undefined) => {
    if (token === undefined || token === '') throw unauthorized('missing Cf-Access-Jwt-Assertion header');
    ready ??= await loaded;
    const { jose, keys } = ready;
    const { jwtVerify, errors: joseErrors } = jose;
    try {
      // Security: the algorithm list is fixed to RS256, which is what Access signs with. This shuts
      // out `alg: none` and the HS256-with-the-public-key confusion attack.
      const { payload } = await jwtVerify(token, keys.getKey, {
        issuer,
        audience: config.audience,
        algorithms: ['RS256'],
        // Security: a token without an expiry would be good forever once leaked.
        requiredClaims: ['exp'],
        clockTolerance: CLOCK_SKEW_SECONDS,
      });
      // jose checks "iat" only together with a maximum age; a token issued in the future is refused
      // like one not yet valid.
      if (typeof payload.iat === 'number' && payload.iat > Date.now() / 1000 + CLOCK_SKEW_SECONDS) {
        throw new joseErrors.JWTClaimValidationFailed('"iat" claim is in the future', payload, 'iat', 'check_failed');
      }
    } catch (error) {
      // Security: fail closed. Without the keys no token can be checked, so no request is let in.
      if (error instanceof AgentError) throw error;
      throw unauthorized(`invalid Cloudflare Access token (${jwtProblem(joseErrors, error)})`);
    }
  };
  return Object.assign(verify, { keysAgeSeconds: () => ready?.keys.ageSeconds() ?? null });
}

type JoseErrors = typeof import('jose')['errors'];

function jwtProblem(joseErrors: JoseErrors, error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) return 'expired';
  if (error instanceof joseErrors.JWTClaimValidationFailed)
    return error.reason === 'missing' ? `claim "${error.claim}" missing` : `claim "${error.claim}" rejected`;
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return 'algorithm not allowed';
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return 'signature does not verify';
  if (error instanceof joseErrors.JWKSNoMatchingKey) return 'signed by an unknown key';
  return 'malformed';
}

/** Express middleware: the service token always, the Access JWT when configured. */
export function authenticate(tokens: readonly ServiceToken[], verifyJwt: AccessJwtVerifier | null): RequestHandler {
  const hashed = hashTokens(tokens);
  return (req: Request, res: Response, next: NextFunction) => {
    let clientId: string;
    try {
      clientId = checkServiceToken(req.headers, hashed);
    } catch (error) {
      next(error);
      return;
    }
    // The caller counts as authenticated only once every check has passed: a request with a good
    // service token and a bad JWT is a refusal before authentication, audited as such.
    const authenticated = () => {
      setClientId(res, clientId);
      next();
    };
    if (verifyJwt === null) {
      authenticated();
      return;
    }
    const jwt = req.headers[ACCESS_JWT_HEADER];
    verifyJwt(typeof jwt === 'string' ? jwt : undefined).then(authenticated, next);
  };
}
