import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, beforeEach, describe, it } from 'node:test';
import type { DeployContext, Deployer } from '../../../src/deploy/deployer.js';
import { AgentError } from '../../../src/errors.js';
import { parseImageReference } from '../../../src/policy/image.js';
import type { DeployPhase } from '../../../src/state/journal.js';
import { FakeEngine } from '../../support/fake-engine.js';
import { UNIT_REPOSITORY, unitConfig, unitDeployer } from '../../support/unit-config.js';

/**
 * The rules of the deploy sequence that are about order, not about Docker, on a scripted stand-in
 * engine: seconds instead of minutes. The real-engine tests (test/integration) prove that deploys work.
 */
const root = mkdtempSync(join(tmpdir(), 'dreichor-deployer-test-'));
after(() => rmSync(root, { recursive: true, force: true }));
const REPO = UNIT_REPOSITORY;
const NAME = 'dreichor-runtime-dev';
let n = 0;

interface Setup {
  readonly engine: FakeEngine;
  readonly deployer: Deployer;
  readonly phases: DeployPhase[];
  /** Runs when the deploy has journaled `phase`, before it acts on it. */
  at(phase: DeployPhase, action: () => void | Promise<void>): void;
}

async function setup(): Promise<Setup> {
  n += 1;
  const dir = join(root, `d${n}`);
  const config = unitConfig(dir, { STOP_TIMEOUT_SECONDS: '1', START_CHECK_SECONDS: '1', DEPLOY_TIMEOUT_SECONDS: '20' });
  const engine = new FakeEngine();
  const phases: DeployPhase[] = [];
  const actions = new Map<DeployPhase, () => void | Promise<void>>();
  const { deployer } = await unitDeployer(config, engine, {
    onPhase: async (phase) => {
      phases.push(phase);
      await actions.get(phase)?.();
    },
  });
  return { engine, deployer, phases, at: (phase, action) => actions.set(phase, action) };
}

const image = (tag = 'v2') => parseImageReference(`${REPO}:${tag}`, { repository: REPO, environment: 'dev' });
const context = (callerGone = new AbortController()): DeployContext => ({
  requestId: randomUUID(),
  clientId: 'client.access',
  endpoint: '/v1/deploy',
  callerGone: callerGone.signal,
  receivedAt: Date.now(),
});
const refusal = async (promise: Promise<unknown>): Promise<AgentError> => {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof AgentError, String(error));
    return error;
  }
  assert.fail('the deploy was expected to fail');
};

describe('the deploy sequence, step by step', () => {
  let s: Setup;
  beforeEach(async () => {
    s = await setup();
  });

  it('replaces in order: resolve, pull, create, stop the old and move it aside, rename and start the new, remove the old', async () => {
    const old = s.engine.seed(NAME);
    const result = await s.deployer.deploy(image(), context());
    assert.equal(result.status, 'deployed');
    const order = s.engine.calls
      .filter((c) => /^(resolveTag|pull|create|stop|remove|rename|start) /.test(c))
      .map((c) => c.split(' ')[0]);
    assert.deepEqual(order, ['resolveTag', 'pull', 'create', 'stop', 'rename', 'rename', 'start', 'remove']);
    assert.deepEqual(s.engine.touched(old.id), [`stop ${old.id}`, `rename ${old.id}`, `remove ${old.id}`]);
    assert.equal(s.engine.containers.size, 1, 'only the new container is left');
    assert.deepEqual(s.phases, ['pulling', 'created', 'stopping', 'starting', 'checking']);
  });

  for (const step of ['resolveTag', 'pull', 'inspectImage', 'create'] as const) {
    it(`a failure at ${step} leaves the old container untouched`, async () => {
      const old = s.engine.seed(NAME);
      s.engine.fail(step, () => new AgentError(502, `${step} refused`));
      const error = await refusal(s.deployer.deploy(image(), context()));
      assert.match(error.reason, new RegExp(`${step} refused`));
      assert.deepEqual(s.engine.touched(old.id), []);
      assert.equal(s.engine.containers.get(old.id)?.running, true);
      assert.equal(s.engine.containers.size, 1, 'no staging container left');
    });
  }

  it('the caller leaving during the pull abandons the deploy before anything is created', async () => {
    const old = s.engine.seed(NAME);
    const gone = new AbortController();
    s.engine.hold('pull');
    const pending = refusal(s.deployer.deploy(image(), context(gone)));
    gone.abort();
    const error = await pending;
    assert.equal(error.code, 'caller_gone');
    assert.ok(!s.engine.calls.some((c) => c.startsWith('create')));
    assert.deepEqual(s.engine.touched(old.id), []);
  });

  it('the caller leaving once the new container is created: it is removed, the old one untouched', async () => {
    const old = s.engine.seed(NAME);
    const gone = new AbortController();
    s.at('created', () => gone.abort());
    const error = await refusal(s.deployer.deploy(image(), context(gone)));
    assert.equal(error.code, 'caller_gone');
    const staged = [...s.engine.calls].find((c) => c.startsWith('remove '))?.split(' ')[1];
    assert.ok(staged !== undefined && staged !== old.id, 'the staging container was removed');
    assert.deepEqual(s.engine.touched(old.id), []);
    assert.deepEqual([...s.engine.containers.keys()], [old.id]);
  });

  it('past the point of no return, the deploy runs to its end even if the caller leaves', async () => {
    const old = s.engine.seed(NAME);
    const gone = new AbortController();
    s.at('stopping', () => gone.abort());
    const result = await s.deployer.deploy(image(), context(gone));
    assert.equal(result.status, 'deployed');
    assert.equal(s.engine.containers.has(old.id), false);
    assert.equal(s.engine.containers.get(result.container_id)?.running, true);
    assert.equal(s.engine.containers.get(result.container_id)?.name, NAME);
  });

  it('a failed start check stops the new container and says what to roll back to: the last image that deployed', async () => {
    s.engine.seed(NAME);
    assert.equal((await s.deployer.deploy(image('v1'), context())).status, 'deployed');
    s.engine.exitOnStart = 3;
    const error = await refusal(s.deployer.deploy(image(), context()));
    assert.equal(error.code, 'start_check_failed');
    assert.match(
      error.reason,
      new RegExp(`exited with code 3.*The image before it was ${image('v1').reference}: deploy it to roll back.*boom`, 's'),
    );
    // The failed image is never offered as the way back: a rollback deploy names v1's predecessor (none).
    s.engine.exitOnStart = null;
    const back = await s.deployer.deploy(image('v1'), context());
    assert.equal(back.previous_image, null);
    const again = await s.deployer.deploy(image('v3'), context());
    assert.equal(again.previous_image, image('v1').reference);
    const created =
      s.engine.calls
        .filter((c) => c.startsWith('start '))
        .at(1)
        ?.split(' ')[1] ?? '';
    assert.ok(s.engine.calls.includes(`stop ${created}`), 'the new container was stopped');
  });

  it('one operation at a time: a second deploy or a stop while one runs is refused at once', async () => {
    const release = s.engine.hold('pull');
    const first = s.deployer.deploy(image(), context());
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal((await refusal(s.deployer.deploy(image('v3'), context()))).code, 'busy');
    assert.equal(
      (await refusal(s.deployer.stop({ requestId: 'x', clientId: 'client.access', endpoint: '/v1/stop' }))).code,
      'busy',
    );
    release();
    assert.equal((await first).status, 'deployed');
    assert.equal((await s.deployer.stop({ requestId: 'y', clientId: 'client.access', endpoint: '/v1/stop' })).removed, true);
  });

  it('a tag that resolves to another digest than its record: 409 before anything is pulled', async () => {
    await s.deployer.deploy(image(), context());
    s.engine.tagDigest = `sha256:${'b'.repeat(64)}`;
    const pulls = s.engine.calls.filter((c) => c.startsWith('pull')).length;
    const error = await refusal(s.deployer.deploy(image(), context()));
    assert.equal(error.code, 'tag_moved');
    assert.equal(s.engine.calls.filter((c) => c.startsWith('pull')).length, pulls);
  });

  it('stop stops the runtime and any other running container of it, whatever its name; the clean-up removes them', async () => {
    s.engine.seed(NAME);
    const aside = s.engine.seed(`${NAME}-retired-0123456789ab`, true, { labels: {}, restartPolicy: 'always' });
    const renamed = s.engine.seed('renamed-by-hand', true);
    renamed.labels['io.dreichor.container-name'] = NAME;
    const result = await s.deployer.stop({ requestId: 'z', clientId: 'client.access', endpoint: '/v1/stop' });
    assert.deepEqual([...(result.also_stopped ?? [])].sort(), [aside.name, 'renamed-by-hand'].sort());
    assert.deepEqual(
      [...s.engine.containers.values()].filter((c) => c.running),
      [],
      'nothing of this runtime runs',
    );
    assert.deepEqual(s.engine.stoppedRestartable, [], 'the restart policy was set to "no" first');
    await s.deployer.reconcileNow();
    assert.deepEqual(
      [...s.engine.containers.values()].map((c) => c.name),
      [],
      'the clean-up removed them',
    );
  });
});
