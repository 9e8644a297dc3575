import { secretMatcher } from '../auth.js';
import { createRedactor, type NamedSecret } from '../policy/redact.js';

/**
 * What of a request's headers and URL may be written down: the audit log's `claimed_client_id`, the
 * request log's `url` and `cf_ray`. Everything else a request carries is never written anywhere.
 *
 * Security: a caller that swaps the two token headers (`CF-Access-Client-Id: <secret>`, an easy slip
 * in a hand-written script) used to have its secret written into the hash-chained audit log, where
 * no line can be removed without breaking the chain: the only remedy was rotating the token. A value
 * is now written only when it has the shape of what it claims to be and is no form of any configured
 * secret (current or rotating service token secret, registry password, the runtime's secrets):
 * compared by hash in constant time for the value itself, and searched with the redactor for every
 * encoding it knows (hex, base64, percent-encoding, JSON escapes, case). Anything else is a marker.
 */
export interface HeaderGuard {
  /** The CF-Access-Client-Id of a request that failed authentication, as it may be audited. */
  claimedClientId(value: string | readonly string[] | undefined): string | null;
  /** The request's path for a log line: one of the agent's endpoints, or a marker; never the query. */
  path(url: string | undefined): string;
  /** Cloudflare's ray id for a log line, if it has a ray id's shape. */
  cfRay(value: string | readonly string[] | undefined): string | undefined;
}

/** Written instead of a claimed client id that is a configured secret in any form. */
export const SECRET_MARKER = '[withheld: a configured secret]';
/** Written instead of a claimed client id that does not have a client id's shape. */
export const NOT_A_CLIENT_ID_MARKER = '[withheld: not a client id]';
/** Written instead of a path that is none of the agent's endpoints. */
export const OTHER_PATH_MARKER = '[withheld: not an endpoint of the agent]';
/** Written instead of a cf-ray header that is not a ray id. */
export const NOT_A_RAY_MARKER = '[withheld: not a ray id]';

/**
 * A Cloudflare service token's client id is `<32 hex>.access`. The agent's own tests and examples
 * use readable names before `.access`, so the grammar is letters, digits, `_` and `-`, then
 * `.access`. A secret (64 hex characters for Cloudflare's) never ends in `.access`; one that is
 * configured to would still be caught by the hash and the redactor.
 */
const CLIENT_ID_GRAMMAR = /^[A-Za-z0-9][A-Za-z0-9_-]{0,100}\.access$/;
/** `<16 hex>-<colo>`, as Cloudflare sends it; the colo is optional for an origin's own tests. */
const RAY_GRAMMAR = /^[0-9a-f]{16}(-[A-Z]{3})?$/;
/**
 * A path that is not an endpoint may be anything, a secret encoded twice or more included, which no
 * redactor can find: it is not written. A 404 says enough that the caller used a wrong path.
 */
const ENDPOINTS: ReadonlySet<string> = new Set(['/v1/deploy', '/v1/status', '/v1/stop']);

export function createHeaderGuard(secrets: readonly NamedSecret[], clientIds: readonly string[] = []): HeaderGuard {
  const isSecret = secretMatcher(secrets.map((s) => s.value));
  const isClientId = secretMatcher(clientIds);
  const redact = createRedactor(secrets);
  const holdsSecret = (value: string) => isSecret(value) || redact(value) !== value;
  return {
    claimedClientId: (value) => {
      if (typeof value !== 'string') return null;
      if (holdsSecret(value)) return SECRET_MARKER;
      // A configured id outside the grammar is still recorded as what it is.
      return CLIENT_ID_GRAMMAR.test(value) || isClientId(value) ? value : NOT_A_CLIENT_ID_MARKER;
    },
    path: (url) => {
      const path = (url ?? '').split('?', 1)[0] ?? '';
      return ENDPOINTS.has(path) ? path : OTHER_PATH_MARKER;
    },
    cfRay: (value) => {
      if (typeof value !== 'string') return undefined;
      return RAY_GRAMMAR.test(value) && !holdsSecret(value) ? value : NOT_A_RAY_MARKER;
    },
  };
}
