import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { Deployer } from '../../../src/deploy/deployer.js';
import { LABEL, OWNER } from '../../../src/deploy/runtime-spec.js';
import { stopBoundMs } from '../../../src/deploy/stop-sequence.js';
import { TIMING, type Timing } from '../../../src/deploy/time-bound.js';
import { AgentError } from '../../../src/errors.js';
import { FakeEngine } from '../../support/fake-engine.js';
import { unitConfig, unitDeployer } from '../../support/unit-config.js';

/**
 * The emergency brake (stop-sequence.ts) on the scripted engine: the engine's stop by the fixed name
 * comes first, with no read before it; whatever fails after it is a warning; it touches only what is
 * provably this agent's.
 */
const root = mkdtempSync(join(tmpdir(), 'dreichor-stop-test-'));
after(() => rmSync(root, { recursive: true, force: true }));
const NAME = 'dreichor-runtime-dev';
let n = 0;
// The engine's waits shortened (production's are seconds): what is checked is their order and that each
// one ends, and the bound is computed from the same figures.
const SHORT: Timing = { ...TIMING, stopPatienceMs: 300, stopSlackMs: 300, killMs: 300 };

async function setup(): Promise<{ engine: FakeEngine; deployer: Deployer; stateDir: string }> {
  n += 1;
  const config = unitConfig(join(root, `s${n}`), { STOP_TIMEOUT_SECONDS: '1' });
  const engine = new FakeEngine();
  const { deployer } = await unitDeployer(config, engine, { timing: SHORT });
  return { engine, deployer, stateDir: config.stateDir };
}
const stop = (deployer: Deployer) => deployer.stop({ requestId: randomUUID(), clientId: 'client.access', endpoint: '/v1/stop' });
const refusal = (message: string) => () => new AgentError(502, `the engine refused it: ${message}`);

describe('the emergency brake', () => {
  it('asks the engine to stop the fixed name first, by its name: no read of the engine before it', async () => {
    const { engine, deployer } = await setup();
    const runtime = engine.seed(NAME);
    const result = await stop(deployer);
    assert.equal(result.status, 'stopped');
    assert.deepEqual(engine.calls.slice(0, 2), [`disableRestart ${NAME}`, `stop ${NAME}`]);
    assert.equal(engine.containers.has(runtime.id), false, 'then removed');
  });

  it('every read of containers refused (inspect, lists): stopped all the same, and the answer says what could not be checked', async () => {
    const { engine, deployer } = await setup();
    const runtime = engine.seed(NAME);
    for (const m of ['inspectContainer', 'listByLabels', 'listByName'] as const) engine.fail(m, refusal('injected'));
    const result = await stop(deployer);
    assert.equal(runtime.running, false);
    assert.equal(engine.containers.has(runtime.id), false, 'removed by its name');
    const warnings = (result.warnings ?? []).join('\n');
    assert.match(warnings, /could not be checked/);
    assert.match(warnings, /could not be listed/);
  });

  it('a stop that never answers: the engine kills it, within STOP_TIMEOUT_SECONDS plus a few seconds', async () => {
    const { engine, deployer } = await setup();
    const runtime = engine.seed(NAME);
    engine.hold('stop');
    const started = performance.now();
    const result = await stop(deployer);
    const elapsed = performance.now() - started;
    assert.equal(runtime.running, false);
    assert.ok(engine.calls.includes(`kill ${NAME}`));
    assert.match((result.warnings ?? []).join('\n'), /it was killed instead/);
    assert.ok(elapsed < 1_000 + SHORT.stopPatienceMs + SHORT.stopSlackMs + SHORT.killMs + 500, `took ${elapsed} ms`);
    assert.ok(elapsed >= 1_000 + SHORT.stopSlackMs - 50, `the stop was given STOP_TIMEOUT_SECONDS and its slack (${elapsed} ms)`);
    assert.ok(stopBoundMs(1, TIMING) < 100_000 - 1_000, 'and the bound fits before Cloudflare gives up (100 s)');
  });

  it('the engine refuses both the stop and the kill while the runtime runs: an error that says so', async () => {
    const { engine, deployer } = await setup();
    const runtime = engine.seed(NAME);
    engine.fail('stop', refusal('stop refused'));
    engine.fail('kill', refusal('kill refused'));
    const error = await stop(deployer).then(
      () => assert.fail('a stop that stopped nothing answered 200'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof AgentError);
    assert.match(
      error.reason,
      /stop and kill of dreichor-runtime-dev both failed .*stop refused.*kill refused.*may still be running/,
    );
    assert.equal(runtime.running, true);
  });

  it("never touches the other environment's container, nor a running one known only from the disk", async () => {
    const { engine, deployer, stateDir } = await setup();
    engine.seed(NAME);
    // Named like this agent's staging container, labelled for prod: not ours.
    const prodLike = engine.seed(`${NAME}-staging-0badcafe`, true, {
      labels: { [LABEL.owner]: OWNER, [LABEL.environment]: 'prod', [LABEL.containerName]: 'dreichor-runtime-prod' },
    });
    // Any container a journal names (here: a running one with no labels and another name).
    const foreign = engine.seed('precious-db', true, { labels: {} });
    writeFileSync(
      join(stateDir, 'deploy-journal.json'),
      `${JSON.stringify({
        operation: 'deploy',
        request_id: 'hostile',
        image: 'x',
        phase: 'created',
        since: new Date().toISOString(),
        old_container_id: foreign.id,
        new_container_id: null,
        old_image: null,
      })}\n`,
    );
    await deployer.reconcileNow().catch(() => undefined);
    const result = await stop(deployer);
    assert.equal(result.also_stopped, undefined, JSON.stringify(result));
    assert.equal(prodLike.running, true);
    assert.equal(foreign.running, true);
  });
});
