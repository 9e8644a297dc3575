import type { JWTVerifyGetKey } from 'jose';
import { AgentError, describe } from './errors.js';
import { httpGet } from './supply-chain/http-get.js';
import * as z from './zod.js';

/**
 * Cloudflare Access's signing keys (the team's JWKS), fetched, cached and kept through an outage of
 * the key endpoint.
 *
 * Security, and the brake: the emergency stop is a request like any other, so with the JWT check on
 * it depends on these keys. jose's remote key set forgets its keys once they are 10 minutes old and
 * the endpoint does not answer: every request, `POST /v1/stop` included, was then 503 for as long as
 * the outage lasted. Here the last good keys are kept and used while a refresh fails, up to
 * `maxStaleMs` (Cloudflare keeps a rotated-out key valid for 7 days); a refresh of old keys runs in
 * the background, so no request waits for an endpoint that hangs. A token naming an unknown `kid`
 * (Cloudflare rotated its keys) fetches again at once, at most once per cool-down, so a flood of
 * made-up `kid`s cannot make the agent hammer the endpoint. An answer that is not a JWKS (an HTML
 * page with 200) is an outage too, never the caller's fault: 503 keys_unavailable, not 401.
 */
export interface AccessKeysOptions {
  readonly url: string;
  readonly fetchTimeoutMs: number;
  /** The least time between two fetches. */
  readonly cooldownMs: number;
  /** Keys older than this are refreshed (in the background while they are still usable). */
  readonly maxAgeMs: number;
  /** Keys older than this are not used any more: fail closed. */
  readonly maxStaleMs: number;
  /** The cache's clock; tests move it. */
  readonly now: () => number;
  readonly onRefreshFailed: (error: AgentError) => void;
}

type Jose = typeof import('jose');

// A JWKS as RFC 7517 has it: an object with a list of keys, each an object with a "kty".
const jwksSchema = z.object({ keys: z.array(z.looseObject({ kty: z.string() })).check(z.maxLength(100)) });

interface Fetched {
  readonly at: number;
  readonly keys: JWTVerifyGetKey;
}

export interface AccessKeys {
  readonly getKey: JWTVerifyGetKey;
  /** Seconds since the keys in use were fetched; null before the first fetch. */
  ageSeconds(): number | null;
}

export function createAccessKeys(jose: Jose, options: AccessKeysOptions): AccessKeys {
  let fetched: Fetched | null = null;
  let lastAttempt = Number.NEGATIVE_INFINITY;
  let lastFailure: AgentError | null = null;
  let pending: Promise<Fetched> | null = null;

  const refresh = (): Promise<Fetched> => {
    pending ??= (async () => {
      lastAttempt = options.now();
      try {
        const keys = jose.createLocalJWKSet(await fetchJwks(options));
        fetched = { at: options.now(), keys };
        lastFailure = null;
        return fetched;
      } catch (error) {
        lastFailure =
          error instanceof AgentError
            ? error
            : unavailable(`the key set does not parse (${describe(error).slice(0, 200)})`, error);
        options.onRefreshFailed(lastFailure);
        throw lastFailure;
      } finally {
        pending = null;
      }
    })();
    return pending;
  };
  const coolingDown = () => options.now() - lastAttempt < options.cooldownMs;

  /** Keys that may be used now, fetching only when there are none. */
  const usable = async (): Promise<Fetched> => {
    const age = fetched === null ? Number.POSITIVE_INFINITY : options.now() - fetched.at;
    if (fetched !== null && age <= options.maxStaleMs) {
      if (age > options.maxAgeMs && !coolingDown()) refresh().catch(() => undefined);
      return fetched;
    }
    // None, or too old to trust: wait for a fetch, but not more often than the cool-down allows.
    if (coolingDown() && pending === null && lastFailure !== null) throw lastFailure;
    return refresh();
  };

  return {
    getKey: async (header, token) => {
      const current = await usable();
      try {
        return await current.keys(header, token);
      } catch (error) {
        // A refresh under way (of old keys) is waited for; a new one only after the cool-down.
        if (!(error instanceof jose.errors.JWKSNoMatchingKey) || (pending === null && coolingDown())) throw error;
        const again = await refresh();
        return again.keys(header, token);
      }
    },
    ageSeconds: () => (fetched === null ? null : Math.max(0, Math.floor((options.now() - fetched.at) / 1000))),
  };
}

const unavailable = (why: string, cause?: unknown) =>
  new AgentError(503, `Cloudflare Access signing keys could not be fetched (${why}); refusing until they can be`, {
    code: 'keys_unavailable',
    cause,
  });

/** A key set is a few keys: anything larger is not one (and is not read into memory). */
const MAX_JWKS_BYTES = 64 * 1024;

// Memory: node:http(s) rather than the global fetch, whose first use loads undici for the process's
// life (about 16 MiB; supply-chain/http-get.ts).
async function fetchJwks(options: AccessKeysOptions): Promise<z.infer<typeof jwksSchema>> {
  const signal = AbortSignal.timeout(options.fetchTimeoutMs);
  const why = (error: unknown) => (error instanceof Error && error.name === 'TimeoutError' ? 'timed out' : describe(error));
  let text = '';
  try {
    // Security: the keys come from the configured URL only; a redirect is not followed (httpGet never does).
    const answer = await httpGet(new URL(options.url), { accept: 'application/json, application/jwk-set+json' }, signal);
    if (answer.status !== 200) {
      answer.discard();
      throw unavailable(`the endpoint answered ${answer.status}`);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of answer.body) {
      size += chunk.length;
      if (size > MAX_JWKS_BYTES) {
        answer.discard();
        throw unavailable(`the answer is larger than ${MAX_JWKS_BYTES} bytes`);
      }
      chunks.push(chunk);
    }
    text = Buffer.concat(chunks).toString('utf8');
  } catch (error) {
    throw error instanceof AgentError ? error : unavailable(why(error), error);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw unavailable('the answer is not JSON', error);
  }
  const parsed = jwksSchema.safeParse(json);
  if (!parsed.success) throw unavailable('the answer is not a JSON Web Key Set');
  return parsed.data;
}
