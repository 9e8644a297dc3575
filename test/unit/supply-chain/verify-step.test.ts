import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Config } from '../../../src/config/config.js';
import type { DeployContext } from '../../../src/deploy/deployer.js';
import { AgentError } from '../../../src/errors.js';
import { parseImageReference } from '../../../src/policy/image.js';
import type { Provenance } from '../../../src/supply-chain/provenance.js';
import type { ImageVerifier } from '../../../src/supply-chain/verifier.js';
import { FakeEngine } from '../../support/fake-engine.js';
import { ScriptedRegistry } from '../../support/scripted-registry.js';
import { unitConfig, unitDeployer } from '../../support/unit-config.js';

/**
 * Where the supply-chain check sits in the deploy, on the scripted engine: after the tag's
 * resolution, before the first pull, under the deploy's abort signal, fail closed. The real checks
 * are in supply-chain.test.ts and the integration tests.
 */
const root = mkdtempSync(join(tmpdir(), 'dreichor-verify-step-'));
after(() => rmSync(root, { recursive: true, force: true }));
// The registry the agent reads what runs from (its manifest's config) when it verifies.
let registry: ScriptedRegistry;
before(async () => {
  registry = await ScriptedRegistry.start();
});
after(() => registry.close());
const NAME = 'dreichor-runtime-dev';
let n = 0;

const PROVENANCE: Provenance = {
  verified_by: 'github-attestation',
  subject_digest: `sha256:${'a'.repeat(64)}`,
  repository: 'https://github.com/ceerkle/dreichor-trading',
  commit: 'c'.repeat(40),
  ref: 'refs/heads/main',
  workflow: 'https://github.com/ceerkle/dreichor-trading/.github/workflows/build.yml@refs/heads/main',
  run_url: 'https://github.com/ceerkle/dreichor-trading/actions/runs/1/attempts/1',
  predicate_type: 'https://slsa.dev/provenance/v1',
  key_fingerprint: null,
};

async function setup(verifier: ImageVerifier | null, mode: Config['imageVerification']['mode'] = 'github-attestation') {
  n += 1;
  const dir = join(root, `d${n}`);
  const loaded = unitConfig(dir, {
    IMAGE_REPOSITORY: registry.repository,
    STOP_TIMEOUT_SECONDS: '1',
    START_CHECK_SECONDS: '1',
    DEPLOY_TIMEOUT_SECONDS: '20',
  });
  // The policy's contents do not matter here: the verifier stands in for it.
  const config = { ...loaded, imageVerification: { mode } as Config['imageVerification'] };
  const engine = new FakeEngine();
  const pushed = registry.image(`v2-${n}`, 'v2');
  engine.tagDigest = pushed.digest;
  engine.imageIds.set(pushed.digest, pushed.config);
  const { deployer, store } = await unitDeployer(config, engine, { verifier });
  return { engine, store, deployer, old: engine.seed(NAME) };
}

const image = () => parseImageReference(`${registry.repository}:v2`, { repository: registry.repository, environment: 'dev' });
const context = (callerGone = new AbortController().signal): DeployContext => ({
  requestId: randomUUID(),
  clientId: 'client.access',
  endpoint: '/v1/deploy',
  callerGone,
  receivedAt: Date.now(),
});
const steps = (engine: FakeEngine) =>
  engine.calls.filter((c) => /^(resolveTag|verify|pull|create|stop) /.test(c)).map((c) => c.split(' ')[0]);

describe('the supply-chain check in the deploy', () => {
  it('runs after the tag is resolved and before the first pull; its provenance reaches the answer and the label', async () => {
    let engineRef: FakeEngine | null = null;
    const s = await setup({
      verify: (request) => {
        engineRef?.calls.push(`verify ${request.tagDigest}`);
        return Promise.resolve(PROVENANCE);
      },
    });
    engineRef = s.engine;
    const result = await s.deployer.deploy(image(), context());
    assert.deepEqual(result.provenance, PROVENANCE);
    assert.deepEqual(steps(s.engine).slice(0, 3), ['resolveTag', 'verify', 'pull']);
    const created = [...s.engine.containers.values()].find((c) => c.id !== s.old.id);
    assert.deepEqual(JSON.parse(created?.labels['io.dreichor.provenance'] ?? 'null'), PROVENANCE);
  });

  it('a refusal pulls nothing, records nothing and leaves the old container untouched', async () => {
    const s = await setup({
      verify: () => Promise.reject(new AgentError(422, 'image not verified: test', { code: 'image_unverified' })),
    });
    const error = await s.deployer.deploy(image(), context()).then(
      () => assert.fail('deployed'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof AgentError && error.status === 422);
    assert.deepEqual(steps(s.engine), ['resolveTag']);
    assert.deepEqual(s.engine.touched(s.old.id), []);
    assert.equal(s.store.recordedDigest('v2'), null);
  });

  it('is abandoned with the deploy when the caller goes away', async () => {
    const gone = new AbortController();
    const s = await setup({
      verify: (_request, signal) =>
        new Promise((_resolve, reject) => {
          signal.addEventListener('abort', () => reject(signal.reason), { once: true });
          setTimeout(() => gone.abort(), 50);
        }),
    });
    const error = await s.deployer.deploy(image(), context(gone.signal)).then(
      () => assert.fail('deployed'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof AgentError && error.code === 'caller_gone', String(error));
    assert.deepEqual(steps(s.engine), ['resolveTag']);
  });

  it('fails closed: verification configured but no verifier wired is refused, nothing pulled', async () => {
    const s = await setup(null, 'cosign-key');
    const error = await s.deployer.deploy(image(), context()).then(
      () => assert.fail('deployed'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof AgentError && error.status === 500);
    assert.deepEqual(steps(s.engine), ['resolveTag']);
  });

  it('with IMAGE_VERIFICATION=none there is no check and no provenance', async () => {
    const s = await setup(null, 'none');
    const result = await s.deployer.deploy(image(), context());
    assert.equal(result.provenance, undefined);
  });
});
