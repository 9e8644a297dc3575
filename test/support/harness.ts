/**
 * Test helpers shared by the integration tests: a real agent in process on port 0, an HTTP client
 * for it, and an engine client that reads the engine's own state over its socket, independently of
 * the agent's code, so that tests check what the engine says, not what the agent says.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { type Config, loadConfig } from '../../src/config/config.js';
import { enginePlatform } from '../../src/engine/engine-platform.js';
import { type RunningAgent, type StartOptions, startAgent } from '../../src/http/app.js';
import { normalize, type Platform } from '../../src/supply-chain/platform.js';
import { OpenApiChecker } from './openapi.js';
import { REPOSITORY_PATH, sandboxInfo } from './sandbox.js';

export const TOKEN = { id: 'test-client.access', secret: 'test-secret-0123456789abcdef' } as const;
export const AUTH_HEADERS = {
  'CF-Access-Client-Id': TOKEN.id,
  'CF-Access-Client-Secret': TOKEN.secret,
  'Content-Type': 'application/json',
} as const;

let counter = 0;

export const repository = (): string => `${sandboxInfo().registry}/${REPOSITORY_PATH}`;
export const image = (tag: string): string => `${repository()}:${tag}`;

export interface Folders {
  readonly root: string;
  readonly state: string;
  readonly audit: string;
  readonly snapshots: string;
}

/** A complete agent environment for the sandbox, in fresh folders. Overrides win; undefined unsets. */
export function testEnv(
  overrides: Readonly<Record<string, string | undefined>> = {},
  environment: 'dev' | 'prod' = 'dev',
): { env: Record<string, string>; folders: Folders } {
  const root = mkdtempSync(join(tmpdir(), 'dreichor-test-'));
  const folders = { root, state: join(root, 'state'), audit: join(root, 'audit-events'), snapshots: join(root, 'snapshots') };
  mkdirSync(folders.audit);
  mkdirSync(folders.snapshots);
  counter += 1;
  const base: Record<string, string> = {
    ENVIRONMENT: environment,
    CONTAINER_NAME: `dreichor-runtime-${environment}-t${process.pid}-${counter}`,
    CF_ACCESS_CLIENT_ID: TOKEN.id,
    CF_ACCESS_CLIENT_SECRET: TOKEN.secret,
    IMAGE_REPOSITORY: repository(),
    AUDIT_EVENTS_PATH: folders.audit,
    SNAPSHOTS_PATH: folders.snapshots,
    RUNTIME_NETWORK: 'none',
    STOP_TIMEOUT_SECONDS: '2',
    START_CHECK_SECONDS: '1',
    DEPLOY_TIMEOUT_SECONDS: '30',
    STATE_DIR: folders.state,
    DOCKER_HOST: sandboxInfo().dockerHost,
    IMAGE_VERIFICATION: 'none',
  };
  return { env: withChanges(base, overrides), folders };
}

/** An environment with changes applied: a value replaces, undefined unsets. */
function withChanges(
  env: Readonly<Record<string, string>>,
  changes: Readonly<Record<string, string | undefined>>,
): Record<string, string> {
  const changed = { ...env };
  for (const [key, value] of Object.entries(changes)) {
    if (value === undefined) delete changed[key];
    else changed[key] = value;
  }
  return changed;
}

export interface ApiResponse {
  readonly status: number;
  readonly body: Record<string, unknown>;
  readonly text: string;
  readonly headers: Headers;
}

let checker: OpenApiChecker | null = null;
const OTHER_BUILD = process.env['DREICHOR_AGENT_ENTRY'] !== undefined;
const openApi = (): OpenApiChecker => {
  checker ??= OpenApiChecker.fromFile();
  return checker;
};

export class Api {
  constructor(readonly url: string) {}

  async call(
    method: string,
    path: string,
    options: { body?: unknown; raw?: string; headers?: Record<string, string>; signal?: AbortSignal } = {},
  ): Promise<ApiResponse> {
    const init: RequestInit = { method, headers: options.headers ?? { ...AUTH_HEADERS } };
    if (options.raw !== undefined) init.body = options.raw;
    else if (options.body !== undefined) init.body = JSON.stringify(options.body);
    if (options.signal !== undefined) init.signal = options.signal;
    const response = await fetch(`${this.url}${path}`, init);
    const text = await response.text();
    // Every answer the tier receives is checked against the published contract (docs/openapi.json),
    // unless the tests run another build (DREICHOR_AGENT_ENTRY: an older agent, to see a test fail on it).
    const problems = OTHER_BUILD ? [] : openApi().problems(method, path, response.status, response.headers, text);
    if (problems.length > 0) throw new Error(`the answer is not what docs/openapi.json says: ${problems.join('; ')}`);
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(text) as Record<string, unknown>;
    } catch {
      body = {};
    }
    return { status: response.status, body, text, headers: response.headers };
  }

  deploy(imageRef: string, extra: Record<string, unknown> = {}): Promise<ApiResponse> {
    return this.call('POST', '/v1/deploy', { body: { image: imageRef, ...extra } });
  }

  status(): Promise<ApiResponse> {
    return this.call('GET', '/v1/status');
  }

  stop(): Promise<ApiResponse> {
    return this.call('POST', '/v1/stop', { body: {} });
  }
}

export interface TestAgent {
  readonly agent: RunningAgent;
  readonly config: Config;
  readonly env: Record<string, string>;
  readonly folders: Folders;
  readonly api: Api;
  /** Closes the agent, removes its containers and folders. */
  cleanup(): Promise<void>;
  auditLines(): Record<string, unknown>[];
  /**
   * Runs `body` with another agent for this runtime, on this agent's state with `changes` to its
   * environment; this agent is closed meanwhile and started again afterwards (agent and api then
   * reach the new process state).
   */
  standIn(changes: Readonly<Record<string, string | undefined>>, body: (other: StandIn) => Promise<void>): Promise<void>;
}

export interface StandIn {
  readonly agent: RunningAgent;
  readonly api: Api;
  readonly config: Config;
}

export async function startTestAgent(
  overrides: Readonly<Record<string, string | undefined>> = {},
  options: StartOptions & { environment?: 'dev' | 'prod' } = {},
): Promise<TestAgent> {
  const { env, folders } = testEnv(overrides, options.environment);
  const config = loadConfig(env);
  const logger = pino({ level: process.env['TEST_LOG'] ?? 'silent' });
  const launch = (c: Config) => startAgent(c, { logger, port: 0, ...options });
  let agent = await launch(config);
  let api = new Api(agent.url);
  return {
    get agent() {
      return agent;
    },
    get api() {
      return api;
    },
    config,
    env,
    folders,
    cleanup: async () => {
      await agent.close();
      await removeContainersNamed(config.containerName);
      rmSync(folders.root, { recursive: true, force: true });
    },
    auditLines: () => readAudit(config.stateDir),
    async standIn(changes, body) {
      // One agent per STATE_DIR, and a runtime that carries this agent's labels is never taken over
      // from an empty state: the stand-in runs on this agent's own state while this one is closed.
      await agent.close();
      const other = loadConfig(withChanges(env, changes));
      const stand = await launch(other);
      try {
        await body({ agent: stand, api: new Api(stand.url), config: other });
      } finally {
        await stand.close();
        agent = await launch(config);
        api = new Api(agent.url);
      }
    },
  };
}

export function readAudit(stateDir: string): Record<string, unknown>[] {
  let text = '';
  try {
    text = readFileSync(join(stateDir, 'audit.jsonl'), 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

// ---------------------------------------------------------------- the engine's own view

export interface EngineContainer {
  Id: string;
  Name: string;
  Image: string;
  State: {
    Running: boolean;
    Status: string;
    StartedAt: string;
    FinishedAt: string;
    ExitCode: number;
    Health?: { Status: string };
  };
  Config: { Image: string; Env: string[]; Labels: Record<string, string> };
  HostConfig: {
    NetworkMode: string;
    RestartPolicy: { Name: string };
    Mounts?: { Type: string; Source: string; Target: string }[];
  };
  Mounts: { Type: string; Source: string; Destination: string }[];
}

export interface EngineSummary {
  Id: string;
  Names: string[];
  State: string;
  Labels: Record<string, string>;
}

function engineRequest(socketPath: string, method: string, path: string): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method, timeout: 30_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // not JSON: keep the text
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`engine ${method} ${path} timed out`)));
    req.end();
  });
}

/** The engine behind `socketPath`, read directly over its API. */
export const engineAt = (socket: string | (() => string)) => {
  const at = () => (typeof socket === 'string' ? socket : socket());
  return {
    async inspect(nameOrId: string): Promise<EngineContainer | null> {
      const { status, body } = await engineRequest(at(), 'GET', `/containers/${encodeURIComponent(nameOrId)}/json`);
      if (status === 404) return null;
      if (status !== 200) throw new Error(`inspect ${nameOrId}: ${status} ${JSON.stringify(body)}`);
      return body as EngineContainer;
    },
    /** Every container, running or not, whose labels include all of `labels`. */
    async list(labels: Record<string, string>): Promise<EngineSummary[]> {
      const filters = encodeURIComponent(JSON.stringify({ label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) }));
      const { body } = await engineRequest(at(), 'GET', `/containers/json?all=true&filters=${filters}`);
      return body as EngineSummary[];
    },
    /** Containers whose name starts with `prefix` (the runtime's name and its staging names). */
    async named(prefix: string): Promise<EngineSummary[]> {
      const { body } = await engineRequest(
        at(),
        'GET',
        `/containers/json?all=true&filters=${encodeURIComponent(JSON.stringify({ name: [prefix] }))}`,
      );
      return (body as EngineSummary[]).filter((c) => c.Names.some((n) => n.startsWith(`/${prefix}`)));
    },
    /** The engine's platform, read as the agent reads it (src/engine/engine-platform.ts). */
    async platform(): Promise<Platform> {
      const version = await engineRequest(at(), 'GET', '/version');
      const info = await engineRequest(at(), 'GET', '/info');
      return normalize(enginePlatform(version.body, info.body));
    },
    async imageId(ref: string): Promise<string | null> {
      const { status, body } = await engineRequest(at(), 'GET', `/images/${encodeURIComponent(ref)}/json`);
      return status === 200 ? (body as { Id: string }).Id : null;
    },
    async remove(id: string): Promise<void> {
      await engineRequest(at(), 'DELETE', `/containers/${encodeURIComponent(id)}?force=true`);
    },
    async start(id: string): Promise<void> {
      const { status, body } = await engineRequest(at(), 'POST', `/containers/${encodeURIComponent(id)}/start`);
      if (status !== 204 && status !== 304) throw new Error(`start ${id}: ${status} ${JSON.stringify(body)}`);
    },
    /** Creates a container as an operator would, by hand: with `restartPolicy` "always", say. */
    async create(name: string, imageRef: string, labels: Record<string, string>, restartPolicy = 'no'): Promise<string> {
      return new Promise((resolve, reject) => {
        const payload = JSON.stringify({
          Image: imageRef,
          Labels: labels,
          HostConfig: { NetworkMode: 'none', RestartPolicy: { Name: restartPolicy } },
        });
        const req = request(
          {
            socketPath: at(),
            path: `/containers/create?name=${encodeURIComponent(name)}`,
            method: 'POST',
            headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => {
              const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { Id?: string; message?: string };
              if (body.Id === undefined) reject(new Error(`create ${name}: ${body.message ?? res.statusCode}`));
              else resolve(body.Id);
            });
          },
        );
        req.on('error', reject);
        req.end(payload);
      });
    },
  };
};

/** The sandbox's shared engine. */
export const engine = engineAt(() => sandboxInfo().socketPath);

export async function removeContainersNamed(prefix: string): Promise<void> {
  for (const c of await engine.named(prefix)) await engine.remove(c.Id);
}

/**
 * Watches the engine while `during` runs and records the most containers of `prefix` ever seen
 * running at once. Polls the engine directly every 20 ms; bounded by `during` itself.
 */
export async function maxRunningDuring(prefix: string, during: () => Promise<unknown>): Promise<number> {
  let max = 0;
  let done = false;
  const watcher = (async () => {
    while (!done) {
      const running = (await engine.named(prefix)).filter((c) => c.State === 'running').length;
      max = Math.max(max, running);
      await sleep(20);
    }
  })();
  try {
    await during();
  } finally {
    done = true;
    await watcher;
  }
  return max;
}

/** Polls `check` every 100 ms until it returns true or `timeoutMs` passes. */
export async function eventually(what: string, timeoutMs: number, check: () => Promise<boolean> | boolean): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await check()) return;
    await sleep(100);
  }
  throw new Error(`${what}: not true within ${timeoutMs} ms`);
}
