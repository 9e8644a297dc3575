import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { engine, eventually, image, startTestAgent, type TestAgent } from '../support/harness.js';

const LABELS = (environment: string, containerName: string) => ({
  'io.dreichor.owner': 'dreichor-deploy-agent',
  'io.dreichor.environment': environment,
  'io.dreichor.container-name': containerName,
});

describe('stop', () => {
  let t: TestAgent;
  after(async () => {
    await t.cleanup();
  });

  it('stops and removes the runtime container; afterwards nothing of it runs', async () => {
    t = await startTestAgent();
    assert.equal((await t.api.deploy(image('v1'))).status, 200);
    const res = await t.api.stop();
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body, { status: 'stopped', container_name: t.config.containerName, removed: true });
    assert.deepEqual(await engine.named(t.config.containerName), []);
    assert.equal((await t.api.status()).body['running'], false);
  });

  it('is a no-op when there is nothing to stop', async () => {
    const res = await t.api.stop();
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body['removed'], false);
    const empty = await t.api.call('POST', '/v1/stop', { raw: '' });
    assert.equal(empty.status, 200, 'an empty body is an empty object');
  });

  it('a deploy after a stop starts the runtime again', async () => {
    assert.equal((await t.api.deploy(image('v2'))).status, 200);
    assert.equal((await engine.inspect(t.config.containerName))?.State.Running, true);
    assert.deepEqual(
      t
        .auditLines()
        .filter((l) => l['endpoint'] === '/v1/stop')
        .map((l) => l['outcome']),
      ['accepted', 'stopped', 'accepted', 'stopped', 'accepted', 'stopped'],
    );
  });
});

describe('start-up recovery', () => {
  it('removes staging leftovers of its own environment and name only, and never touches the runtime', async () => {
    const t = await startTestAgent();
    const name = t.config.containerName;
    assert.equal((await t.api.deploy(image('v1'))).status, 200);
    const runtime = await engine.inspect(name);
    assert.ok(runtime);
    await t.agent.close();

    // What an agent killed between create and stop leaves behind, and look-alikes that are not ours.
    const digestRef = runtime.Config.Image;
    const leftover = await engine.create(`${name}-staging-deadbeef`, digestRef, LABELS('dev', name));
    const otherName = await engine.create(`${name}x-staging-0badcafe`, digestRef, LABELS('dev', `${name}x`));
    const otherEnv = await engine.create(
      `dreichor-runtime-prod-t${process.pid}-staging-0badf00d`,
      digestRef,
      LABELS('prod', `dreichor-runtime-prod-t${process.pid}`),
    );
    try {
      const again = await startTestAgent({ CONTAINER_NAME: name, STATE_DIR: t.config.stateDir });
      try {
        await eventually('the leftover is removed', 10_000, async () => (await engine.inspect(leftover)) === null);
        assert.ok(await engine.inspect(otherName), 'another container name is not ours');
        assert.ok(await engine.inspect(otherEnv), 'another environment is not ours');
        const now = await engine.inspect(name);
        assert.equal(now?.Id, runtime.Id);
        assert.equal(now?.State.StartedAt, runtime.State.StartedAt);
        const cleaned = again.auditLines().find((l) => l['endpoint'] === 'reconciler' && l['outcome'] === 'cleaned');
        assert.ok(cleaned, 'the clean-up recorded in the audit log');
        assert.match(String(cleaned['reason']), /staging-deadbeef/);
      } finally {
        await again.agent.close();
      }
    } finally {
      await engine.remove(otherName);
      await engine.remove(otherEnv);
      await t.cleanup();
    }
  });
});

describe('two agents on one engine', () => {
  it('dev and prod deploy at the same time and never touch each other', async () => {
    const dev = await startTestAgent({}, { environment: 'dev' });
    const prod = await startTestAgent({}, { environment: 'prod' });
    try {
      const [d, p] = await Promise.all([dev.api.deploy(image('v1')), prod.api.deploy(image('v2'))]);
      assert.equal(d.status, 200, d.text);
      assert.equal(p.status, 200, p.text);
      const devC = await engine.inspect(dev.config.containerName);
      const prodC = await engine.inspect(prod.config.containerName);
      assert.equal(devC?.Config.Labels['io.dreichor.environment'], 'dev');
      assert.equal(prodC?.Config.Labels['io.dreichor.environment'], 'prod');
      assert.ok(devC?.Config.Env.includes('ENVIRONMENT=dev'));
      assert.ok(prodC?.Config.Env.includes('ENVIRONMENT=prod'));

      // Replacing and stopping dev leaves prod exactly as it was.
      assert.equal((await dev.api.deploy(image('v3'))).status, 200);
      assert.equal((await dev.api.stop()).status, 200);
      const prodAfter = await engine.inspect(prod.config.containerName);
      assert.equal(prodAfter?.Id, prodC?.Id);
      assert.equal(prodAfter?.State.StartedAt, prodC?.State.StartedAt);
      assert.equal(prodAfter?.State.Running, true);
      // Separate state: dev's tag record and audit log are its own.
      assert.ok(dev.auditLines().every((l) => l['image'] !== image('v2')));
      assert.ok(prod.auditLines().every((l) => l['image'] !== image('v1')));
      assert.notEqual(dev.config.stateDir, prod.config.stateDir);
    } finally {
      await dev.cleanup();
      await prod.cleanup();
    }
  });
});
