/**
 * The private Docker engine, image registries and test images that the tests (and the demo and the
 * bench) run against. Nothing here touches the host's own engine: the engine gets its own socket and
 * folders under a temporary directory, no bridge and no iptables, and the registries listen on
 * 127.0.0.1. A library: `with-sandbox.ts` is the command that runs the tests inside one.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { stopChild } from './process.js';

const run = promisify(execFile);

export const REPOSITORY_PATH = 'dreichor/runtime';
export const AUTH_USER = 'deployer';
// A throwaway password for a registry that lives for one test run on 127.0.0.1.
export const AUTH_PASSWORD = 'sandbox-registry-password';

/** What the tests get to know about the sandbox, through the environment. */
export interface SandboxInfo {
  readonly dir: string;
  readonly dockerHost: string;
  readonly socketPath: string;
  /** host:port of the open registry. */
  readonly registry: string;
  /** host:port of the registry that requires AUTH_USER / AUTH_PASSWORD. */
  readonly authRegistry: string;
}

export const SANDBOX_ENV = 'DREICHOR_SANDBOX';

/** The test images, by tag: what each one does is what the tests rely on. */
const LONG_RUNNING = [
  // Exits at once on SIGTERM; proves the bind mount by writing into AUDIT_EVENTS_PATH on start.
  "trap 'echo runtime: SIGTERM; exit 0' TERM",
  'echo "runtime $RUNTIME_VERSION starting in $ENVIRONMENT"',
  'touch "$AUDIT_EVENTS_PATH/started-$HOSTNAME"',
  'sleep 3600 & wait $!',
].join('; ');

const IMAGES: Readonly<Record<string, { script: string; extra?: string }>> = {
  v1: { script: LONG_RUNNING },
  v2: { script: LONG_RUNNING },
  v3: { script: LONG_RUNNING },
  // Fails at start, the way a runtime without its database would.
  // It names its DATABASE_URL, as runtimes do: the agent must mask it in what it reports.
  crash: { script: 'echo "boom: cannot connect to the database at $DATABASE_URL"; echo "giving up" >&2; exit 3' },
  // Ignores SIGTERM: the engine has to kill it when the stop timeout runs out.
  stubborn: { script: "trap '' TERM; echo 'stubborn: ignoring SIGTERM'; while :; do sleep 1; done" },
  // Runs, but its HEALTHCHECK always fails.
  unhealthy: { script: LONG_RUNNING, extra: 'HEALTHCHECK --interval=1s --timeout=1s --retries=1 CMD ["/bin/busybox", "false"]' },
  // Runs and becomes healthy after its first check.
  healthy: { script: LONG_RUNNING, extra: 'HEALTHCHECK --interval=1s --timeout=1s --retries=1 CMD ["/bin/busybox", "true"]' },
};

export function sandboxInfo(): SandboxInfo {
  const raw = process.env[SANDBOX_ENV];
  if (raw === undefined) throw new Error(`${SANDBOX_ENV} is not set: run the tests with "npm test", which starts the sandbox`);
  return JSON.parse(raw) as SandboxInfo;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

async function waitFor(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await check().catch(() => false)) return;
    await sleep(100);
  }
  throw new Error(`${what} did not come up within ${timeoutMs / 1000} s`);
}

function httpOk(options: { socketPath?: string; host?: string; port?: number; path: string }): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ ...options, method: 'GET', timeout: 2000 }, (res) => {
      res.resume();
      resolve((res.statusCode ?? 500) < 500);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/** The docker CLI, pointed at the sandbox engine, with its own client configuration. */
export async function docker(info: SandboxInfo, ...args: string[]): Promise<string> {
  const { stdout } = await run('docker', args, {
    env: { ...process.env, DOCKER_HOST: info.dockerHost, DOCKER_BUILDKIT: '0', DOCKER_CONFIG: join(info.dir, 'docker-config') },
    maxBuffer: 16 * 1024 * 1024,
    timeout: 120_000,
  });
  return stdout.trim();
}

/** The long-running runtime script of the test images, for tests that publish their own. */
export const RUNTIME_SCRIPT = LONG_RUNNING;

/**
 * Builds an image for `tag` (every build has its own digest, even with the same script), pushes it
 * to the open registry and removes the local copy, so that a deploy of it does a real pull.
 * Returns the pushed manifest's digest.
 */
export async function publishImage(
  info: SandboxInfo,
  tag: string,
  script: string = LONG_RUNNING,
  extra = '',
  contextDir?: string,
): Promise<string> {
  const context = contextDir ?? mkdtempSync(join(info.dir, 'build-'));
  if (!existsSync(join(context, 'busybox'))) copyFileSync('/bin/busybox', join(context, 'busybox'));
  const ref = `${info.registry}/${REPOSITORY_PATH}:${tag}`;
  writeFileSync(
    join(context, 'Dockerfile'),
    [
      'FROM scratch',
      'COPY busybox /bin/busybox',
      `ENV RUNTIME_VERSION=${tag}`,
      `LABEL io.dreichor.test.build="${tag}-${Date.now()}-${Math.random()}"`,
      extra,
      'ENTRYPOINT ["/bin/busybox", "sh", "-c"]',
      `CMD ${JSON.stringify([script])}`,
    ].join('\n'),
  );
  await docker(info, 'build', '-q', '--network', 'none', '-t', ref, context);
  const pushed = await docker(info, 'push', ref);
  const digest = /digest: (sha256:[0-9a-f]{64})/.exec(pushed)?.[1];
  if (digest === undefined) throw new Error(`no digest in the push output of ${ref}`);
  if (contextDir === undefined) {
    await docker(info, 'rmi', ref);
    rmSync(context, { recursive: true, force: true });
  }
  return digest;
}

/**
 * Which engine the sandbox runs, from DREICHOR_ENGINE: `classic` (default), the machine's dockerd
 * (Debian's docker.io 20.10, the classic image store), or `containerd-store`, Docker 28 with the
 * containerd image store (scripts/engine-28.sh fetches it; the test command puts its folder first on
 * PATH, so dockerd, containerd, runc and the docker CLI are all 28's).
 */
export type EngineKind = 'classic' | 'containerd-store';
export const ENGINE_ENV = 'DREICHOR_ENGINE';

export function engineKind(): EngineKind {
  const raw = process.env[ENGINE_ENV] ?? 'classic';
  if (raw !== 'classic' && raw !== 'containerd-store')
    throw new Error(`${ENGINE_ENV} must be classic or containerd-store, not ${raw}`);
  return raw;
}

/**
 * A Docker engine of its own: own socket and folders under `dir`, no bridge, no iptables. Tests of
 * engine faults own one, so they can stop it and start it again mid-deploy.
 */
export class PrivateEngine {
  private child: ChildProcess | null = null;
  private containerd: ChildProcess | null = null;
  readonly socketPath: string;

  constructor(readonly dir: string) {
    this.socketPath = join(dir, 'docker.sock');
  }

  get dockerHost(): string {
    return `unix://${this.socketPath}`;
  }

  async start(): Promise<void> {
    const log = join(this.dir, 'dockerd.log');
    const fd = openSync(log, 'a');
    const kind = engineKind();
    const extra: string[] = [];
    if (kind === 'containerd-store') {
      // A containerd of its own: without --containerd, dockerd silently uses a system one that listens.
      const containerd = join(this.dir, 'ctd');
      mkdirSync(containerd, { recursive: true });
      const socket = join(containerd, 'c.sock');
      const config = join(containerd, 'config.toml');
      writeFileSync(
        config,
        [
          'version = 3',
          `root = ${JSON.stringify(join(containerd, 'root'))}`,
          `state = ${JSON.stringify(join(containerd, 'state'))}`,
          'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime", "io.containerd.cri.v1.images"]',
          '[grpc]',
          `  address = ${JSON.stringify(socket)}`,
          '[ttrpc]',
          `  address = ${JSON.stringify(join(containerd, 't.sock'))}`,
          '[debug]',
          `  address = ${JSON.stringify(join(containerd, 'd.sock'))}`,
          '',
        ].join('\n'),
      );
      const containerdLog = openSync(join(this.dir, 'containerd.log'), 'a');
      this.containerd = spawn('containerd', ['--config', config], { stdio: ['ignore', containerdLog, containerdLog] });
      await waitFor('the private containerd', 30_000, async () => existsSync(socket));
      const daemonConfig = join(this.dir, 'daemon.json');
      writeFileSync(daemonConfig, JSON.stringify({ features: { 'containerd-snapshotter': true } }));
      extra.push('--containerd', socket, '--config-file', daemonConfig);
    }
    this.child = spawn(
      'dockerd',
      [
        '-H',
        this.dockerHost,
        '--data-root',
        join(this.dir, 'root'),
        '--exec-root',
        join(this.dir, 'exec'),
        '--pidfile',
        join(this.dir, 'dockerd.pid'),
        '--bridge=none',
        '--iptables=false',
        '--ip-masq=false',
        '--ip6tables=false',
        ...extra,
      ],
      { stdio: ['ignore', fd, fd] },
    );
    this.child.on('error', (error) => writeFileSync(log, `spawn failed: ${error.message}\n`, { flag: 'a' }));
    await waitFor('the private Docker engine', 60_000, () => httpOk({ socketPath: this.socketPath, path: '/_ping' }));
  }

  /** Stops the engine the way a host does: SIGTERM, then SIGKILL after 20 s. */
  async stop(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (child !== null) await stopChild(child, 20_000);
    const containerd = this.containerd;
    this.containerd = null;
    if (containerd !== null) await stopChild(containerd, 20_000);
  }
}

/** Unmounts whatever an engine left mounted under `dir`, then removes it. */
export async function removeEngineFolder(dir: string): Promise<void> {
  const mounts = readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1] ?? '')
    .filter((m) => m.startsWith(dir))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) await run('umount', ['-l', m]).catch(() => undefined);
  rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
}

export class Sandbox {
  private readonly children: ChildProcess[] = [];
  private readonly engine: PrivateEngine;
  private constructor(readonly info: SandboxInfo) {
    this.engine = new PrivateEngine(info.dir);
  }

  static async start(log: (line: string) => void = () => undefined): Promise<Sandbox> {
    // A short path: unix socket paths are limited to 108 bytes.
    const dir = mkdtempSync('/tmp/dreichor-sandbox-');
    const socketPath = join(dir, 'docker.sock');
    const [registryPort, authRegistryPort] = [await freePort(), await freePort()];
    const sandbox = new Sandbox({
      dir,
      socketPath,
      dockerHost: `unix://${socketPath}`,
      registry: `127.0.0.1:${registryPort}`,
      authRegistry: `127.0.0.1:${authRegistryPort}`,
    });
    try {
      log(`starting a private Docker engine in ${dir}`);
      await sandbox.engine.start();

      log(`starting image registries on 127.0.0.1:${registryPort} (open) and :${authRegistryPort} (htpasswd)`);
      await sandbox.startRegistry('registry', registryPort, false);
      await sandbox.startRegistry('auth-registry', authRegistryPort, true);

      log('building and publishing the test images (FROM scratch + busybox)');
      await sandbox.buildImages();
      return sandbox;
    } catch (error) {
      await sandbox.stop();
      throw error;
    }
  }

  /** The environment a child process needs to find this sandbox. */
  env(): Record<string, string> {
    return { [SANDBOX_ENV]: JSON.stringify(this.info) };
  }

  docker(...args: string[]): Promise<string> {
    return docker(this.info, ...args);
  }

  private spawnLogged(command: string, args: string[], logFile: string): ChildProcess {
    const out = join(this.info.dir, logFile);
    writeFileSync(out, '');
    const fd = openSync(out, 'a');
    const child = spawn(command, args, { stdio: ['ignore', fd, fd], detached: false });
    child.on('error', (error) => writeFileSync(out, `spawn failed: ${error.message}\n`, { flag: 'a' }));
    this.children.push(child);
    return child;
  }

  private async startRegistry(name: string, port: number, withAuth: boolean): Promise<void> {
    const root = join(this.info.dir, name);
    mkdirSync(root, { recursive: true });
    let auth = '';
    if (withAuth) {
      const htpasswd = join(root, 'htpasswd');
      await run('htpasswd', ['-Bbc', htpasswd, AUTH_USER, AUTH_PASSWORD]);
      auth = `auth:\n  htpasswd:\n    realm: sandbox\n    path: ${htpasswd}\n`;
    }
    const config = join(root, 'config.yml');
    writeFileSync(
      config,
      `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${join(root, 'data')}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n${auth}`,
    );
    this.spawnLogged('docker-registry', ['serve', config], `${name}.log`);
    await waitFor(`the ${name}`, 30_000, () => httpOk({ host: '127.0.0.1', port, path: '/v2/' }));
  }

  private async buildImages(): Promise<void> {
    const context = join(this.info.dir, 'image');
    mkdirSync(context, { recursive: true });
    copyFileSync('/bin/busybox', join(context, 'busybox'));
    for (const [tag, image] of Object.entries(IMAGES)) {
      await publishImage(this.info, tag, image.script, image.extra ?? '', context);
    }
    await this.docker('login', '-u', AUTH_USER, '-p', AUTH_PASSWORD, this.info.authRegistry);
    await this.pushTo(this.info.authRegistry, 'v1');
    await this.docker('logout', this.info.authRegistry).catch(() => undefined);
    // The engine starts with no test image: every deploy does a real pull from a registry.
    await this.docker('rmi', ...Object.keys(IMAGES).map((tag) => `${this.info.registry}/${REPOSITORY_PATH}:${tag}`));
  }

  private async pushTo(registry: string, tag: string): Promise<void> {
    const source = `${this.info.registry}/${REPOSITORY_PATH}:${tag}`;
    const target = `${registry}/${REPOSITORY_PATH}:${tag}`;
    await this.docker('tag', source, target);
    await this.docker('push', target);
    await this.docker('rmi', target);
  }

  /** Stops everything it started and removes its folder. Bounded: never waits forever. */
  async stop(): Promise<void> {
    if (existsSync(this.info.socketPath)) {
      const ids = await this.docker('ps', '-aq').catch(() => '');
      if (ids !== '') await this.docker('rm', '-f', ...ids.split('\n')).catch(() => undefined);
    }
    for (const child of this.children.reverse()) await stopChild(child, 20_000);
    await this.engine.stop();
    await removeEngineFolder(this.info.dir);
  }
}
