import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Logger, pino } from 'pino';
import { Engine } from '../../src/docker.js';
import { startEngineProxy } from '../support/engine-proxy.js';
import { engine, eventually, image, repository, startTestAgent, type TestAgent } from '../support/harness.js';
import { docker, publishImage, sandboxInfo } from '../support/sandbox.js';

/**
 * Image retention on the real engine (src/deploy/retention.ts): after each deploy, the images this agent
 * deployed beyond its IMAGE_RETENTION most recent are removed, and nothing else: not an image of
 * another repository, not one a container uses, not either environment's way back.
 */

/** The agent's log lines, kept for the test to read. */
function capturedLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger: Logger = pino(
    { level: 'info' },
    { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
  );
  return { logger, lines };
}

const present = async (digest: string): Promise<boolean> => (await engine.imageId(`${repository()}@${digest}`)) !== null;

async function presentSet(digests: readonly string[]): Promise<boolean[]> {
  return Promise.all(digests.map(present));
}

/** Publishes `count` images of their own under tags `<prefix>-1`...; returns their digests. */
async function publish(prefix: string, count: number): Promise<string[]> {
  const digests: string[] = [];
  for (let i = 1; i <= count; i += 1) digests.push(await publishImage(sandboxInfo(), `${prefix}-${i}`));
  return digests;
}

async function deployAll(t: TestAgent, prefix: string, from: number, to: number): Promise<void> {
  for (let i = from; i <= to; i += 1) {
    const res = await t.api.deploy(image(`${prefix}-${i}`));
    assert.equal(res.status, 200, res.text);
  }
}

describe('image retention', () => {
  const agents: TestAgent[] = [];
  const operatorContainers: string[] = [];
  const otherRepository = `${sandboxInfo().registry}/someone-else/tool`;

  before(async () => {
    // An image of another repository on the same engine: never the agent's to remove.
    await docker(sandboxInfo(), 'pull', `${sandboxInfo().registry}/dreichor/runtime:v3`);
    await docker(sandboxInfo(), 'tag', `${sandboxInfo().registry}/dreichor/runtime:v3`, `${otherRepository}:keep`);
    await docker(sandboxInfo(), 'rmi', `${sandboxInfo().registry}/dreichor/runtime:v3`);
  });
  after(async () => {
    for (const t of agents) await t.cleanup();
    for (const id of operatorContainers) await engine.remove(id);
    await docker(sandboxInfo(), 'rmi', `${otherRepository}:keep`).catch(() => undefined);
  });

  it('ten deploys with IMAGE_RETENTION=3 leave the three newest, plus one a stopped container uses; each removal is an audit line', async () => {
    const digests = await publish('keep', 10);
    const { logger, lines } = capturedLogger();
    const t = await startTestAgent({ IMAGE_RETENTION: '3' }, { logger, recentPullMs: 0 });
    agents.push(t);

    await deployAll(t, 'keep', 1, 2);
    // An operator's own container, stopped, made from the second image: that image stays.
    operatorContainers.push(
      await engine.create(`operator-debug-${process.pid}`, `${repository()}@${digests[1] ?? ''}`, { purpose: 'debugging' }),
    );
    // The first image also carries a name of another repository: only the agent's reference goes.
    await docker(sandboxInfo(), 'tag', `${repository()}@${digests[0] ?? ''}`, `${otherRepository}:also-keep-1`);
    await deployAll(t, 'keep', 3, 10);

    // 10, 9, 8 are the three newest (9 is also the previous image); 2 is used by a container.
    const expected = digests.map((_, i) => i >= 7 || i === 1);
    await eventually('pruning left the three newest and the one in use', 30_000, async () => {
      return JSON.stringify(await presentSet(digests)) === JSON.stringify(expected);
    });
    // Settled: nothing more goes.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    assert.deepEqual(await presentSet(digests), expected);

    const pruned = t.auditLines().filter((l) => l['outcome'] === 'pruned');
    assert.deepEqual(
      pruned.map((l) => l['digest']).sort(),
      [0, 2, 3, 4, 5, 6].map((i) => digests[i]).sort(),
      'one audit line per removal, with its digest',
    );
    for (const line of pruned) {
      assert.equal(line['endpoint'], 'image-retention');
      assert.match(String(line['image']), /:keep-\d+$/);
      assert.match(String(line['reason']), /beyond the 3 kept/);
    }
    // The image with another repository's name is still there under that name.
    assert.notEqual(await engine.imageId(`${otherRepository}:also-keep-1`), null);
    assert.notEqual(await engine.imageId(`${otherRepository}:keep`), null, 'an image of another repository is never touched');
    // Kept, and said so.
    assert.ok(
      lines.some((l) => String(l['msg']).startsWith('image retention: kept') && String(l['image']).endsWith(digests[1] ?? '-')),
      'the image in use was logged as kept',
    );
    const status = await t.api.status();
    assert.equal(status.body['image_retention'], 3);
    // The runtime still runs the newest.
    assert.equal((await engine.inspect(t.config.containerName))?.Config.Labels['io.dreichor.image-digest'], digests[9]);
    await docker(sandboxInfo(), 'rmi', `${otherRepository}:also-keep-1`);
  });

  it("an image any deploy pulled minutes ago stays, though no container names it any more: the engine's event log says so (issue 22)", async () => {
    const digests = await publish('race', 3);
    const { logger, lines } = capturedLogger();
    // Dev with the real grace; prod pulls dev's oldest image, then is stopped: no container names it.
    const dev = await startTestAgent({ IMAGE_RETENTION: '1' }, { environment: 'dev', logger });
    const prod = await startTestAgent({ IMAGE_RETENTION: '1' }, { environment: 'prod', recentPullMs: 0 });
    agents.push(dev, prod);
    await deployAll(dev, 'race', 1, 2);
    assert.equal((await prod.api.deploy(image('race-1'))).status, 200);
    assert.equal((await prod.api.stop()).status, 200);
    await deployAll(dev, 'race', 3, 3);
    await eventually('dev ran its clean-up and kept race-1', 30_000, () =>
      lines.some(
        (l) =>
          String(l['msg']).includes('a deploy pulled it a few minutes ago') && String(l['image']).endsWith(digests[0] ?? '-'),
      ),
    );
    assert.equal(await present(digests[0] ?? ''), true, 'race-1 is still on the engine');
    assert.equal(dev.auditLines().filter((l) => l['outcome'] === 'pruned').length, 0);
  });

  it("prod pulls an image dev deployed long ago; before prod creates from it, dev's clean-up runs: the image stays, prod's deploy goes through (issue 22)", async () => {
    const digests = await publish('xenv', 3);
    const { logger, lines } = capturedLogger();
    // Dev's own pulls of xenv-1 must be older than its grace when its clean-up runs: only prod's pull
    // can keep the image then (the grace shortened from minutes to seconds, the rule the same).
    const graceMs = 12_000;
    const dev = await startTestAgent({ IMAGE_RETENTION: '1' }, { environment: 'dev', logger, recentPullMs: graceMs });
    agents.push(dev);
    const dir = mkdtempSync(join(tmpdir(), 'p-'));
    const proxy = await startEngineProxy(sandboxInfo().socketPath, dir);
    try {
      const prod = await startTestAgent({ IMAGE_RETENTION: '1', DOCKER_HOST: proxy.dockerHost }, { environment: 'prod' });
      agents.push(prod);
      const devPulled = Date.now();
      await deployAll(dev, 'xenv', 1, 2);
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, devPulled + graceMs + 2_000 - Date.now())));

      // Prod's create waits until dev's clean-up has looked at xenv-1.
      let release: () => void = () => undefined;
      const released = new Promise<void>((resolve) => (release = resolve));
      let held = false;
      proxy.rule = (method, path) => {
        if (method !== 'POST' || !/\/containers\/create/.test(path)) return 'pass';
        held = true;
        return { after: released };
      };
      const prodDeploy = prod.api.deploy(image('xenv-1'));
      await eventually("prod's create is held, after its pull", 60_000, () => held);
      await deployAll(dev, 'xenv', 3, 3);
      const looked = await eventually("dev's clean-up looked at xenv-1", 30_000, () =>
        lines.some((l) => String(l['msg']).startsWith('image retention:') && String(l['image']).endsWith(digests[0] ?? '-')),
      ).then(
        () => true,
        () => false,
      );
      release();
      const answer = await prodDeploy;
      assert.ok(looked, "dev's clean-up never considered xenv-1");
      assert.equal(answer.status, 200, answer.text);
      const kept = lines.find((l) => String(l['image']).endsWith(digests[0] ?? '-'));
      assert.equal(kept?.['msg'], 'image retention: kept, a deploy pulled it a few minutes ago');
      assert.equal(await present(digests[0] ?? ''), true, 'xenv-1 is still on the engine');
      assert.equal((await engine.inspect(prod.config.containerName))?.Config.Labels['io.dreichor.image-digest'], digests[0]);
      assert.equal(dev.auditLines().filter((l) => l['outcome'] === 'pruned').length, 0);
    } finally {
      proxy.rule = () => 'pass';
      await proxy.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the engine refuses to remove an image a stopped container uses: the agent skips it, never forces', async () => {
    const [digest] = await publish('refused', 1);
    const ref = `${repository()}@${digest ?? ''}`;
    await docker(sandboxInfo(), 'pull', ref);
    const id = await engine.create(`operator-refused-${process.pid}`, ref, {});
    operatorContainers.push(id);
    const own = new Engine({ socketPath: sandboxInfo().socketPath });
    assert.equal(await own.removeImage(ref), 'in-use');
    assert.notEqual(await engine.imageId(ref), null, 'the image is still there');
    await engine.remove(id);
    assert.equal(await own.removeImage(ref), 'deleted');
    assert.equal(await own.removeImage(ref), 'gone');
  });

  it('two agents on one engine, the same digests promoted: dev prunes neither what prod runs nor what prod would roll back to', async () => {
    const digests = await publish('promoted', 6);
    const dev = await startTestAgent({ IMAGE_RETENTION: '1' }, { environment: 'dev', recentPullMs: 0 });
    agents.push(dev);
    const prod = await startTestAgent({ IMAGE_RETENTION: '1' }, { environment: 'prod', recentPullMs: 0 });
    agents.push(prod);

    // Builds 1 and 2 are promoted from dev to prod: prod runs 2 and would roll back to 1.
    await deployAll(dev, 'promoted', 1, 2);
    await deployAll(prod, 'promoted', 1, 2);
    const prodStatus = await prod.api.status();
    assert.equal(prodStatus.body['previous_image'], image('promoted-1'));
    // Dev moves on: 3, 4, 5, 6. It keeps 6 (newest) and 5 (its previous image); 3 and 4 are its to
    // remove; 1 and 2 are prod's, and stay.
    await deployAll(dev, 'promoted', 3, 6);
    const expected = [true, true, false, false, true, true];
    await eventually("dev's pruning settled", 30_000, async () => {
      return JSON.stringify(await presentSet(digests)) === JSON.stringify(expected);
    });
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    assert.deepEqual(await presentSet(digests), expected);
    // Prod's rollback pulls nothing: the image is on the host, and the deploy goes through.
    const rollback = await prod.api.deploy(image('promoted-1'));
    assert.equal(rollback.status, 200, rollback.text);
    assert.equal(prod.auditLines().filter((l) => l['outcome'] === 'pruned').length, 0);
  });
});
