/**
 * A registry that wants Bearer tokens, as GHCR does: Debian's docker-registry with `auth: token`,
 * and a small token server of the test's own on 127.0.0.1 that hands a JWT (ES256, its certificate in
 * `x5c`) to whoever presents the right Basic credentials. A 401 from the registry names the realm; the
 * engine, the docker CLI and the agent each follow it on their own.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { importPKCS8, SignJWT } from 'jose';
import { stopChild } from './process.js';
import { freePort } from './sandbox.js';

const run = promisify(execFile);

export const TOKEN_USER = 'token-deployer';
// A throwaway password for a registry that lives for one test file on 127.0.0.1.
export const TOKEN_PASSWORD = 'token-registry-password';
const SERVICE = 'sandbox-token-registry';
const ISSUER = 'sandbox-token-issuer';

export class TokenRegistry {
  private constructor(
    readonly host: string,
    private readonly registry: ChildProcess,
    private readonly tokenServer: Server,
    /** Token requests answered: the client's user agent and the scope asked for. */
    readonly tokensIssued: readonly string[],
  ) {}

  static async start(dir: string): Promise<TokenRegistry> {
    const root = join(dir, `token-registry-${randomUUID().slice(0, 8)}`);
    mkdirSync(root, { recursive: true });
    const [key, cert] = [join(root, 'key.pem'), join(root, 'cert.pem')];
    const subject = '/CN=sandbox-token-issuer';
    const args = [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '1',
      '-subj',
      subject,
    ];
    await run('openssl', [...args, '-keyout', key, '-out', cert], { timeout: 30_000 });
    const privateKey = await importPKCS8(readFileSync(key, 'utf8'), 'ES256');
    const der = Buffer.from(readFileSync(cert, 'utf8').replace(/-----[^-]+-----|\s/g, ''), 'base64').toString('base64');

    const issued: string[] = [];
    const expected = `Basic ${Buffer.from(`${TOKEN_USER}:${TOKEN_PASSWORD}`).toString('base64')}`;
    const tokenServer = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      if (url.pathname !== '/token' || req.headers.authorization !== expected) return void res.writeHead(401).end();
      const scopes = url.searchParams.getAll('scope').flatMap((s) => s.split(' '));
      issued.push(`${req.headers['user-agent'] ?? ''} ${scopes.join(' ')}`);
      const access = scopes
        .map((s) => /^repository:([^:]+):(.+)$/.exec(s))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => ({ type: 'repository', name: m[1], actions: (m[2] ?? '').split(',') }));
      const now = Math.floor(Date.now() / 1000);
      void new SignJWT({ access })
        .setProtectedHeader({ alg: 'ES256', typ: 'JWT', x5c: [der] })
        .setIssuer(ISSUER)
        .setSubject(TOKEN_USER)
        .setAudience(SERVICE)
        .setIssuedAt(now)
        .setNotBefore(now - 60)
        .setExpirationTime(now + 600)
        .setJti(randomUUID())
        .sign(privateKey)
        .then((token) =>
          res
            .writeHead(200, { 'Content-Type': 'application/json' })
            .end(JSON.stringify({ token, access_token: token, expires_in: 600 })),
        );
    });
    await new Promise<void>((resolve) => tokenServer.listen(0, '127.0.0.1', resolve));
    const tokenPort = (tokenServer.address() as AddressInfo).port;

    const port = await freePort();
    const config = join(root, 'config.yml');
    writeFileSync(
      config,
      [
        'version: 0.1',
        'log:\n  level: warn',
        `storage:\n  filesystem:\n    rootdirectory: ${join(root, 'data')}\n  delete:\n    enabled: true`,
        `http:\n  addr: 127.0.0.1:${port}`,
        `auth:\n  token:\n    realm: http://127.0.0.1:${tokenPort}/token\n    service: ${SERVICE}\n    issuer: ${ISSUER}\n    rootcertbundle: ${cert}`,
        '',
      ].join('\n'),
    );
    const log = openSync(join(root, 'registry.log'), 'a');
    const registry = spawn('docker-registry', ['serve', config], { stdio: ['ignore', log, log] });
    const self = new TokenRegistry(`127.0.0.1:${port}`, registry, tokenServer, issued);
    const until = Date.now() + 30_000;
    for (;;) {
      const status = await fetch(`http://127.0.0.1:${port}/v2/`, { signal: AbortSignal.timeout(2_000) }).then(
        (r) => r.status,
        () => 0,
      );
      if (status === 401) return self;
      if (Date.now() > until) {
        await self.close();
        throw new Error(`the token registry did not come up: ${readFileSync(join(root, 'registry.log'), 'utf8').slice(-500)}`);
      }
      await sleep(100);
    }
  }

  async close(): Promise<void> {
    await stopChild(this.registry, 10_000);
    await new Promise<void>((resolve) => {
      this.tokenServer.close(() => resolve());
      this.tokenServer.closeAllConnections();
    });
  }
}
