import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { Deployer } from '../../../src/deploy/deployer.js';
import { LABEL, OWNER } from '../../../src/deploy/runtime-spec.js';
import { provablyOurs } from '../../../src/deploy/stop-sequence.js';
import { TIMING, type Timing } from '../../../src/deploy/time-bound.js';
import type { ContainerSummary } from '../../../src/engine/engine-port.js';
import { AgentError } from '../../../src/errors.js';
import { FakeEngine } from '../../support/fake-engine.js';
import { unitConfig, unitDeployer } from '../../support/unit-config.js';

/**
 * Phase 2b of the brake (stop-sequence.ts): the other running containers of this runtime that are
 * provably this agent's are stopped too, and nothing else. Security: a slip here stops another
 * environment's runtime or leaves one of ours running.
 */
const root = mkdtempSync(join(tmpdir(), 'dreichor-stop-others-'));
after(() => rmSync(root, { recursive: true, force: true }));
const NAME = 'dreichor-runtime-dev';
const SHORT: Timing = { ...TIMING, stopPatienceMs: 100, stopSlackMs: 50, killMs: 100 };
const config = unitConfig(join(root, 'pure'));
const ours = { [LABEL.owner]: OWNER, [LABEL.environment]: 'dev', [LABEL.containerName]: NAME };
const STAGING = `${NAME}-staging-0badcafe`;
const RETIRED = `${NAME}-retired-0123456789ab`;
let n = 0;

const summary = (id: string, name: string, labels: Record<string, string>): ContainerSummary => ({
  id,
  name,
  state: 'running',
  labels,
});

describe('provablyOurs', () => {
  it('keeps what carries all three of our labels, or a staging or retired name of ours; once each', () => {
    const found = [
      summary('a', 'renamed-by-hand', ours),
      summary('b', STAGING, {}),
      summary('c', RETIRED, {}),
      summary('a', 'renamed-by-hand', ours), // listed by label and by name
    ];
    assert.deepEqual(
      provablyOurs(config, found).map((c) => c.id),
      ['a', 'b', 'c'],
    );
  });

  it('never the fixed name itself, another environment, a missing label, or a name that only looks like ours', () => {
    const found = [
      summary('fixed', NAME, ours),
      summary('prod', STAGING, { ...ours, [LABEL.environment]: 'prod' }),
      summary('owner', 'x', { ...ours, [LABEL.owner]: 'someone-else' }),
      summary('env', 'y', { [LABEL.owner]: OWNER, [LABEL.containerName]: NAME }),
      summary('name', 'z', { ...ours, [LABEL.containerName]: 'dreichor-runtime-other' }),
      summary('short', `${NAME}-staging-0bad`, {}),
      summary('prefix', `x${STAGING}`, {}),
    ];
    assert.deepEqual(provablyOurs(config, found), []);
  });
});

async function setup(): Promise<{ engine: FakeEngine; deployer: Deployer }> {
  n += 1;
  const engine = new FakeEngine();
  const { deployer } = await unitDeployer(unitConfig(join(root, `s${n}`), { STOP_TIMEOUT_SECONDS: '1' }), engine, {
    timing: SHORT,
  });
  return { engine, deployer };
}
const stop = (deployer: Deployer) => deployer.stop({ requestId: randomUUID(), clientId: 'client.access', endpoint: '/v1/stop' });
const refused = (message: string) => () => new AgentError(502, `the engine refused it: ${message}`);
const warningsOf = (result: { readonly warnings?: readonly string[] }) => (result.warnings ?? []).join('\n');

describe('the brake and the other containers of this runtime', () => {
  it('stops, un-restarts and removes a running staging container; leaves a stopped one alone', async () => {
    const { engine, deployer } = await setup();
    engine.seed(NAME);
    const staging = engine.seed(STAGING, true, { labels: ours, restartPolicy: 'always' });
    const exited = engine.seed(RETIRED, false, { labels: {} });
    const result = await stop(deployer);
    assert.deepEqual(result.also_stopped, [STAGING]);
    assert.equal(result.warnings, undefined, warningsOf(result));
    assert.equal(engine.containers.has(staging.id), false);
    assert.deepEqual(engine.stoppedRestartable, [], 'its restart policy was "no" before its stop');
    assert.deepEqual(engine.touched(exited.id), []);
  });

  it('a stop refused: killed instead; both refused: a warning, and it is not counted as stopped', async () => {
    const killed = await setup();
    const staging = killed.engine.seed(STAGING, true, { labels: ours });
    killed.engine.fail('stop', refused('stop refused'));
    const result = await stop(killed.deployer);
    assert.deepEqual(result.also_stopped, [STAGING]);
    assert.ok(killed.engine.calls.includes(`kill ${staging.id}`));

    const stuck = await setup();
    stuck.engine.seed(STAGING, true, { labels: ours });
    stuck.engine.fail('stop', refused('stop refused'));
    stuck.engine.fail('kill', refused('kill refused'));
    const none = await stop(stuck.deployer);
    assert.equal(none.also_stopped, undefined);
    assert.match(
      warningsOf(none),
      new RegExp(
        `${STAGING}, running although it is not the runtime, could not be stopped \\(.*kill refused.*POST /v1/stop again`,
      ),
    );
  });

  it('its restart policy and its removal refused: stopped all the same, and both are warnings', async () => {
    const { engine, deployer } = await setup();
    const staging = engine.seed(STAGING, true, { labels: ours });
    engine.fail('disableRestart', refused('update refused'));
    engine.fail('remove', refused('remove refused'));
    const result = await stop(deployer);
    assert.deepEqual(result.also_stopped, [STAGING]);
    assert.equal(staging.running, false);
    const warnings = warningsOf(result);
    assert.match(warnings, new RegExp(`restart policy of ${STAGING} could not be set to "no" \\(.*update refused`));
    assert.match(
      warnings,
      new RegExp(`${STAGING} is stopped but could not be removed yet \\(.*remove refused.*in the background`),
    );
  });

  it('found by its name only (no labels): listed by name too, and stopped', async () => {
    const { engine, deployer } = await setup();
    engine.seed(RETIRED, true, { labels: {} });
    engine.fail('listByLabels', refused('list refused'));
    const result = await stop(deployer);
    assert.equal(result.also_stopped, undefined);
    assert.match(warningsOf(result), /could not be listed \(.*list refused.*only dreichor-runtime-dev was stopped/);

    const byName = await setup();
    const retired = byName.engine.seed(RETIRED, true, { labels: {} });
    const stopped = await stop(byName.deployer);
    assert.deepEqual(stopped.also_stopped, [RETIRED]);
    assert.equal(retired.running, false);
  });
});
