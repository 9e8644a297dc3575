import assert from 'node:assert/strict';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type ApiResponse, engine, image, maxRunningDuring, startTestAgent, type TestAgent } from '../support/harness.js';

describe('deploy on the real engine', () => {
  let t: TestAgent;

  before(async () => {
    t = await startTestAgent({ RUNTIME_ENV_FILE: undefined });
  });
  after(async () => {
    await t.cleanup();
  });

  it('creates the runtime container exactly as configured, and nothing from the request but the image', async () => {
    const res = await t.api.deploy(image('v1'), { environment: 'dev' });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body['status'], 'deployed');
    assert.equal(res.body['container_name'], t.config.containerName);
    assert.equal(res.body['image'], image('v1'));
    assert.equal(res.body['environment'], 'dev');

    const c = await engine.inspect(t.config.containerName);
    assert.ok(c, 'the engine has the container');
    assert.equal(c.State.Running, true);
    assert.equal(c.Name, `/${t.config.containerName}`);
    assert.equal(c.Id, res.body['container_id']);
    assert.equal(c.Config.Image, `${image('v1').split(':v1')[0]}@${String(res.body['image_digest'])}`);
    assert.equal(c.HostConfig.NetworkMode, 'none');
    assert.equal(c.HostConfig.RestartPolicy.Name, 'no');
    assert.equal(c.Config.Labels['io.dreichor.environment'], 'dev');
    assert.equal(c.Config.Labels['io.dreichor.owner'], 'dreichor-deploy-agent');
    const env = c.Config.Env.filter((e) => !e.startsWith('PATH=') && !e.startsWith('RUNTIME_VERSION='));
    assert.deepEqual(env.sort(), [
      'ALLOW_EXECUTION_PLANE=false',
      `AUDIT_EVENTS_PATH=${t.folders.audit}`,
      'ENVIRONMENT=dev',
      `SNAPSHOTS_PATH=${t.folders.snapshots}`,
    ]);
    const mounts = c.Mounts.map((m) => `${m.Type}:${m.Source}:${m.Destination}`).sort();
    assert.deepEqual(mounts, [
      `bind:${t.folders.audit}:${t.folders.audit}`,
      `bind:${t.folders.snapshots}:${t.folders.snapshots}`,
    ]);
    // The mount is real: the runtime wrote into AUDIT_EVENTS_PATH on the host.
    assert.ok(
      existsSync(join(t.folders.audit, `started-${c.Id.slice(0, 12)}`)),
      'the runtime wrote into the bind-mounted folder',
    );
  });

  it('status reports what the engine runs', async () => {
    const res = await t.api.status();
    assert.equal(res.status, 200);
    const c = await engine.inspect(t.config.containerName);
    assert.ok(c);
    assert.equal(res.body['running'], true);
    assert.equal(res.body['image'], image('v1'));
    assert.equal(res.body['started_at'], new Date(c.State.StartedAt).toISOString());
    assert.equal(res.body['container_name'], t.config.containerName);
    assert.equal(res.body['deploy_in_progress'], false);
  });

  it('replaces the container: the old one is gone, the new one runs, never two at once', async () => {
    const old = await engine.inspect(t.config.containerName);
    assert.ok(old);
    let res: ApiResponse | undefined;
    const maxRunning = await maxRunningDuring(t.config.containerName, async () => {
      res = await t.api.deploy(image('v2'));
    });
    assert.equal(res!.status, 200, res!.text);
    assert.equal(maxRunning, 1, 'never two runtime containers running at the same instant');

    const now = await engine.inspect(t.config.containerName);
    assert.ok(now);
    assert.notEqual(now.Id, old.Id);
    assert.equal(now.State.Running, true);
    assert.equal(await engine.inspect(old.Id), null, 'the old container is removed');
    assert.equal((await engine.named(t.config.containerName)).length, 1, 'exactly one container, no staging leftover');
    assert.equal(res!.body['previous_image'], image('v1'));
    const status = await t.api.status();
    assert.equal(status.body['previous_image'], image('v1'));
    assert.equal((status.body['last_deploy'] as Record<string, unknown>)['outcome'], 'deployed');
  });

  it('deploys a pinned digest as exactly that digest', async () => {
    const current = await engine.inspect(t.config.containerName);
    assert.ok(current);
    const digest = current.Config.Labels['io.dreichor.image-digest'];
    assert.ok(digest);
    const res = await t.api.deploy(`${image('v2')}@${digest}`);
    assert.equal(res.status, 200, res.text);
    const now = await engine.inspect(t.config.containerName);
    assert.ok(now);
    assert.equal(now.Image, current.Image, 'the same image id as the digest names');
    assert.equal(now.Config.Labels['io.dreichor.image-digest'], digest);
  });

  it('records one accepted line and one outcome line per deploy, chained', async () => {
    const lines = t.auditLines();
    const deploys = lines.filter((l) => l['endpoint'] === '/v1/deploy');
    assert.deepEqual(
      deploys.map((l) => l['outcome']),
      ['accepted', 'deployed', 'accepted', 'deployed', 'accepted', 'deployed'],
    );
    for (const l of deploys) assert.equal(l['client_id'], 'test-client.access');
    for (const [i, l] of lines.entries()) assert.equal(l['seq'], i);
  });
});

describe('runtime environment file', () => {
  it('injects the server-owned variables and nothing else', async () => {
    const { mkdtempSync } = await import('node:fs');
    const dir = mkdtempSync(join(tmpdir(), 'dreichor-envfile-'));
    const file = join(dir, 'runtime.env');
    writeFileSync(
      file,
      'DATABASE_URL=postgres://runtime@127.0.0.1/dreichor\nSAFETY_MODE=strict\nLOG_LEVEL=info\nEXECUTION_PLANE=paper\n',
    );
    const t = await startTestAgent({ RUNTIME_ENV_FILE: file, ALLOW_EXECUTION_PLANE: 'true' });
    try {
      const res = await t.api.deploy(image('v1'));
      assert.equal(res.status, 200, res.text);
      const c = await engine.inspect(t.config.containerName);
      assert.ok(c);
      const env = c.Config.Env.filter((e) => !e.startsWith('PATH=') && !e.startsWith('RUNTIME_VERSION=')).sort();
      assert.deepEqual(env, [
        'ALLOW_EXECUTION_PLANE=true',
        `AUDIT_EVENTS_PATH=${t.folders.audit}`,
        'DATABASE_URL=postgres://runtime@127.0.0.1/dreichor',
        'ENVIRONMENT=dev',
        'EXECUTION_PLANE=paper',
        'LOG_LEVEL=info',
        'SAFETY_MODE=strict',
        `SNAPSHOTS_PATH=${t.folders.snapshots}`,
      ]);
      assert.equal(readdirSync(t.folders.snapshots).length, 0);
    } finally {
      await t.cleanup();
    }
  });
});

describe('registry credentials', () => {
  it('pulls with REGISTRY_USERNAME and REGISTRY_PASSWORD_FILE from a registry that requires them', async () => {
    const { mkdtempSync } = await import('node:fs');
    const { AUTH_PASSWORD, AUTH_USER, REPOSITORY_PATH, sandboxInfo } = await import('../support/sandbox.js');
    const dir = mkdtempSync(join(tmpdir(), 'dreichor-registry-password-'));
    const passwordFile = join(dir, 'password');
    writeFileSync(passwordFile, `${AUTH_PASSWORD}\n`, { mode: 0o600 });
    const repository = `${sandboxInfo().authRegistry}/${REPOSITORY_PATH}`;
    const t = await startTestAgent({
      IMAGE_REPOSITORY: repository,
      REGISTRY_USERNAME: AUTH_USER,
      REGISTRY_PASSWORD_FILE: passwordFile,
    });
    try {
      const res = await t.api.deploy(`${repository}:v1`);
      assert.equal(res.status, 200, res.text);
      const c = await engine.inspect(t.config.containerName);
      assert.equal(c?.State.Running, true);
      assert.ok(c?.Config.Image.startsWith(`${repository}@sha256:`));
      assert.ok(!JSON.stringify(t.auditLines()).includes(AUTH_PASSWORD), 'no credential in the audit log');
      assert.ok(!res.text.includes(AUTH_PASSWORD));
    } finally {
      await t.cleanup();
    }
  });
});
