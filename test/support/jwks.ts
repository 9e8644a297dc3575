/**
 * A Cloudflare Access stand-in for tests: real RS256 keys, a real JWKS served over HTTP on 127.0.0.1
 * (as at https://<team>/cdn-cgi/access/certs), and a signer for tokens with any claims.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type CryptoKey, exportJWK, exportSPKI, generateKeyPair, type JWK, SignJWT } from 'jose';

export const TEAM = 'dreichor.cloudflareaccess.com';
export const AUD = 'aud-tag-0123456789';

export interface TokenClaims {
  iss?: string;
  aud?: string | string[];
  /** null: no "exp" claim at all. */
  exp?: number | string | null;
  nbf?: number;
  iat?: number;
  kid?: string;
  key?: CryptoKey;
}

export interface AccessStandIn {
  readonly certsUrl: string;
  readonly publicPem: string;
  /** Number of times the keys were fetched. */
  fetches(): number;
  /** When false, the certs endpoint answers 503. */
  setAvailable(available: boolean): void;
  /** Adds a key under `kid` (Cloudflare's rotation) and returns its private half. */
  addKey(kid: string): Promise<CryptoKey>;
  sign(claims?: TokenClaims): Promise<string>;
  close(): Promise<void>;
}

export async function startAccessStandIn(): Promise<AccessStandIn> {
  const pair = await generateKeyPair('RS256', { extractable: true });
  const keys: JWK[] = [{ ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }];
  let fetches = 0;
  let available = true;
  const server = createServer((_req, res) => {
    fetches += 1;
    if (!available) {
      res.writeHead(503).end();
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ keys }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    certsUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/cdn-cgi/access/certs`,
    publicPem: await exportSPKI(pair.publicKey),
    fetches: () => fetches,
    setAvailable: (a) => {
      available = a;
    },
    addKey: async (kid) => {
      const rotated = await generateKeyPair('RS256', { extractable: true });
      keys.push({ ...(await exportJWK(rotated.publicKey)), kid, alg: 'RS256', use: 'sig' });
      return rotated.privateKey;
    },
    sign: (claims = {}) => {
      const jwt = new SignJWT({ email: 'deploy-bot', type: 'app' })
        .setProtectedHeader({ alg: 'RS256', kid: claims.kid ?? 'k1' })
        .setIssuer(claims.iss ?? `https://${TEAM}`)
        .setAudience(claims.aud ?? [AUD])
        .setIssuedAt(claims.iat);
      if (claims.exp !== null) jwt.setExpirationTime(claims.exp ?? '5m');
      if (claims.nbf !== undefined) jwt.setNotBefore(claims.nbf);
      return jwt.sign(claims.key ?? pair.privateKey);
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
