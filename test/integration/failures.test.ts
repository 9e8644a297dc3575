import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  type ApiResponse,
  type EngineContainer,
  engine,
  eventually,
  image,
  maxRunningDuring,
  readAudit,
  repository,
  type StandIn,
  startTestAgent,
  type TestAgent,
} from '../support/harness.js';
import { AUTH_USER, publishImage, REPOSITORY_PATH, sandboxInfo } from '../support/sandbox.js';
import { startStallingRegistry } from '../support/stall-proxy.js';

/**
 * Invariant 2: a deploy refused or failed before the stop step leaves the old container running,
 * untouched: same id, same start time. Every case below is checked against the engine's own state.
 */
async function assertUntouched(t: TestAgent, old: EngineContainer): Promise<void> {
  const now = await engine.inspect(t.config.containerName);
  assert.ok(now, 'the old container still exists');
  assert.equal(now.Id, old.Id, 'same container');
  assert.equal(now.State.StartedAt, old.State.StartedAt, 'not restarted');
  assert.equal(now.State.Running, true, 'still running');
  const all = await engine.named(t.config.containerName);
  assert.equal(all.length, 1, `exactly one container, found ${all.map((c) => c.Names.join()).join(', ')}`);
}

function lastOutcome(t: { readonly config: { readonly stateDir: string } }): Record<string, unknown> | undefined {
  return readAudit(t.config.stateDir)
    .filter((l) => l['endpoint'] === '/v1/deploy')
    .at(-1);
}

describe('a failed or refused deploy leaves the running container untouched', () => {
  let t: TestAgent;
  let old: EngineContainer;

  before(async () => {
    t = await startTestAgent();
    const res = await t.api.deploy(image('v1'));
    assert.equal(res.status, 200, res.text);
    const c = await engine.inspect(t.config.containerName);
    assert.ok(c);
    old = c;
  });
  after(async () => {
    await t.cleanup();
  });

  /**
   * Runs `body` with an agent for the same container whose registry stalls every blob download, on
   * an image published for the occasion (so the engine really has to download it); then checks that
   * the running container was not touched.
   */
  async function withStalledPull(
    tag: string,
    overrides: Record<string, string>,
    body: (agent: StandIn, ref: string, held: () => number) => Promise<void>,
  ): Promise<void> {
    const stalling = await startStallingRegistry(sandboxInfo().registry);
    try {
      await publishImage(sandboxInfo(), tag);
      await t.standIn({ IMAGE_REPOSITORY: `${stalling.host}/${REPOSITORY_PATH}`, ...overrides }, (agent) =>
        body(agent, `${stalling.host}/${REPOSITORY_PATH}:${tag}`, () => stalling.held()),
      );
    } finally {
      await stalling.close();
    }
    await assertUntouched(t, old);
  }

  it('a tag the registry does not have: 502 naming it', async () => {
    const res = await t.api.deploy(image('no-such-tag'));
    assert.equal(res.status, 502, res.text);
    assert.equal(res.body['status'], 'error');
    assert.match(String(res.body['reason']), /no-such-tag.*not found|not found.*no-such-tag/);
    await assertUntouched(t, old);
    assert.equal(lastOutcome(t)?.['outcome'], 'failed');
  });

  it('an image from another repository, an untagged one, a bad digest: 400, no engine call', async () => {
    for (const bad of [
      `${repository()}-evil:v1`,
      `${sandboxInfo().registry}/other/runtime:v1`,
      repository(),
      `${image('v1')}@sha256:abc`,
      `${image('v1')}@sha512:${'a'.repeat(128)}`,
      'busybox:latest',
    ]) {
      const res = await t.api.deploy(bad);
      assert.equal(res.status, 400, `${bad}: ${res.text}`);
      assert.equal(res.body['status'], 'error');
    }
    await assertUntouched(t, old);
    assert.equal(lastOutcome(t)?.['outcome'], 'refused');
  });

  it('a tag that was re-pushed with another digest: 409 naming both digests', async () => {
    const info = sandboxInfo();
    const first = await publishImage(info, 'moving');
    const deployed = await t.api.deploy(image('moving'));
    assert.equal(deployed.status, 200, deployed.text);
    const running = await engine.inspect(t.config.containerName);
    assert.ok(running);

    const second = await publishImage(info, 'moving');
    assert.notEqual(first, second);
    const res = await t.api.deploy(image('moving'));
    assert.equal(res.status, 409, res.text);
    assert.ok(
      String(res.body['reason']).includes(first) && String(res.body['reason']).includes(second),
      String(res.body['reason']),
    );
    await assertUntouched(t, running);
    // The record survives a restart of the agent: the same refusal from a fresh process state.
    await t.standIn({}, async (again) => {
      const res2 = await again.api.deploy(image('moving'));
      assert.equal(res2.status, 409, res2.text);
    });
    await assertUntouched(t, running);
    old = running;
  });

  it('a bind source or network that does not exist: 502 before the stop', async () => {
    const cases = [
      {
        override: { SNAPSHOTS_PATH: join(t.folders.root, 'missing') },
        reason: /create of container.*bind source path does not exist/,
      },
      {
        override: { RUNTIME_NETWORK: 'no-such-network' },
        reason: /runtime network "no-such-network" does not exist.*not touched/,
      },
    ];
    for (const { override, reason } of cases) {
      await t.standIn(override, async (other) => {
        const res = await other.api.deploy(image('v2'));
        assert.equal(res.status, 502, res.text);
        assert.match(String(res.body['reason']), reason);
      });
      await assertUntouched(t, old);
    }
  });

  it('a registry that stalls mid-pull: the deadline fires before the stop, 504', async () => {
    // 12 s in all, of which 1 + 1 + 5 are kept for stop, start check and margin: 5 s for the pull.
    await withStalledPull(
      'stalled',
      { DEPLOY_TIMEOUT_SECONDS: '12', STOP_TIMEOUT_SECONDS: '1', START_CHECK_SECONDS: '1' },
      async (slow, ref, held) => {
        const started = Date.now();
        const res = await slow.api.deploy(ref);
        const took = Date.now() - started;
        assert.equal(res.status, 504, res.text);
        assert.match(String(res.body['reason']), /not ready within 5 s.*not touched/);
        assert.ok(took < 12_000, `answered within the deploy timeout (${took} ms)`);
        assert.ok(held() > 0, 'the pull really was stuck on a blob');
        assert.equal(lastOutcome(slow)?.['outcome'], 'failed');
      },
    );
  });

  it('a caller that disconnects during the pull: abandoned, recorded, nothing touched', async () => {
    await withStalledPull('abandoned', {}, async (agent, ref, held) => {
      const controller = new AbortController();
      const call = agent.api
        .call('POST', '/v1/deploy', { body: { image: ref }, signal: controller.signal })
        .catch((e: unknown) => e);
      await eventually('the pull reached the stalled blob', 10_000, () => held() > 0);
      controller.abort();
      await call;
      await eventually('the abandoned deploy was recorded', 10_000, () => lastOutcome(agent)?.['outcome'] === 'abandoned');
      assert.match(String(lastOutcome(agent)?.['reason']), /caller disconnected/);
      assert.equal(lastOutcome(agent)?.['status'], 499);
      // The lock is free again at once.
      assert.equal((await agent.api.status()).body['deploy_in_progress'], false);
    });
  });

  it('one deploy or stop at a time: the second gets 409 at once; status answers meanwhile', async () => {
    await withStalledPull('held', { DEPLOY_TIMEOUT_SECONDS: '12', STOP_TIMEOUT_SECONDS: '1' }, async (other, ref, held) => {
      const first = other.api.deploy(ref);
      await eventually('the first deploy is pulling', 10_000, () => held() > 0);
      const started = Date.now();
      const second = await other.api.deploy(ref);
      const stop = await other.api.stop();
      const status = await other.api.status();
      assert.ok(Date.now() - started < 2000, 'refused at once, not queued');
      assert.equal(second.status, 409, second.text);
      assert.match(String(second.body['reason']), /deploy is in progress/);
      assert.equal(stop.status, 409, stop.text);
      assert.equal(status.status, 200);
      assert.equal(status.body['deploy_in_progress'], true);
      assert.equal(status.body['running'], true);
      assert.equal((await first).status, 504);
    });
  });

  it('the registry refuses the credentials: a clear reason, nothing touched', async () => {
    const info = sandboxInfo();
    const authRepository = `${info.authRegistry}/${REPOSITORY_PATH}`;
    for (const creds of [{ REGISTRY_USERNAME: AUTH_USER, REGISTRY_PASSWORD: 'wrong-password' }, {}]) {
      await t.standIn({ IMAGE_REPOSITORY: authRepository, ...creds }, async (other) => {
        const res = await other.api.deploy(`${authRepository}:v1`);
        assert.equal(res.status, 502, res.text);
        assert.match(String(res.body['reason']), /registry refused the credentials/);
        assert.ok(!res.text.includes('wrong-password'));
        assert.ok(!JSON.stringify(readAudit(other.config.stateDir)).includes('wrong-password'), 'no credential in the audit log');
      });
      await assertUntouched(t, old);
    }
  });
});

describe('the new container fails after the old one was stopped', () => {
  let t: TestAgent;
  before(async () => {
    // Long enough for the test images' 1 s healthcheck interval to report.
    t = await startTestAgent({ START_CHECK_SECONDS: '4' });
  });
  after(async () => {
    await t.cleanup();
  });

  it('a runtime that crashes at start: 502 with its last log lines; it is the only container', async () => {
    assert.equal((await t.api.deploy(image('v1'))).status, 200);
    const res = await t.api.deploy(image('crash'));
    assert.equal(res.status, 502, res.text);
    const reason = String(res.body['reason']);
    assert.match(reason, /exited with code 3/);
    assert.match(reason, /boom: cannot connect to the database/);
    assert.match(reason, /giving up/);
    assert.ok(reason.includes(`${image('v1')}: deploy it to roll back`), reason);
    const all = await engine.named(t.config.containerName);
    assert.equal(all.length, 1);
    const c = await engine.inspect(t.config.containerName);
    assert.equal(c?.State.Running, false);
    const status = await t.api.status();
    assert.equal(status.body['running'], false);
    assert.equal((status.body['last_deploy'] as Record<string, unknown>)['outcome'], 'failed');
  });

  it('a runtime whose HEALTHCHECK fails: 502 "unhealthy", stopped', async () => {
    const res = await t.api.deploy(image('unhealthy'));
    assert.equal(res.status, 502, res.text);
    assert.match(String(res.body['reason']), /unhealthy|did not become healthy/);
    const c = await engine.inspect(t.config.containerName);
    assert.equal(c?.State.Running, false, 'a failed deploy does not leave the runtime running');
    assert.equal((await engine.named(t.config.containerName)).length, 1);
  });

  it('a runtime whose HEALTHCHECK passes: deployed once healthy', async () => {
    const res = await t.api.deploy(image('healthy'));
    assert.equal(res.status, 200, res.text);
    const c = await engine.inspect(t.config.containerName);
    assert.equal(c?.State.Health?.Status, 'healthy');
  });

  it('an old container that ignores SIGTERM is killed after STOP_TIMEOUT_SECONDS, then replaced', async () => {
    assert.equal((await t.api.deploy(image('stubborn'))).status, 200);
    const old = await engine.inspect(t.config.containerName);
    assert.ok(old);
    const started = Date.now();
    let res: ApiResponse | undefined;
    const maxRunning = await maxRunningDuring(t.config.containerName, async () => {
      res = await t.api.deploy(image('v2'));
    });
    assert.equal(res!.status, 200, res!.text);
    assert.ok(Date.now() - started >= 2000, 'waited for the stop timeout');
    assert.equal(maxRunning, 1, 'the new one started only after the old one was killed');
    assert.equal(await engine.inspect(old.Id), null);
    const now = await engine.inspect(t.config.containerName);
    assert.ok(now?.State.Running);
  });
});

describe('the engine does not answer', () => {
  it('a hung engine: every call ends with 504 within its deadline, and the lock is released', async () => {
    const { createServer } = await import('node:net');
    const { mkdtempSync } = await import('node:fs');
    const socketPath = join(mkdtempSync(join(tmpdir(), 'dreichor-hung-')), 'hung.sock');
    const sockets = new Set<import('node:net').Socket>();
    // Accepts connections and never answers: an engine that hangs.
    const hung = createServer((s) => sockets.add(s));
    await new Promise<void>((resolve) => hung.listen(socketPath, resolve));
    const t = await startTestAgent({ DOCKER_HOST: `unix://${socketPath}` }, { engineCallTimeoutMs: 1000 });
    try {
      const started = Date.now();
      const res = await t.api.deploy(image('v1'));
      assert.equal(res.status, 504, res.text);
      assert.match(String(res.body['reason']), /did not complete/);
      const status = await t.api.status();
      assert.equal(status.status, 504, status.text);
      const again = await t.api.deploy(image('v1'));
      assert.equal(again.status, 504, 'not 409: the lock was released');
      assert.ok(Date.now() - started < 15_000);
    } finally {
      await t.agent.close();
      for (const s of sockets) s.destroy();
      hung.close();
    }
  });

  it('no engine at all: 503 with a clear reason; the agent still answers', async () => {
    const t = await startTestAgent({ DOCKER_HOST: 'unix:///tmp/dreichor-no-such-engine.sock' });
    try {
      const status = await t.api.status();
      assert.equal(status.status, 503, status.text);
      assert.match(String(status.body['reason']), /cannot be reached/);
      const res = await t.api.deploy(image('v1'));
      assert.equal(res.status, 503, res.text);
    } finally {
      await t.agent.close();
    }
  });
});
