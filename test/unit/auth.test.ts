import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type CryptoKey, generateKeyPair } from 'jose';
import { checkServiceToken, createAccessJwtVerifier } from '../../src/auth.js';
import { AgentError } from '../../src/errors.js';
import { type AccessStandIn, AUD, startAccessStandIn, TEAM } from '../support/jwks.js';

const TOKENS = [
  { clientId: 'primary.access', clientSecret: 'primary-secret-0123456789' },
  { clientId: 'rotation.access', clientSecret: 'rotation-secret-0123456789' },
];

/** Polls `check` on real timers (only Date is mocked), for at most 5 s. */
async function waitFor(check: () => boolean, what: string): Promise<void> {
  for (const until = performance.now() + 5_000; !check(); ) {
    if (performance.now() > until) assert.fail(`timed out waiting: ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

const status = (fn: () => unknown): number => {
  try {
    fn();
    return 200;
  } catch (e) {
    assert.ok(e instanceof AgentError, String(e));
    return e.status;
  }
};

describe('service token', () => {
  const h = (id?: string, secret?: string) => ({ 'cf-access-client-id': id, 'cf-access-client-secret': secret });

  it('accepts either configured pair, and names which', () => {
    assert.equal(checkServiceToken(h('primary.access', 'primary-secret-0123456789'), TOKENS), 'primary.access');
    assert.equal(checkServiceToken(h('rotation.access', 'rotation-secret-0123456789'), TOKENS), 'rotation.access');
  });

  it('refuses anything else with 401', () => {
    for (const [id, secret] of [
      [undefined, undefined],
      ['primary.access', undefined],
      [undefined, 'primary-secret-0123456789'],
      ['', ''],
      ['primary.access', 'primary-secret-012345678'],
      ['primary.access', 'primary-secret-01234567890'],
      ['primary.access', 'rotation-secret-0123456789'],
      ['rotation.access', 'primary-secret-0123456789'],
      ['PRIMARY.ACCESS', 'primary-secret-0123456789'],
    ] as const) {
      assert.equal(
        status(() => checkServiceToken(h(id, secret), TOKENS)),
        401,
        `${id} / ${secret}`,
      );
    }
    // A header sent twice arrives as an array: refused, not joined.
    assert.equal(
      status(() =>
        checkServiceToken(
          { 'cf-access-client-id': ['primary.access', 'x'], 'cf-access-client-secret': 'primary-secret-0123456789' },
          TOKENS,
        ),
      ),
      401,
    );
  });
});

describe('Cloudflare Access JWT', () => {
  let access: AccessStandIn;
  let other: CryptoKey;

  before(async () => {
    access = await startAccessStandIn();
    other = (await generateKeyPair('RS256')).privateKey;
  });
  after(async () => {
    await access.close();
  });

  const verifier = () =>
    createAccessJwtVerifier({ teamDomain: TEAM, audience: AUD, certsUrl: access.certsUrl }, { cooldownMs: 0 });

  const outcome = async (verify: (t: string | undefined) => Promise<void>, jwt: string | undefined): Promise<string> => {
    try {
      await verify(jwt);
      return 'ok';
    } catch (e) {
      assert.ok(e instanceof AgentError, String(e));
      return `${e.status} ${e.reason}`;
    }
  };

  it('accepts a valid token, and one whose audience list contains ours', async () => {
    const verify = verifier();
    assert.equal(await outcome(verify, await access.sign()), 'ok');
    assert.equal(await outcome(verify, await access.sign({ aud: ['another-app', AUD] })), 'ok');
  });

  it('refuses missing, wrong audience, wrong issuer, expired, foreign key, alg none and HS256 tokens', async () => {
    const verify = verifier();
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const payload = {
      iss: `https://${TEAM}`,
      aud: [AUD],
      exp: Math.floor(Date.now() / 1000) + 300,
      iat: Math.floor(Date.now() / 1000),
    };
    const none = `${b64({ alg: 'none', kid: 'k1' })}.${b64(payload)}.`;
    // The classic confusion: HS256 "signed" with the RSA public key as the HMAC secret.
    const hsInput = `${b64({ alg: 'HS256', kid: 'k1' })}.${b64(payload)}`;
    const hs256 = `${hsInput}.${createHmac('sha256', access.publicPem).update(hsInput).digest('base64url')}`;
    const cases: [string, string | undefined, RegExp][] = [
      ['missing', undefined, /^401 missing Cf-Access-Jwt-Assertion/],
      ['empty', '', /^401 missing/],
      ['garbage', 'not.a.jwt', /^401 invalid Cloudflare Access token/],
      ['wrong audience', await access.sign({ aud: 'another-app' }), /^401 .*claim "aud"/],
      ['wrong issuer', await access.sign({ iss: 'https://evil.cloudflareaccess.com' }), /^401 .*claim "iss"/],
      ['expired', await access.sign({ exp: Math.floor(Date.now() / 1000) - 120 }), /^401 .*expired/],
      ['signed by another key', await access.sign({ key: other }), /^401 .*signature/],
      ['alg none', none, /^401 /],
      ['HS256 with the public key', hs256, /^401 .*algorithm not allowed/],
    ];
    for (const [name, jwt, expected] of cases) {
      assert.match(await outcome(verify, jwt), expected, name);
    }
  });

  it('allows up to 60 s of clock skew on nbf, iat and exp, and no more; refuses a token without exp', async () => {
    const verify = verifier();
    const now = Math.floor(Date.now() / 1000);
    const cases: [string, Parameters<AccessStandIn['sign']>[0], RegExp | 'ok'][] = [
      ['expired 30 s ago', { exp: now - 30 }, 'ok'],
      ['expired 90 s ago', { exp: now - 90 }, /^401 .*expired/],
      ['valid from 30 s from now', { nbf: now + 30 }, 'ok'],
      ['valid from 90 s from now', { nbf: now + 90 }, /^401 .*claim "nbf" rejected/],
      ['issued 30 s from now', { iat: now + 30 }, 'ok'],
      ['issued 90 s from now', { iat: now + 90 }, /^401 .*claim "iat" rejected/],
      ['no exp at all', { exp: null }, /^401 .*claim "exp" missing/],
    ];
    for (const [name, claims, expected] of cases) {
      const result = await outcome(verify, await access.sign(claims));
      if (expected === 'ok') assert.equal(result, 'ok', name);
      else assert.match(result, expected, name);
    }
  });

  it('fetches the keys again for an unknown kid (key rotation)', async () => {
    const verify = verifier();
    assert.equal(await outcome(verify, await access.sign()), 'ok');
    const rotated = await access.addKey('k2');
    const before = access.fetches();
    assert.equal(await outcome(verify, await access.sign({ kid: 'k2', key: rotated })), 'ok');
    assert.ok(access.fetches() > before, 'the new kid caused a fetch');
    // A kid that does not exist even after a refresh is refused.
    assert.match(await outcome(verify, await access.sign({ kid: 'k9', key: rotated })), /^401 .*unknown key/);
  });

  it('keeps the last good keys through an outage of the key endpoint, says how old they are, and fails closed after 7 days', async (t) => {
    // The clock the key cache and jose read is moved; nothing sleeps 10 minutes.
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
    const verify = createAccessJwtVerifier({ teamDomain: TEAM, audience: AUD, certsUrl: access.certsUrl });
    assert.equal(verify.keysAgeSeconds(), null);
    assert.equal(await outcome(verify, await access.sign()), 'ok');
    const first = access.fetches();
    access.setAvailable(false);
    try {
      t.mock.timers.tick(11 * 60_000);
      // Past the cache age, with the endpoint down: the brake still works.
      assert.equal(await outcome(verify, await access.sign()), 'ok');
      await waitFor(() => access.fetches() > first, 'the old keys were refreshed in the background');
      assert.equal(await outcome(verify, await access.sign()), 'ok');
      assert.ok((verify.keysAgeSeconds() ?? 0) >= 660, `keys age ${verify.keysAgeSeconds()}`);
      // A kid the old keys do not have needs the endpoint: 503, not a guess.
      t.mock.timers.tick(31_000);
      const rotated = await access.addKey('k3');
      assert.match(await outcome(verify, await access.sign({ kid: 'k3', key: rotated })), /^503 /);
      // Keys older than Cloudflare keeps a rotated key valid are not trusted any more.
      t.mock.timers.tick(7 * 24 * 3_600_000);
      assert.match(await outcome(verify, await access.sign()), /^503 Cloudflare Access signing keys could not be fetched/);
    } finally {
      access.setAvailable(true);
    }
    t.mock.timers.tick(31_000);
    assert.equal(await outcome(verify, await access.sign()), 'ok', 'back once the endpoint answers');
    assert.equal(verify.keysAgeSeconds(), 0);
  });

  it('a key endpoint that answers 200 with something other than a key set: 503 keys_unavailable, not 401', async () => {
    for (const body of ['<html>Cloudflare login</html>', '{"keys": "none"}', '[]']) {
      const server = createServer((_req, res) => res.writeHead(200, { 'Content-Type': 'text/html' }).end(body));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      try {
        const verify = createAccessJwtVerifier({
          teamDomain: TEAM,
          audience: AUD,
          certsUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/cdn-cgi/access/certs`,
        });
        const error = await verify(await access.sign()).then(
          () => null,
          (e: unknown) => e,
        );
        assert.ok(error instanceof AgentError, String(error));
        assert.equal(error.status, 503, `${body}: ${error.reason}`);
        assert.equal(error.code, 'keys_unavailable');
      } finally {
        server.close();
      }
    }
  });

  it('the key endpoint: a redirect is not followed, an oversized or stalled answer is refused (503)', async () => {
    let redirectedTo = 0;
    const server = createServer((req, res) => {
      if (req.url === '/elsewhere') redirectedTo += 1;
      if (req.url === '/redirect') res.writeHead(302, { Location: '/elsewhere' }).end();
      else if (req.url === '/huge') res.writeHead(200).end(`{"keys":[${'{},'.repeat(30_000)}{}]}`);
      else if (req.url === '/stall') res.writeHead(200).write('{"keys":');
      else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const at = (path: string) =>
        createAccessJwtVerifier({ teamDomain: TEAM, audience: AUD, certsUrl: `${base}${path}` }, { fetchTimeoutMs: 300 });
      assert.match(await outcome(at('/redirect'), await access.sign()), /^503 .*the endpoint answered 302/);
      assert.equal(redirectedTo, 0, 'the redirect was followed');
      assert.match(await outcome(at('/huge'), await access.sign()), /^503 .*larger than 65536 bytes/);
      assert.match(await outcome(at('/stall'), await access.sign()), /^503 .*\(timed out\)/);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it('fails closed when the keys cannot be fetched', async () => {
    access.setAvailable(false);
    try {
      assert.match(await outcome(verifier(), await access.sign()), /^503 Cloudflare Access signing keys could not be fetched/);
    } finally {
      access.setAvailable(true);
    }
    const nowhere = createAccessJwtVerifier(
      { teamDomain: TEAM, audience: AUD, certsUrl: 'http://127.0.0.1:9/certs' },
      { fetchTimeoutMs: 1000 },
    );
    assert.match(await outcome(nowhere, await access.sign()), /^503 /);
  });
});
