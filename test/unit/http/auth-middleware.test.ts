/**
 * The credential checks as Express runs them (src/auth.ts's middleware), with the Access JWT check on:
 * which header each check reads, that a request counts as authenticated only once both pass, and what
 * a refusal says. The checks' own cases are in test/unit/auth.test.ts; these are the seams between them.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import express, { type ErrorRequestHandler } from 'express';
import { type AccessJwtVerifier, authenticate, checkServiceToken, createAccessJwtVerifier } from '../../../src/auth.js';
import { AgentError } from '../../../src/errors.js';
import { authenticatedClient } from '../../../src/http/respond.js';
import { type AccessStandIn, AUD, startAccessStandIn, TEAM } from '../../support/jwks.js';

const TOKENS = [
  { clientId: 'primary.access', clientSecret: 'primary-secret-0123456789' },
  { clientId: 'rotation.access', clientSecret: 'rotation-secret-0123456789' },
];
const GOOD = { 'cf-access-client-id': 'primary.access', 'cf-access-client-secret': 'primary-secret-0123456789' };

async function listen(handler: express.Express): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}
const close = (server: Server) =>
  new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });

/** An app with only the middleware: 200 with the client id it authenticated, or the refusal. */
function appWith(verifyJwt: AccessJwtVerifier | null): express.Express {
  const app = express();
  app.use(authenticate(TOKENS, verifyJwt));
  app.get('/', (_req, res) => {
    res.json({ client: authenticatedClient(res) });
  });
  const errors: ErrorRequestHandler = (err: unknown, _req, res, _next) => {
    assert.ok(err instanceof AgentError, String(err));
    res.status(err.status).json({ reason: err.reason, code: err.code ?? null });
  };
  app.use(errors);
  return app;
}

describe('the authentication middleware, with the Access JWT check on', () => {
  let access: AccessStandIn;
  let withJwt: { server: Server; url: string };
  let tokenOnly: { server: Server; url: string };
  before(async () => {
    access = await startAccessStandIn();
    const verify = createAccessJwtVerifier({ teamDomain: TEAM, audience: AUD, certsUrl: access.certsUrl }, { cooldownMs: 0 });
    withJwt = await listen(appWith(verify));
    tokenOnly = await listen(appWith(null));
  });
  after(async () => {
    await close(withJwt.server);
    await close(tokenOnly.server);
    await access.close();
  });

  const get = async (url: string, headers: Record<string, string>) => {
    const res = await fetch(url, { headers });
    return { status: res.status, body: (await res.json()) as { client?: string; reason?: string } };
  };

  it('lets a request in with both the service token and a valid Cf-Access-Jwt-Assertion, as its client', async () => {
    const r = await get(withJwt.url, { ...GOOD, 'cf-access-jwt-assertion': await access.sign() });
    assert.equal(r.status, 200, r.body.reason);
    assert.equal(r.body.client, 'primary.access');
  });

  it('refuses a good service token without the JWT, or with a JWT in another header, or an invalid one', async () => {
    const jwt = await access.sign();
    for (const [what, headers, reason] of [
      ['no JWT', GOOD, /^missing Cf-Access-Jwt-Assertion header$/],
      ['the JWT as a bearer token', { ...GOOD, authorization: `Bearer ${jwt}` }, /^missing Cf-Access-Jwt-Assertion/],
      ['the JWT in a cookie', { ...GOOD, cookie: `CF_Authorization=${jwt}` }, /^missing Cf-Access-Jwt-Assertion/],
      ['garbage', { ...GOOD, 'cf-access-jwt-assertion': 'not.a.jwt' }, /^invalid Cloudflare Access token \(malformed\)$/],
    ] as const) {
      const r = await get(withJwt.url, headers);
      assert.equal(r.status, 401, what);
      assert.match(r.body.reason ?? '', reason, what);
    }
  });

  it('refuses a valid JWT without the service token: both checks, always', async () => {
    const r = await get(withJwt.url, { 'cf-access-jwt-assertion': await access.sign() });
    assert.equal(r.status, 401);
    assert.match(r.body.reason ?? '', /^missing CF-Access-Client-Id or CF-Access-Client-Secret header$/);
  });

  it('without the JWT check, the service token alone lets a request in, as the token that matched', async () => {
    const primary = await get(tokenOnly.url, GOOD);
    assert.deepEqual([primary.status, primary.body.client], [200, 'primary.access']);
    const rotation = await get(tokenOnly.url, {
      'cf-access-client-id': 'rotation.access',
      'cf-access-client-secret': 'rotation-secret-0123456789',
    });
    assert.deepEqual([rotation.status, rotation.body.client], [200, 'rotation.access']);
  });

  it('keeps the keys it fetched for a while: ten checks, one fetch', async () => {
    const verify = createAccessJwtVerifier({ teamDomain: TEAM, audience: AUD, certsUrl: access.certsUrl });
    const before = access.fetches();
    for (let i = 0; i < 10; i += 1) await verify(await access.sign());
    assert.equal(access.fetches() - before, 1);
  });
});

describe('a service token refusal says which problem, never which token', () => {
  const reason = (headers: Record<string, string | undefined>): string => {
    try {
      checkServiceToken(headers, TOKENS);
      return 'accepted';
    } catch (e) {
      assert.ok(e instanceof AgentError);
      assert.equal(e.status, 401);
      return e.reason;
    }
  };
  it('an empty or absent header is missing; a wrong value is invalid', () => {
    const missing = 'missing CF-Access-Client-Id or CF-Access-Client-Secret header';
    assert.equal(reason({ ...GOOD, 'cf-access-client-id': '' }), missing);
    assert.equal(reason({ ...GOOD, 'cf-access-client-secret': '' }), missing);
    assert.equal(reason({ 'cf-access-client-id': 'primary.access' }), missing);
    assert.equal(reason({ ...GOOD, 'cf-access-client-secret': 'rotation-secret-0123456789' }), 'invalid service token');
  });
});

describe('signing keys that cannot be had: 503, fail closed', () => {
  const outcome = async (verify: AccessJwtVerifier, jwt: string) => {
    try {
      await verify(jwt);
      return { status: 200, code: null as string | null, reason: '' };
    } catch (e) {
      assert.ok(e instanceof AgentError, String(e));
      return { status: e.status, code: e.code ?? null, reason: e.reason };
    }
  };

  it('a certs endpoint that answers something else than a key set, or does not answer in time', async () => {
    let answer: 'junk' | 'silence' = 'junk';
    const certs = createServer((_req, res) => {
      if (answer === 'junk') res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"keys": 5}');
      // silence: never answers
    });
    await new Promise<void>((resolve) => certs.listen(0, '127.0.0.1', resolve));
    const certsUrl = `http://127.0.0.1:${(certs.address() as AddressInfo).port}/cdn-cgi/access/certs`;
    const access = await startAccessStandIn();
    try {
      const jwt = await access.sign();
      const junk = await outcome(createAccessJwtVerifier({ teamDomain: TEAM, audience: AUD, certsUrl }), jwt);
      assert.deepEqual([junk.status, junk.code], [503, 'keys_unavailable'], junk.reason);
      answer = 'silence';
      const started = performance.now();
      const silent = await outcome(
        createAccessJwtVerifier({ teamDomain: TEAM, audience: AUD, certsUrl }, { fetchTimeoutMs: 300 }),
        jwt,
      );
      assert.deepEqual([silent.status, silent.code], [503, 'keys_unavailable'], silent.reason);
      assert.ok(performance.now() - started < 3_000, 'the fetch timeout is the one configured');
    } finally {
      certs.closeAllConnections();
      await new Promise<void>((resolve) => certs.close(() => resolve()));
      await access.close();
    }
  });
});
