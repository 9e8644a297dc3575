import { createHash } from 'node:crypto';
import type { RegistryCredentials } from '../engine/engine-port.js';
import { AgentError } from '../errors.js';
import * as z from '../zod.js';
import { type Answer, httpGet } from './http-get.js';

/**
 * The registry, read by the agent itself: the engine pulls images but cannot fetch signatures or
 * attestations. The distribution API over node:http(s) (http-get.ts), with the registry's own auth flow (a 401 naming
 * a Bearer realm is answered with a token request, or Basic), the pull's credentials, and limits on
 * everything read. Every manifest and blob fetched by digest is checked against that digest.
 *
 * Security: the answers come from the network and are only as good as their digests. HTTPS always;
 * plain HTTP only to a loopback registry, as the engine does. Credentials go to the registry and to
 * the token realm it names (as the Docker CLI does), never across a redirect to another origin.
 */
export interface RegistryTarget {
  /** `host[:port]` */
  readonly host: string;
  /** The repository path within the registry. */
  readonly path: string;
  readonly credentials: RegistryCredentials | null;
  /** Why the agent reads it, as its failures say: "for verification" unless given. */
  readonly purpose?: string;
}

export interface Fetched {
  readonly bytes: Buffer;
  readonly mediaType: string | null;
  /** `sha256:<hex>` of the bytes. */
  readonly digest: string;
}

const REQUEST_TIMEOUT_MS = 15_000;
const MAX_REDIRECTS = 5;
const MAX_TOKEN_BYTES = 64 * 1024;

export const isLoopback = (hostname: string): boolean =>
  hostname === 'localhost' || hostname === '[::1]' || /^127(?:\.\d{1,3}){3}$/.test(hostname);

const sha256 = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** The registry failed to answer (502), or did not answer in time (504). `what` names the registry. */
const unreachable = (what: string, detail: string, status: 502 | 504 = 502, purpose = 'for verification'): AgentError =>
  new AgentError(
    status,
    `the registry could not be read ${purpose} (${what}: ${detail}); nothing was pulled, the running container was not touched`,
    {
      code: 'registry_refused',
    },
  );

/** OpenSSL's answer when what it reached speaks plain HTTP, not TLS. */
const PLAIN_HTTP_ANSWERS: ReadonlySet<string> = new Set([
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'ERR_SSL_PACKET_LENGTH_TOO_LONG',
  'ERR_SSL_HTTP_REQUEST',
]);

const isTimeout = (error: unknown): boolean => error instanceof Error && error.name === 'TimeoutError';

/** node:https reports OpenSSL's failure as EPROTO, its reason in the message only. */
const SSL_REASONS: ReadonlyArray<readonly [RegExp, string]> = [
  [/wrong version number/i, 'ERR_SSL_WRONG_VERSION_NUMBER'],
  [/packet length too long/i, 'ERR_SSL_PACKET_LENGTH_TOO_LONG'],
  [/http request/i, 'ERR_SSL_HTTP_REQUEST'],
];
const sslCode = (error: Error): unknown => {
  const code = (error as { code?: unknown }).code;
  if (code !== 'EPROTO') return code;
  return SSL_REASONS.find(([reason]) => reason.test(error.message))?.[1] ?? code;
};

/** A refusal of the image: the reason names the check that failed. */
export const unverified = (reason: string): AgentError =>
  new AgentError(422, `image not verified: ${reason}; nothing was pulled or recorded, the running container was not touched`, {
    code: 'image_unverified',
  });

const tokenAnswer = z.union([
  z.looseObject({ token: z.string().check(z.minLength(1), z.maxLength(MAX_TOKEN_BYTES)) }),
  z.looseObject({ access_token: z.string().check(z.minLength(1), z.maxLength(MAX_TOKEN_BYTES)) }),
]);

export class RegistryClient {
  private authorization: string | null = null;
  private readonly origin: string;

  constructor(
    private readonly target: RegistryTarget,
    private readonly signal: AbortSignal,
    /** Per request, from sending it to the last byte of the answer. */
    private readonly requestTimeoutMs = REQUEST_TIMEOUT_MS,
  ) {
    const hostname = new URL(`http://${target.host}`).hostname;
    this.origin = `${isLoopback(hostname) ? 'http' : 'https'}://${target.host}`;
  }

  /** A manifest by tag or digest; null when the registry has none. A digest is checked. */
  async manifest(reference: string, accept: readonly string[], maxBytes: number): Promise<Fetched | null> {
    const fetched = await this.get(`/v2/${this.target.path}/manifests/${reference}`, accept, maxBytes);
    if (fetched !== null && reference.startsWith('sha256:') && fetched.digest !== reference) {
      throw unverified(`the registry served a manifest whose content is not its digest ${reference} (tampered)`);
    }
    return fetched;
  }

  /** A blob by digest, checked against it. */
  async blob(digest: string, maxBytes: number): Promise<Buffer> {
    const fetched = await this.get(`/v2/${this.target.path}/blobs/${digest}`, ['*/*'], maxBytes);
    if (fetched === null) throw unverified(`blob ${digest} is missing from the registry`);
    if (fetched.digest !== digest)
      throw unverified(`the registry served a blob whose content is not its digest ${digest} (tampered)`);
    return fetched.bytes;
  }

  /** The OCI 1.1 referrers API; null when the registry does not serve it (any 4xx, or 501). */
  referrers(digest: string, maxBytes: number): Promise<Fetched | null> {
    return this.get(`/v2/${this.target.path}/referrers/${digest}`, ['application/vnd.oci.image.index.v1+json'], maxBytes, true);
  }

  /**
   * GET with the auth flow and redirects; null on 404 (and, for `optional` endpoints, on the
   * answers of a registry that does not implement them).
   */
  private async get(path: string, accept: readonly string[], maxBytes: number, optional = false): Promise<Fetched | null> {
    let response = await this.send(path, accept);
    if (response.status === 401) {
      response.discard();
      await this.authenticate(response.header('www-authenticate'));
      response = await this.send(path, accept);
    }
    // An optional endpoint (the referrers API) that a registry refuses or lacks is "not served": the
    // tag schema is asked too, and nothing found is still a refusal (fail closed).
    const unserved = optional && ((response.status >= 400 && response.status < 500) || response.status === 501);
    if (response.status === 404 || unserved) {
      response.discard();
      return null;
    }
    if (response.status !== 200) {
      response.discard();
      throw this.unreachable(this.at(`GET ${path}`), `HTTP ${response.status}`);
    }
    const bytes = await this.read(response, maxBytes, path);
    const mediaType = response.header('content-type')?.split(';')[0]?.trim() ?? null;
    return { bytes, mediaType, digest: sha256(bytes) };
  }

  private async send(path: string, accept: readonly string[]): Promise<Answer> {
    let url = new URL(`${this.origin}${path}`);
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const headers: Record<string, string> = { Accept: accept.join(', ') };
      // Security: the registry's credentials (or token) go to the registry's own origin only.
      if (this.authorization !== null && url.origin === this.origin) headers['Authorization'] = this.authorization;
      const response = await this.fetch(url, headers, this.at(`GET ${path}`));
      if (![301, 302, 303, 307, 308].includes(response.status)) return response;
      response.discard();
      const location = response.header('location');
      if (location === null) throw this.unreachable(this.at(`GET ${path}`), 'a redirect without a location');
      url = checkedUrl(new URL(location, url), this.at(`GET ${path}`), this.target.purpose);
    }
    throw this.unreachable(this.at(`GET ${path}`), 'too many redirects');
  }

  private unreachable(what: string, detail: string, status: 502 | 504 = 502): AgentError {
    return unreachable(what, detail, status, this.target.purpose);
  }

  private async fetch(url: URL, headers: Record<string, string>, what: string): Promise<Answer> {
    try {
      return await httpGet(url, headers, AbortSignal.any([this.signal, AbortSignal.timeout(this.requestTimeoutMs)]));
    } catch (error) {
      throw this.failure(error, what);
    }
  }

  /**
   * An answer's body, capped. Security: a registry that drips its answer (a byte at a time) is cut
   * off by the request's timeout, which covers the body too; that ends as a 504 naming the registry,
   * never as an internal error.
   */
  private async read(response: Answer, maxBytes: number, what: string): Promise<Buffer> {
    try {
      return await readCapped(response, maxBytes, what);
    } catch (error) {
      if (error instanceof AgentError) throw error;
      throw this.failure(error, this.at(what.startsWith('/') ? `GET ${what}` : what));
    }
  }

  /** A failed request as the deploy reports it. */
  private failure(error: unknown, what: string): unknown {
    // The deploy abandoned (caller gone, time up): its own reason wins over ours (see Abandon).
    if (this.signal.aborted) return this.signal.reason;
    if (isTimeout(error)) return this.unreachable(what, `no complete answer within ${this.requestTimeoutMs / 1000} s`, 504);
    // node:http's own error carries the code (fetch's carried it in its cause).
    const cause = error instanceof Error ? (error.cause instanceof Error ? error.cause : error) : null;
    const code = cause === null ? undefined : sslCode(cause);
    // A registry the engine reaches over plain HTTP (daemon.json's "insecure-registries") is spoken
    // to over HTTPS here: say why it fails, not OpenSSL's record-layer complaint.
    if (typeof code === 'string' && PLAIN_HTTP_ANSWERS.has(code)) {
      return this.unreachable(
        what,
        `it answers plain HTTP, not HTTPS (${code}); the agent reads a registry over HTTPS only, plain HTTP only on loopback (localhost, 127.0.0.0/8, [::1]), whatever the engine's insecure-registries allow`,
      );
    }
    return this.unreachable(what, (cause?.message ?? String(error)).slice(0, 200));
  }

  /** What is being done, naming the registry: `<host>, GET /v2/…`. */
  private at(what: string): string {
    return `${this.target.host}, ${what}`;
  }

  /** Answers a 401: a Bearer token from the realm the registry names, or Basic credentials. */
  private async authenticate(challenge: string | null): Promise<void> {
    const creds = this.target.credentials;
    const basic = creds === null ? null : `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
    const parsed = parseChallenge(challenge ?? '');
    if (parsed?.scheme === 'basic') {
      if (basic === null)
        throw this.unreachable(this.at('authentication'), 'the registry asks for credentials and none are configured');
      this.authorization = basic;
      return;
    }
    if (parsed?.scheme !== 'bearer' || parsed.params['realm'] === undefined) {
      throw this.unreachable(this.at('authentication'), 'the registry answered 401 without a usable challenge');
    }
    const realm = checkedUrl(new URL(parsed.params['realm']), this.at('token request'), this.target.purpose);
    if (parsed.params['service'] !== undefined) realm.searchParams.set('service', parsed.params['service']);
    // Pull scope, whatever the challenge asks: the agent only reads.
    realm.searchParams.set('scope', `repository:${this.target.path}:pull`);
    const response = await this.fetch(realm, basic === null ? {} : { Authorization: basic }, this.at('token request'));
    if (response.status !== 200) {
      response.discard();
      throw this.unreachable(this.at('token request'), `HTTP ${response.status}`);
    }
    const bytes = await this.read(response, MAX_TOKEN_BYTES * 2, 'token request');
    let answer: z.infer<typeof tokenAnswer>;
    try {
      answer = tokenAnswer.parse(JSON.parse(bytes.toString('utf8')));
    } catch {
      throw this.unreachable(this.at('token request'), 'the answer holds no token');
    }
    this.authorization = `Bearer ${'token' in answer ? answer.token : answer.access_token}`;
  }
}

/** HTTPS, or plain HTTP to loopback; never credentials in a URL. */
function checkedUrl(url: URL, what: string, purpose: string | undefined): URL {
  if (url.username !== '' || url.password !== '') throw unreachable(what, 'a URL carrying credentials', 502, purpose);
  if (url.protocol === 'https:' || (url.protocol === 'http:' && isLoopback(url.hostname))) return url;
  throw unreachable(what, `refusing ${url.protocol} to ${url.hostname}: https only (plain http to loopback only)`, 502, purpose);
}

/** Reads a body up to `maxBytes`. Security: a registry cannot make the agent hold an unbounded answer. */
async function readCapped(response: Answer, maxBytes: number, what: string): Promise<Buffer> {
  const declared = Number(response.header('content-length') ?? '0');
  if (declared > maxBytes) {
    response.discard();
    throw unverified(`${what} is ${declared} bytes, more than the ${maxBytes} allowed`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response.body) {
    size += chunk.byteLength;
    if (size > maxBytes) {
      response.discard();
      throw unverified(`${what} is more than the ${maxBytes} bytes allowed`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** `Bearer realm="…",service="…"` → scheme and parameters. Linear: one pass, quoted values. */
export function parseChallenge(header: string): { scheme: string; params: Record<string, string> } | null {
  if (header.length > 4096) return null;
  const match = /^([A-Za-z]+)(?:\s+(.*))?$/.exec(header.trim());
  if (match?.[1] === undefined) return null;
  const params: Record<string, string> = Object.create(null) as Record<string, string>;
  const rest = match[2] ?? '';
  const pair = /\s*([A-Za-z_]+)\s*=\s*(?:"([^"]*)"|([^\s,"]*))\s*(?:,|$)/y;
  while (pair.lastIndex < rest.length) {
    const m = pair.exec(rest);
    if (m === null || m[0] === '') break;
    const key = m[1]?.toLowerCase();
    if (key !== undefined) params[key] = m[2] ?? m[3] ?? '';
  }
  return { scheme: match[1].toLowerCase(), params };
}
