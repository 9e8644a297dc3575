import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { DeployContext } from '../../../src/deploy/deployer.js';
import { LABEL } from '../../../src/deploy/runtime-spec.js';
import { parseImageReference } from '../../../src/policy/image.js';
import { FakeEngine } from '../../support/fake-engine.js';
import { refusal, registryFixture } from '../../support/registry-fixture.js';
import { ScriptedRegistry } from '../../support/scripted-registry.js';
import { unitConfig, unitDeployer } from '../../support/unit-config.js';

/**
 * An image index is resolved by the agent, never by the engine (IMAGE_VERIFICATION=none here; the
 * verified runs are in the property test and the real-engine tests): the container is created from
 * the manifest for the engine's platform, and only if the engine's image is that manifest's.
 */
const NAME = 'dreichor-runtime-dev';
const files = registryFixture('dreichor-platform-run-');
const { root } = files;
let n = 0;

async function setup() {
  n += 1;
  const config = unitConfig(join(root, `d${n}`), {
    IMAGE_REPOSITORY: files.registry.repository,
    STOP_TIMEOUT_SECONDS: '1',
    START_CHECK_SECONDS: '1',
    DEPLOY_TIMEOUT_SECONDS: '20',
  });
  const engine = new FakeEngine();
  const { deployer, store } = await unitDeployer(config, engine);
  return { engine, deployer, store, old: engine.seed(NAME) };
}

const image = (ref: string) =>
  parseImageReference(`${files.registry.repository}:${ref}`, { repository: files.registry.repository, environment: 'dev' });
const context = (): DeployContext => ({
  requestId: randomUUID(),
  clientId: 'client.access',
  endpoint: '/v1/deploy',
  callerGone: new AbortController().signal,
  receivedAt: Date.now(),
});
const linux = (architecture: string, variant?: string) => ({
  os: 'linux',
  architecture,
  ...(variant === undefined ? {} : { variant }),
});

/** An index of `wanted` (linux/amd64) beside an image for another variant and an attestation manifest. */
function pushIndex(tag: string) {
  const wanted = files.registry.image(`${tag}-amd64`);
  const other = files.registry.image(`${tag}-v9`);
  const index = files.registry.index(
    [
      { ...other, platform: linux('amd64', 'v9') },
      { ...wanted, platform: linux('amd64') },
      { ...other, platform: { os: 'unknown', architecture: 'unknown' } },
    ],
    tag,
  );
  return { wanted, other, index };
}

describe('an image index, resolved by the agent for the engine platform', () => {
  it('creates the container from the manifest for the engine platform, never the index; both digests are kept apart', async () => {
    const s = await setup();
    const { wanted, index } = pushIndex('v2');
    s.engine.tagDigest = index.digest;
    s.engine.tagIsIndex = true;
    s.engine.imageIds.set(wanted.digest, wanted.config);
    const result = await s.deployer.deploy(image('v2'), context());
    assert.equal(result.image_digest, wanted.digest);
    assert.equal(result.tag_digest, index.digest);
    const created = s.engine.containers.get(result.container_id);
    assert.equal(created?.image, `${files.registry.repository}@${wanted.digest}`);
    assert.equal(created?.labels[LABEL.digest], wanted.digest);
    assert.equal(created?.labels[LABEL.tagDigest], index.digest);
    assert.deepEqual(
      s.engine.calls.filter((c) => c.startsWith('pull ')),
      [`pull ${wanted.digest}`],
      'only the manifest is pulled',
    );
    assert.equal(s.store.recordedDigest('v2'), index.digest, "the tag's record keeps what the tag is");
  });

  it('a pin is the tag, or the manifest for the engine platform; an attestation manifest of the index is a 409', async () => {
    const s = await setup();
    const { wanted, other, index } = pushIndex('v3');
    s.engine.tagDigest = index.digest;
    s.engine.tagIsIndex = true;
    s.engine.imageIds.set(wanted.digest, wanted.config);
    const pinned = await s.deployer.deploy(image(`v3@${wanted.digest}`), context());
    assert.equal(pinned.image_digest, wanted.digest);
    const onIndex = await s.deployer.deploy(image(`v3@${index.digest}`), context());
    assert.equal(onIndex.image_digest, wanted.digest);
    const touched = s.engine.touched(onIndex.container_id).length;
    const error = await refusal(s.deployer.deploy(image(`v3@${other.digest}`), context()));
    assert.equal(error.status, 409, error.reason);
    assert.equal(error.code, 'pin_mismatch');
    assert.equal(s.engine.touched(onIndex.container_id).length, touched, 'the runtime untouched');
    assert.ok(!s.engine.calls.includes(`pull ${other.digest}`));
  });

  it('two entries that match the engine platform equally: 422 saying why, nothing pulled, the runtime untouched', async () => {
    const s = await setup();
    const a = files.registry.image('a');
    const b = files.registry.image('b');
    const index = files.registry.index(
      [
        { ...b, platform: linux('x86_64') },
        { ...a, platform: linux('amd64') },
      ],
      'v4',
    );
    s.engine.tagDigest = index.digest;
    s.engine.tagIsIndex = true;
    const error = await refusal(s.deployer.deploy(image('v4'), context()));
    assert.equal(error.status, 422);
    assert.match(error.reason, /2 different images that match the engine's platform linux\/amd64 equally/);
    assert.deepEqual(
      s.engine.calls.filter((c) => c.startsWith('pull') || c.startsWith('create')),
      [],
    );
    assert.deepEqual(s.engine.touched(s.old.id), []);
    assert.equal(s.store.recordedDigest('v4'), null);
  });

  it("a registry the agent cannot read for an index's platform choice: 502 naming it and why it was read, the runtime untouched", async () => {
    // IMAGE_VERIFICATION=none: the registry is read by the agent only because the tag is an index.
    const gone = await ScriptedRegistry.start();
    const { index } = pushIndex('v6');
    await gone.close();
    n += 1;
    const config = unitConfig(join(root, `d${n}`), {
      IMAGE_REPOSITORY: gone.repository,
      STOP_TIMEOUT_SECONDS: '1',
      START_CHECK_SECONDS: '1',
      DEPLOY_TIMEOUT_SECONDS: '20',
    });
    const engine = new FakeEngine();
    const { deployer, store } = await unitDeployer(config, engine);
    const old = engine.seed(NAME);
    engine.tagDigest = index.digest;
    engine.tagIsIndex = true;
    const ref = parseImageReference(`${gone.repository}:v6`, { repository: gone.repository, environment: 'dev' });
    const error = await refusal(deployer.deploy(ref, context()));
    assert.equal(error.status, 502, error.reason);
    assert.match(
      error.reason,
      new RegExp(
        `^the registry could not be read to choose the tag's image for the engine's platform from its image index \\(${gone.host.replaceAll('.', '\\.')}, GET /v2/`,
      ),
    );
    assert.doesNotMatch(error.reason, /verification/, 'IMAGE_VERIFICATION=none: nothing is being verified');
    assert.deepEqual(engine.touched(old.id), []);
    assert.equal(store.recordedDigest('v6'), null);
  });

  it("the engine's image of the created container is not the manifest's config: removed, 502, the runtime untouched", async () => {
    const s = await setup();
    const { wanted, other, index } = pushIndex('v5');
    s.engine.tagDigest = index.digest;
    s.engine.tagIsIndex = true;
    // The engine resolves the manifest's reference to another image (a poisoned store, say).
    s.engine.imageIds.set(wanted.digest, other.config);
    const error = await refusal(s.deployer.deploy(image('v5'), context()));
    assert.equal(error.status, 502, error.reason);
    assert.match(error.reason, /created the new container from image .*, not from .* that was fetched/);
    assert.deepEqual(s.engine.touched(s.old.id), []);
    assert.deepEqual(
      [...s.engine.containers.values()].map((c) => c.id),
      [s.old.id],
      'the staged container was removed',
    );
    assert.equal(s.store.recordedDigest('v5'), null);
  });
});
