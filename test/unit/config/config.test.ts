import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../../src/config/config.js';
import { spawnAgent } from '../../support/agent-process.js';
import { tempDir } from '../../support/temp-dir.js';
import { MINIMAL_ENV } from '../../support/unit-config.js';

const dir = tempDir('config-test');
const BASE: Record<string, string> = { ...MINIMAL_ENV };

// The shape of a Sigstore trusted root, enough for the configuration (sigstore reads it at the first deploy).
const SHAPED_ROOT = {
  mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
  certificateAuthorities: [{}],
  timestampAuthorities: [{}],
};

function rejects(env: Record<string, string | undefined>, variable: string, message?: RegExp): void {
  assert.throws(
    () => loadConfig({ ...BASE, ...env }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError, String(error));
      assert.equal(error.variable, variable, error.message);
      if (message !== undefined) assert.match(error.message, message);
      return true;
    },
  );
}

describe('configuration', () => {
  it('has the documented defaults', () => {
    const c = loadConfig(BASE);
    assert.equal(c.port, 3005);
    assert.equal(c.containerName, 'dreichor-runtime-dev');
    assert.equal(c.imageRepository, 'ghcr.io/ceerkle/dreichor-trading/runtime');
    assert.equal(c.runtimeNetwork, 'bridge');
    assert.equal(c.stopTimeoutSeconds, 30);
    assert.equal(c.startCheckSeconds, 5);
    assert.equal(c.deployTimeoutSeconds, 90);
    assert.equal(c.imageRetention, 5);
    assert.equal(c.stateDir, '/var/lib/dreichor/dev/deploy-agent');
    assert.equal(c.dockerSocketPath, '/var/run/docker.sock');
    assert.equal(c.allowExecutionPlane, false);
    assert.equal(c.accessJwt, null);
    assert.equal(c.registryAuth, null);
    assert.equal(c.serviceTokens.length, 1);
    assert.ok(Object.isFrozen(c));
    const prod = loadConfig({
      ...BASE,
      ENVIRONMENT: 'prod',
      AUDIT_EVENTS_PATH: '/var/lib/dreichor/prod/audit-events',
      SNAPSHOTS_PATH: '/var/lib/dreichor/prod/snapshots',
    });
    assert.equal(prod.port, 3006);
    assert.equal(prod.containerName, 'dreichor-runtime-prod');
  });

  it('names the variable that is missing or wrong, without echoing secrets', () => {
    rejects({ ENVIRONMENT: undefined }, 'ENVIRONMENT', /required/);
    rejects({ ENVIRONMENT: 'staging' }, 'ENVIRONMENT');
    rejects({ CF_ACCESS_CLIENT_SECRET: undefined }, 'CF_ACCESS_CLIENT_SECRET', /required/);
    rejects({ CF_ACCESS_CLIENT_SECRET: 'short-secret' }, 'CF_ACCESS_CLIENT_SECRET');
    assert.throws(
      () => loadConfig({ ...BASE, CF_ACCESS_CLIENT_SECRET: 'short-secret' }),
      (e: Error) => !e.message.includes('short-secret'),
    );
    rejects({ CF_ACCESS_CLIENT_ID: 'has space' }, 'CF_ACCESS_CLIENT_ID');
    rejects({ PORT: '0' }, 'PORT');
    rejects({ PORT: '70000' }, 'PORT');
    rejects({ PORT: '3005abc' }, 'PORT');
    rejects({ AUDIT_EVENTS_PATH: undefined }, 'AUDIT_EVENTS_PATH', /required/);
    rejects({ AUDIT_EVENTS_PATH: 'relative/path' }, 'AUDIT_EVENTS_PATH');
    rejects({ SNAPSHOTS_PATH: '/var/../etc' }, 'SNAPSHOTS_PATH');
    rejects({ ALLOW_EXECUTION_PLANE: 'yes' }, 'ALLOW_EXECUTION_PLANE');
    rejects({ STOP_TIMEOUT_SECONDS: '-1' }, 'STOP_TIMEOUT_SECONDS');
    rejects({ START_CHECK_SECONDS: '1.5' }, 'START_CHECK_SECONDS');
    rejects({ DEPLOY_TIMEOUT_SECONDS: '120' }, 'DEPLOY_TIMEOUT_SECONDS', /at most 95/);
    rejects({ DEPLOY_TIMEOUT_SECONDS: '40', STOP_TIMEOUT_SECONDS: '30' }, 'DEPLOY_TIMEOUT_SECONDS', /leave at least 5 s/);
    rejects({ RUNTIME_NETWORK: 'host;rm' }, 'RUNTIME_NETWORK');
    rejects({ IMAGE_RETENTION: '-1' }, 'IMAGE_RETENTION');
    rejects({ IMAGE_RETENTION: 'all' }, 'IMAGE_RETENTION');
    rejects({ IMAGE_REPOSITORY: 'ghcr.io/owner/runtime:v1' }, 'IMAGE_REPOSITORY');
    rejects({ IMAGE_REPOSITORY: 'owner/runtime' }, 'IMAGE_REPOSITORY');
    rejects({ IMAGE_REPOSITORY: 'GHCR.io/Owner/Runtime' }, 'IMAGE_REPOSITORY');
    rejects({ DOCKER_HOST: 'tcp://127.0.0.1:2375' }, 'DOCKER_HOST');
    rejects({ DOCKER_HOST: 'ssh://root@host' }, 'DOCKER_HOST');
    rejects({ STATE_DIR: 'state' }, 'STATE_DIR');
  });

  it('keeps dev and prod container names apart', () => {
    rejects({ CONTAINER_NAME: 'dreichor-runtime-prod' }, 'CONTAINER_NAME');
    rejects({ CONTAINER_NAME: 'dreichor-runtime' }, 'CONTAINER_NAME');
    rejects({ CONTAINER_NAME: 'dreichor-runtime-dev-prod' }, 'CONTAINER_NAME');
    rejects({ CONTAINER_NAME: 'dreichor-runtime-devx' }, 'CONTAINER_NAME');
    rejects({ CONTAINER_NAME: '/dreichor-runtime-dev' }, 'CONTAINER_NAME');
    assert.equal(loadConfig({ ...BASE, CONTAINER_NAME: 'trading.dev' }).containerName, 'trading.dev');
  });

  it("keeps dev and prod paths apart, and the agent's state out of the runtime's mounts (exit 2 naming the variable)", () => {
    for (const variable of ['STATE_DIR', 'AUDIT_EVENTS_PATH', 'SNAPSHOTS_PATH']) {
      rejects({ [variable]: '/var/lib/dreichor/prod/x' }, variable, /other environment/);
      rejects({ [variable]: '/srv/trading-prod/x' }, variable, /other environment/);
      rejects(
        {
          ENVIRONMENT: 'prod',
          AUDIT_EVENTS_PATH: '/a/audit',
          SNAPSHOTS_PATH: '/a/snapshots',
          STATE_DIR: '/a/state',
          [variable]: '/var/lib/DEV/x',
        },
        variable,
        /other environment/,
      );
    }
    // "production" or "devices" are other words, not the other environment.
    assert.equal(
      loadConfig({ ...BASE, STATE_DIR: '/srv/production-mirror/devices/state' }).stateDir,
      '/srv/production-mirror/devices/state',
    );
    rejects({ STATE_DIR: '/var/lib/dreichor/dev/audit-events' }, 'AUDIT_EVENTS_PATH', /must not be STATE_DIR or contain it/);
    rejects({ STATE_DIR: '/var/lib/dreichor/dev/snapshots/agent' }, 'SNAPSHOTS_PATH', /must not be STATE_DIR or contain it/);
    rejects(
      { AUDIT_EVENTS_PATH: '/var/lib/dreichor/dev', STATE_DIR: '/var/lib/dreichor/dev/deploy-agent' },
      'AUDIT_EVENTS_PATH',
      /contain it/,
    );
    rejects({ SNAPSHOTS_PATH: '/', STATE_DIR: '/var/lib/x' }, 'SNAPSHOTS_PATH', /contain it/);
    // A symbolic link does not hide that the mount is the state folder.
    const real = join(dir, 'real-state');
    mkdirSync(real, { recursive: true });
    symlinkSync(real, join(dir, 'link-to-state'));
    rejects({ STATE_DIR: real, SNAPSHOTS_PATH: join(dir, 'link-to-state') }, 'SNAPSHOTS_PATH', /contain it/);
    // Beside each other, or a mount inside the state folder's parent: fine.
    assert.equal(
      loadConfig({ ...BASE, STATE_DIR: '/var/lib/dreichor/dev/deploy-agent' }).stateDir,
      '/var/lib/dreichor/dev/deploy-agent',
    );
    const result = spawnSync(process.execPath, ['dist/agent.js'], {
      env: { PATH: process.env['PATH'] ?? '', ...BASE, STATE_DIR: '/var/lib/dreichor/prod/deploy-agent' },
      encoding: 'utf8',
      timeout: 10_000,
    });
    assert.equal(result.status, 2);
    assert.match(result.stderr, /^dreichor-deploy-agent: invalid configuration: STATE_DIR: must not name the other environment/);
  });

  it('takes the Access JWT settings together, and https keys only (http to 127.0.0.1 for tests)', () => {
    rejects({ CF_ACCESS_TEAM_DOMAIN: 'team.cloudflareaccess.com' }, 'CF_ACCESS_AUD');
    rejects({ CF_ACCESS_AUD: 'abc123' }, 'CF_ACCESS_TEAM_DOMAIN');
    rejects({ CF_ACCESS_TEAM_DOMAIN: 'https://team.cloudflareaccess.com', CF_ACCESS_AUD: 'abc' }, 'CF_ACCESS_TEAM_DOMAIN');
    rejects({ CF_ACCESS_CERTS_URL: 'https://x.example/certs' }, 'CF_ACCESS_CERTS_URL');
    const jwt = { CF_ACCESS_TEAM_DOMAIN: 'team.cloudflareaccess.com', CF_ACCESS_AUD: 'abc123' };
    assert.equal(loadConfig({ ...BASE, ...jwt }).accessJwt?.certsUrl, 'https://team.cloudflareaccess.com/cdn-cgi/access/certs');
    rejects({ ...jwt, CF_ACCESS_CERTS_URL: 'http://keys.example/certs' }, 'CF_ACCESS_CERTS_URL');
    assert.equal(
      loadConfig({ ...BASE, ...jwt, CF_ACCESS_CERTS_URL: 'http://127.0.0.1:9/certs' }).accessJwt?.certsUrl,
      'http://127.0.0.1:9/certs',
    );
  });

  it('takes a rotation token as a pair', () => {
    rejects({ CF_ACCESS_ROTATION_CLIENT_ID: 'next.access' }, 'CF_ACCESS_ROTATION_CLIENT_SECRET');
    rejects({ CF_ACCESS_ROTATION_CLIENT_SECRET: 'another-secret-long-enough' }, 'CF_ACCESS_ROTATION_CLIENT_ID');
    rejects(
      { CF_ACCESS_ROTATION_CLIENT_ID: 'client.access', CF_ACCESS_ROTATION_CLIENT_SECRET: 'another-secret-long-enough' },
      'CF_ACCESS_ROTATION_CLIENT_ID',
    );
    const c = loadConfig({
      ...BASE,
      CF_ACCESS_ROTATION_CLIENT_ID: 'next.access',
      CF_ACCESS_ROTATION_CLIENT_SECRET: 'another-secret-long-enough',
    });
    assert.deepEqual(
      c.serviceTokens.map((t) => t.clientId),
      ['client.access', 'next.access'],
    );
  });

  it('reads registry credentials, from a file too', () => {
    rejects({ REGISTRY_USERNAME: 'bot' }, 'REGISTRY_PASSWORD');
    rejects({ REGISTRY_PASSWORD: 'pw' }, 'REGISTRY_USERNAME');
    const file = join(dir, 'registry-password');
    writeFileSync(file, 'from-a-file\n');
    const c = loadConfig({ ...BASE, REGISTRY_USERNAME: 'bot', REGISTRY_PASSWORD_FILE: file });
    assert.deepEqual(c.registryAuth, { username: 'bot', password: 'from-a-file', serveraddress: 'ghcr.io' });
    rejects({ REGISTRY_USERNAME: 'bot', REGISTRY_PASSWORD: 'pw', REGISTRY_PASSWORD_FILE: file }, 'REGISTRY_PASSWORD_FILE');
    rejects({ REGISTRY_USERNAME: 'bot', REGISTRY_PASSWORD_FILE: join(dir, 'missing') }, 'REGISTRY_PASSWORD_FILE', /ENOENT/);
  });

  it('reads the service token secrets from files (systemd credentials), and names the _FILE variable when one is wrong', () => {
    const file = join(dir, 'cf-access-client-secret');
    writeFileSync(file, 'a-secret-from-a-credential\n');
    const c = loadConfig({ ...BASE, CF_ACCESS_CLIENT_SECRET: undefined, CF_ACCESS_CLIENT_SECRET_FILE: file });
    assert.equal(c.serviceTokens[0]?.clientSecret, 'a-secret-from-a-credential');
    rejects(
      { CF_ACCESS_CLIENT_SECRET_FILE: file },
      'CF_ACCESS_CLIENT_SECRET_FILE',
      /not be set together with CF_ACCESS_CLIENT_SECRET/,
    );
    rejects(
      { CF_ACCESS_CLIENT_SECRET: undefined, CF_ACCESS_CLIENT_SECRET_FILE: join(dir, 'missing') },
      'CF_ACCESS_CLIENT_SECRET_FILE',
      /cannot be read \(ENOENT\)/,
    );
    writeFileSync(join(dir, 'short-secret'), 'short\n');
    rejects(
      { CF_ACCESS_CLIENT_SECRET: undefined, CF_ACCESS_CLIENT_SECRET_FILE: join(dir, 'short-secret') },
      'CF_ACCESS_CLIENT_SECRET_FILE',
      /at least 16/,
    );
    const rotation = join(dir, 'rotation-secret');
    writeFileSync(rotation, 'the-next-secret-0123456789');
    const r = loadConfig({
      ...BASE,
      CF_ACCESS_ROTATION_CLIENT_ID: 'next.access',
      CF_ACCESS_ROTATION_CLIENT_SECRET_FILE: rotation,
    });
    assert.deepEqual(r.serviceTokens[1], { clientId: 'next.access', clientSecret: 'the-next-secret-0123456789' });
  });

  it("takes LOG_LEVEL (default info), and refuses the examples' FAKE values", () => {
    assert.equal(loadConfig(BASE).logLevel, 'info');
    assert.equal(loadConfig({ ...BASE, LOG_LEVEL: 'debug' }).logLevel, 'debug');
    rejects({ LOG_LEVEL: 'verbose' }, 'LOG_LEVEL', /must be one of fatal, error, warn, info, debug, trace, silent/);
    rejects({ CF_ACCESS_CLIENT_SECRET: 'FAKE-dev-client-secret-replace-me-000' }, 'CF_ACCESS_CLIENT_SECRET', /FAKE value/);
    rejects(
      { CF_ACCESS_TEAM_DOMAIN: 'fake-team.cloudflareaccess.com', CF_ACCESS_AUD: 'x' },
      'CF_ACCESS_TEAM_DOMAIN',
      /FAKE value/,
    );
  });

  it('reads the runtime environment file, and refuses one that overrides what the agent owns', () => {
    const file = join(dir, 'runtime.env');
    writeFileSync(file, '# server-owned\nDATABASE_URL=postgres://x@127.0.0.1/db\nSAFETY_MODE=strict\n');
    assert.deepEqual(
      { ...loadConfig({ ...BASE, RUNTIME_ENV_FILE: file }).runtimeEnv },
      { DATABASE_URL: 'postgres://x@127.0.0.1/db', SAFETY_MODE: 'strict' },
    );
    for (const owned of ['ENVIRONMENT', 'AUDIT_EVENTS_PATH', 'SNAPSHOTS_PATH', 'ALLOW_EXECUTION_PLANE']) {
      writeFileSync(file, `${owned}=x\n`);
      rejects({ RUNTIME_ENV_FILE: file }, 'RUNTIME_ENV_FILE', new RegExp(owned));
    }
    rejects({ RUNTIME_ENV_FILE: join(dir, 'missing.env') }, 'RUNTIME_ENV_FILE', /ENOENT/);
  });

  it('loads ENV_FILE first; the environment wins; empty values count as unset', () => {
    const file = join(dir, 'agent.env');
    writeFileSync(
      file,
      'ENVIRONMENT=prod\nPORT=4000\nCF_ACCESS_CLIENT_ID=from-file.access\nCF_ACCESS_CLIENT_SECRET=file-secret-long-enough\nAUDIT_EVENTS_PATH=/a\nSNAPSHOTS_PATH=/s\nRUNTIME_NETWORK=none\nIMAGE_VERIFICATION=none\n',
    );
    const c = loadConfig({ ENV_FILE: file, PORT: '4001', RUNTIME_NETWORK: '' });
    assert.equal(c.environment, 'prod');
    assert.equal(c.port, 4001);
    assert.equal(c.runtimeNetwork, 'none');
    assert.throws(
      () => loadConfig({ ENV_FILE: join(dir, 'nope.env') }),
      (e: unknown) => e instanceof ConfigError && e.variable === 'ENV_FILE',
    );
  });

  it('the built agent stops at start with one line naming the variable, and listens on nothing', () => {
    const result = spawnSync(process.execPath, ['dist/agent.js'], {
      env: { PATH: process.env['PATH'] ?? '', ...BASE, PORT: '3999', STOP_TIMEOUT_SECONDS: 'soon' },
      encoding: 'utf8',
      timeout: 10_000,
    });
    assert.equal(result.status, 2);
    assert.equal(result.stdout, '');
    assert.equal(
      result.stderr,
      'dreichor-deploy-agent: invalid configuration: STOP_TIMEOUT_SECONDS: must be a whole number of seconds\n',
    );
  });
});

describe('the bundle', () => {
  it('--version names the version and the commit it was built from', () => {
    // The version is the git tag (scripts/build.mjs); untagged, 0.0.0-dev+<commit>.
    const r = spawnSync(process.execPath, ['dist/agent.js', '--version'], { encoding: 'utf8', timeout: 10_000 });
    assert.equal(r.status, 0, r.stderr);
    const m = /^dreichor-deploy-agent (\S+) \(([0-9a-f]{12})(-modified)?\)\n$/.exec(r.stdout);
    assert.ok(m, r.stdout);
    const described = spawnSync('git', ['describe', '--tags', '--match', 'v[0-9]*'], { encoding: 'utf8' });
    const expected =
      described.status === 0
        ? described.stdout.trim().replace(/^v/, '')
        : `0.0.0-dev+${m[2]}${m[3] === undefined ? '' : '.modified'}`;
    assert.equal(m[1], expected);
  });

  it('runs on its own, as installed at /opt/dreichor/<env>/deploy-agent/agent.js: no node_modules, no package.json', async () => {
    const { copyFileSync } = await import('node:fs');
    const { setTimeout: sleep } = await import('node:timers/promises');
    const alone = tempDir('opt');
    copyFileSync('dist/agent.js', join(alone, 'agent.js'));
    const port = 3900 + Math.floor(Math.random() * 90);
    const env = {
      ...BASE,
      PORT: String(port),
      STATE_DIR: join(alone, 'state'),
      DOCKER_HOST: `unix://${join(alone, 'no-engine.sock')}`,
    } as Record<string, string>;
    const agent = spawnAgent(env, { args: [join(alone, 'agent.js')], cwd: alone });
    const child = agent.child;
    try {
      let answer: Response | null = null;
      for (let i = 0; i < 100 && answer === null; i += 1) {
        answer = await fetch(`http://127.0.0.1:${port}/v1/status`, {
          headers: {
            'CF-Access-Client-Id': BASE['CF_ACCESS_CLIENT_ID']!,
            'CF-Access-Client-Secret': BASE['CF_ACCESS_CLIENT_SECRET']!,
            'Content-Type': 'application/json',
          },
        }).catch(() => null);
        if (answer === null) await sleep(100);
      }
      assert.ok(answer, 'the bundle listens');
      // No engine behind this socket: a clear JSON 503, from a process that keeps running.
      assert.equal(answer.status, 503);
      assert.match(String(((await answer.json()) as { reason: string }).reason), /cannot be reached/);
      assert.equal(child.exitCode, null);
    } finally {
      await agent.stop();
    }
  });
});

describe('env examples', () => {
  for (const environment of ['dev', 'prod'] as const) {
    it(`env/${environment}.env.example names every variable the agent reads, and only those, and loads`, async () => {
      const { readFileSync } = await import('node:fs');
      const { parse } = await import('dotenv');
      const { CONFIG_VARIABLES } = await import('../../../src/config/config.js');
      const values = parse(readFileSync(`env/${environment}.env.example`, 'utf8'));
      assert.deepEqual(Object.keys(values).sort(), [...CONFIG_VARIABLES].sort());
      const runtimeEnv = join(dir, `${environment}-runtime.env`);
      writeFileSync(runtimeEnv, 'DATABASE_URL=postgres://x@127.0.0.1/db\n');
      // As shipped, it refuses to start: an example's FAKE values are public, so an agent that
      // forgot to replace one would accept a token anybody can read.
      assert.throws(
        () => loadConfig({ ...values, RUNTIME_ENV_FILE: runtimeEnv }),
        /CF_ACCESS_CLIENT_ID: still has the example's FAKE value/,
      );
      const filled = Object.fromEntries(Object.entries(values).map(([k, v]) => [k, v.replace(/^fake-/i, 'real-')]));
      // The examples ask for GitHub attestations; the trusted root is the operator's to fetch.
      assert.equal(values['IMAGE_VERIFICATION'], 'github-attestation');
      const trustedRoot = join(dir, `${environment}-trusted_root.jsonl`);
      writeFileSync(trustedRoot, `${JSON.stringify(SHAPED_ROOT)}\n`);
      const c = loadConfig({ ...filled, RUNTIME_ENV_FILE: runtimeEnv, SIGSTORE_TRUSTED_ROOT_FILE: trustedRoot });
      assert.equal(c.imageVerification.mode, 'github-attestation');
      assert.equal(c.environment, environment);
      assert.equal(c.containerName, `dreichor-runtime-${environment}`);
      assert.equal(c.port, environment === 'dev' ? 3005 : 3006);
      assert.ok(
        Object.values(values).some((v) => v.startsWith('FAKE-')),
        'example secrets are obviously fake',
      );
      assert.ok(c.accessJwt !== null, 'the examples turn on the Access JWT check');
    });
  }
});
