import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnAgent } from '../support/agent-process.js';
import {
  Api,
  engine,
  engineAt,
  eventually,
  image,
  readAudit,
  removeContainersNamed,
  startTestAgent,
  testEnv,
} from '../support/harness.js';
import { freePort, PrivateEngine, removeEngineFolder } from '../support/sandbox.js';

/** The deploy journal's current phase, as a test can watch it from outside. */
function phaseOf(stateDir: string): string | null {
  try {
    return (JSON.parse(readFileSync(join(stateDir, 'deploy-journal.json'), 'utf8')) as { phase: string }).phase;
  } catch {
    return null;
  }
}

/** Runs `body` with a Docker engine of its own, which it may stop and start; removes it afterwards. */
async function withOwnEngine(body: (own: PrivateEngine, e: ReturnType<typeof engineAt>) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'e-'));
  const own = new PrivateEngine(dir);
  try {
    await own.start();
    await body(own, engineAt(own.socketPath));
  } finally {
    await own.stop();
    await removeEngineFolder(dir);
  }
}

describe('engine faults', () => {
  it('the engine is down when the agent starts: it listens, says so, and recovers by itself when the engine is back', async () => {
    await withOwnEngine(async (own, e) => {
      const first = await startTestAgent({ DOCKER_HOST: own.dockerHost });
      try {
        const name = first.config.containerName;
        assert.equal((await first.api.deploy(image('v1'))).status, 200);
        await first.agent.close();
        const runtime = await e.inspect(name);
        assert.ok(runtime);
        // What an agent killed mid-deploy leaves behind.
        const leftover = await e.create(`${name}-staging-0000dead`, runtime.Config.Image, runtime.Config.Labels);
        await own.stop();

        const second = await startTestAgent({
          DOCKER_HOST: own.dockerHost,
          CONTAINER_NAME: name,
          STATE_DIR: first.config.stateDir,
        });
        try {
          const down = await second.api.status();
          process.stdout.write(`# observed: engine down at start: status ${down.status} ${String(down.body['reason'])}\n`);
          assert.equal(down.status, 503, down.text);
          assert.match(String(down.body['reason']), /Docker engine cannot be reached/);
          assert.equal((await second.api.deploy(image('v2'))).status, 503);

          await own.start();
          await eventually('status answers again', 15_000, async () => (await second.api.status()).status === 200);
          await eventually(
            'the leftover is cleaned up without any request',
            15_000,
            async () => (await e.inspect(leftover)) === null,
          );
          assert.ok(second.auditLines().some((l) => l['outcome'] === 'cleaned' && String(l['reason']).includes('0000dead')));
          // The engine's restart stopped the runtime; the agent does not start it on its own.
          assert.equal((await e.inspect(name))?.State.Running, false);
          assert.equal((await second.api.deploy(image('v2'))).status, 200);
        } finally {
          await second.agent.close();
        }
      } finally {
        await first.agent.close();
        rmSync(first.folders.root, { recursive: true, force: true });
      }
    });
  });

  it('the engine stops in the middle of a deploy: a clear error, and a consistent engine once it is back', async () => {
    await withOwnEngine(async (own, e) => {
      const t = await startTestAgent({ DOCKER_HOST: own.dockerHost, STOP_TIMEOUT_SECONDS: '4' }, { engineCallTimeoutMs: 5000 });
      try {
        const name = t.config.containerName;
        assert.equal((await t.api.deploy(image('stubborn'))).status, 200);
        const pending = t.api.deploy(image('v2'));
        await eventually('the old container is being stopped', 20_000, () => phaseOf(t.config.stateDir) === 'stopping');
        await own.stop();
        const res = await pending;
        process.stdout.write(
          `# observed: engine stopped while stopping the old container: ${res.status} ${String(res.body['reason'])}\n`,
        );
        assert.ok(res.status >= 500 && res.status < 600, `${res.status} ${res.text}`);
        assert.equal(res.body['status'], 'error');
        assert.ok(String(res.body['reason']).length > 10);

        await own.start();
        await eventually('no staging or replaced leftover once the engine is back', 20_000, async () =>
          (await e.named(name)).every((c) => !c.Names.some((n) => n.includes('-staging-') || n.includes('-retired-'))),
        );
        const containers = await e.named(name);
        assert.ok(containers.length <= 1, `at most one container: ${containers.length}`);
        assert.ok(
          containers.every((c) => c.State !== 'running'),
          'nothing restarted on its own',
        );
        const status = await t.api.status();
        assert.equal(status.status, 200);
        assert.equal(status.body['running'], false);
        assert.equal((status.body['last_deploy'] as Record<string, unknown>)['outcome'], 'failed');
        assert.equal((await t.api.deploy(image('v3'))).status, 200, 'and it deploys again');
      } finally {
        await t.agent.close();
        rmSync(t.folders.root, { recursive: true, force: true });
      }
    });
  });

  it('the registry is down: 502 before anything is touched', async () => {
    const t = await startTestAgent();
    try {
      assert.equal((await t.api.deploy(image('v1'))).status, 200);
      const old = await engine.inspect(t.config.containerName);
      const closed = `127.0.0.1:${await freePort()}/dreichor/runtime`;
      await t.standIn({ IMAGE_REPOSITORY: closed }, async (other) => {
        const res = await other.api.deploy(`${closed}:v1`);
        assert.equal(res.status, 502, res.text);
        assert.match(String(res.body['reason']), /connection refused/);
      });
      const now = await engine.inspect(t.config.containerName);
      assert.equal(now?.Id, old?.Id);
      assert.equal(now?.State.StartedAt, old?.State.StartedAt);
    } finally {
      await t.cleanup();
    }
  });
});

describe('the audit log cannot be written', () => {
  it('disk full: a deploy is refused, the emergency stop still stops and says it is unrecorded, status still answers', async () => {
    const { execFileSync } = await import('node:child_process');
    const { mkdirSync, writeFileSync } = await import('node:fs');
    const mountPoint = mkdtempSync(join(tmpdir(), 'dreichor-full-'));
    // A real file system that really fills up: 1 MiB of tmpfs for STATE_DIR.
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mountPoint]);
    const stateDir = join(mountPoint, 'state');
    mkdirSync(stateDir);
    const t = await startTestAgent({ STATE_DIR: stateDir });
    try {
      try {
        writeFileSync(join(mountPoint, 'filler'), Buffer.alloc(2 * 1024 * 1024));
      } catch {
        // ENOSPC: the disk is now full, which is the point
      }
      const deploy = await t.api.deploy(image('v1'));
      assert.equal(deploy.status, 503, deploy.text);
      assert.match(String(deploy.body['reason']), /could not be written \(ENOSPC\).*nothing is deployed unrecorded/);
      // The brake does not depend on the disk: it acts, and its answer says the audit line is missing.
      const stop = await t.api.stop();
      assert.equal(stop.status, 500, stop.text);
      assert.match(String(stop.body['reason']), /the request succeeded .*"status":"stopped".*could not be written/);
      assert.deepEqual(await engine.named(t.config.containerName), [], 'nothing was deployed');
      const status = await t.api.status();
      assert.equal(status.status, 200, status.text);
    } finally {
      await t.agent.close();
      execFileSync('umount', [mountPoint]);
      rmSync(mountPoint, { recursive: true, force: true });
      rmSync(t.folders.root, { recursive: true, force: true });
    }
  });
});

describe('caller faults', () => {
  it('a caller that disconnects while the old container stops: the deploy completes and is recorded', async () => {
    const t = await startTestAgent({ STOP_TIMEOUT_SECONDS: '3' });
    try {
      assert.equal((await t.api.deploy(image('stubborn'))).status, 200);
      const old = await engine.inspect(t.config.containerName);
      const controller = new AbortController();
      const call = t.api
        .call('POST', '/v1/deploy', { body: { image: image('v2') }, signal: controller.signal })
        .catch((e: unknown) => e);
      await eventually('the old container is being stopped', 20_000, () => phaseOf(t.config.stateDir) === 'stopping');
      controller.abort();
      await call;
      await eventually('the deploy was recorded as deployed', 20_000, () =>
        t.auditLines().some((l) => l['outcome'] === 'deployed' && l['image'] === image('v2')),
      );
      const now = await engine.inspect(t.config.containerName);
      assert.notEqual(now?.Id, old?.Id);
      assert.equal(now?.State.Running, true);
      assert.equal(now?.Config.Labels['io.dreichor.image'], image('v2'));
      assert.equal((await engine.named(t.config.containerName)).length, 1);
    } finally {
      await t.cleanup();
    }
  });
});

describe('shutdown', () => {
  it('SIGTERM during a deploy: it finishes, new deploys get 503 meanwhile, then the agent exits', async () => {
    const port = await freePort();
    const { env, folders } = testEnv({ PORT: String(port), STOP_TIMEOUT_SECONDS: '3' });
    const api = new Api(`http://127.0.0.1:${port}`);
    const agent = spawnAgent(env).child;
    const exited = new Promise<number | null>((resolve) => agent.once('exit', (code) => resolve(code)));
    try {
      await eventually('the agent listens', 10_000, async () => (await api.status().catch(() => null))?.status === 200);
      assert.equal((await api.deploy(image('stubborn'))).status, 200);
      const pending = api.deploy(image('v2'));
      await eventually('the old container is being stopped', 20_000, () => phaseOf(env['STATE_DIR'] ?? '') === 'stopping');
      agent.kill('SIGTERM');
      await sleep(200);
      const refused = await api.deploy(image('v3'));
      assert.equal(refused.status, 503, refused.text);
      assert.match(String(refused.body['reason']), /shutting down/);
      assert.equal((await api.call('POST', '/v1/stop', { body: {} })).status, 503);
      assert.equal((await api.status()).status, 200, 'status still answers');
      const finished = await pending;
      assert.equal(finished.status, 200, finished.text);
      assert.equal(await exited, 0);
      assert.equal(
        (await engine.inspect(env['CONTAINER_NAME'] ?? ''))?.State.Running,
        true,
        'the runtime keeps running after the agent is gone',
      );
      assert.ok(readAudit(env['STATE_DIR'] ?? '').some((l) => l['status'] === 503 && l['image'] === image('v3')));
    } finally {
      agent.kill('SIGKILL');
      await removeContainersNamed(env['CONTAINER_NAME'] ?? '');
      rmSync(folders.root, { recursive: true, force: true });
    }
  });

  it('SIGTERM when idle: the agent exits at once', async () => {
    const port = await freePort();
    const { env, folders } = testEnv({ PORT: String(port) });
    const api = new Api(`http://127.0.0.1:${port}`);
    const agent = spawnAgent(env).child;
    try {
      await eventually('the agent listens', 10_000, async () => (await api.status().catch(() => null))?.status === 200);
      const exited = new Promise<number | null>((resolve) => agent.once('exit', (code) => resolve(code)));
      agent.kill('SIGTERM');
      // "At once": well before any deploy could have run; the bound only catches a hang.
      const code = await Promise.race([exited, sleep(5000, 'still running')]);
      assert.equal(code, 0);
      assert.equal(existsSync(join(env['STATE_DIR'] ?? '', 'deploy-journal.json')), false);
    } finally {
      agent.kill('SIGKILL');
      rmSync(folders.root, { recursive: true, force: true });
    }
  });
});
