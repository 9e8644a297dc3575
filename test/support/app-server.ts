/**
 * The real HTTP app (createApp: the status fast path, then every middleware in its order) over the
 * scripted engine, on an ephemeral loopback port: for the unit tests of what the app answers. Its
 * state and audit files are in a temporary folder removed at exit.
 */
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { type Logger, pino } from 'pino';
import type { AccessJwtVerifier } from '../../src/auth.js';
import type { Deployer } from '../../src/deploy/deployer.js';
import { createApp } from '../../src/http/app.js';
import { RefusalThrottle } from '../../src/http/refusals.js';
import { AuditLog } from '../../src/state/audit.js';
import { FakeEngine } from './fake-engine.js';
import { tempDir } from './temp-dir.js';
import { unitConfig, unitDeployer } from './unit-config.js';

/** The runtime's fixed name in `unitConfig`'s environment (dev). */
export const RUNTIME_NAME = 'dreichor-runtime-dev';
/** `unitConfig`'s service token, as Cloudflare Access sends it. */
export const SERVICE_AUTH: Readonly<Record<string, string>> = {
  'cf-access-client-id': 'client.access',
  'cf-access-client-secret': 'a-secret-of-enough-length',
};
export const JSON_TYPE: Readonly<Record<string, string>> = { 'content-type': 'application/json' };

export interface AppServer {
  readonly base: string;
  readonly dir: string;
  readonly engine: FakeEngine;
  readonly deployer: Deployer;
  /** The refusals' audit log (the app's own; the deployer writes `state/audit.jsonl`). */
  readonly auditPath: string;
  close(): Promise<void>;
}

export interface AppServerOptions {
  readonly logger?: Logger;
  readonly verifyJwt?: AccessJwtVerifier | null;
  /** Image retention's hook: called once a deploy has answered 200. */
  readonly afterDeployed?: () => void;
}

/** Starts the app with a running runtime already there (`engine.seed`). */
export async function startAppServer(name: string, options: AppServerOptions = {}): Promise<AppServer> {
  const dir = tempDir(name);
  const engine = new FakeEngine();
  engine.seed(RUNTIME_NAME);
  const config = unitConfig(dir);
  const { deployer } = await unitDeployer(config, engine);
  const auditPath = join(dir, 'app-audit.jsonl');
  const audit = await AuditLog.open(auditPath);
  const refusals = new RefusalThrottle((summary, reason) => audit.refusalsCounted(summary, reason));
  const app = createApp({
    config,
    deployer,
    audit,
    refusals,
    logger: options.logger ?? pino({ level: 'silent' }),
    verifyJwt: options.verifyJwt ?? null,
    ...(options.afterDeployed === undefined ? {} : { afterDeployed: options.afterDeployed }),
  });
  const server: Server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    dir,
    engine,
    deployer,
    auditPath,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await deployer.shutdown();
      await refusals.close();
      await audit.close();
    },
  };
}

export interface RawAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** The parsed JSON answer; `{ empty: true }` when there was no body (a HEAD). */
  readonly json: Record<string, unknown>;
}

/**
 * One request by node:http, because fetch sends no body with a GET. A body goes with its
 * Content-Length, or, with `chunked`, as one chunk (Transfer-Encoding: chunked, no length).
 */
export function rawRequest(
  base: string,
  method: string,
  path: string,
  headers: Readonly<Record<string, string>>,
  body?: string,
  chunked = false,
): Promise<RawAnswer> {
  // node:http sends a GET's body chunked only when told to.
  const framing =
    body === undefined
      ? {}
      : chunked
        ? { 'transfer-encoding': 'chunked' }
        : { 'content-length': String(Buffer.byteLength(body)) };
  return new Promise((resolve, reject) => {
    const req = request(`${base}${path}`, { method, headers: { ...headers, ...framing }, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
      });
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          json: (text === '' ? { empty: true } : JSON.parse(text)) as Record<string, unknown>,
        }),
      );
    });
    req.on('error', reject);
    if (chunked && body !== undefined) req.write(body);
    req.end(chunked ? undefined : body);
  });
}
