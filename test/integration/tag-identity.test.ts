import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ARCHITECTURE, MEDIA, RegistryWriter } from '../support/cosign.js';
import { engine, image, startTestAgent, type TestAgent } from '../support/harness.js';
import { docker, publishImage, REPOSITORY_PATH, sandboxInfo } from '../support/sandbox.js';

/**
 * A tag is what its registry says it is. A pinned `<tag>@sha256:` is deployed only when the tag
 * resolves to that digest, or the digest is the engine platform's manifest in the tag's image
 * index; otherwise 409 naming both, nothing pulled into use, nothing recorded, the runtime untouched.
 * And every valid tag name, "constructor" and "__proto__" among them, is as immutable as "v1".
 */
const recordedTags = (t: TestAgent): string[] =>
  Object.keys(
    (JSON.parse(readFileSync(join(t.config.stateDir, 'state.json'), 'utf8')) as { tags: Record<string, unknown> }).tags,
  );

/** Publishes an image index (a manifest list) under `tag`: `own` for this platform, `foreign` claimed as arm64. */
async function publishIndex(tag: string, own: string, foreign: string): Promise<string> {
  const info = sandboxInfo();
  const ref = (t: string) => `${info.registry}/${REPOSITORY_PATH}:${t}`;
  await docker(info, 'manifest', 'create', '--insecure', ref(tag), ref(own), ref(foreign));
  await docker(info, 'manifest', 'annotate', ref(tag), ref(own), '--os', 'linux', '--arch', 'amd64');
  await docker(info, 'manifest', 'annotate', ref(tag), ref(foreign), '--os', 'linux', '--arch', 'arm64');
  const pushed = await docker(info, 'manifest', 'push', '--purge', '--insecure', ref(tag));
  const digest = /sha256:[0-9a-f]{64}/.exec(pushed)?.[0];
  if (digest === undefined) throw new Error(`no digest in: ${pushed}`);
  return digest;
}

describe('tag identity', () => {
  let t: TestAgent;
  before(async () => {
    t = await startTestAgent();
  });
  after(async () => {
    await t.cleanup();
  });

  it('a pin that is not what its tag is: 409 naming both digests, nothing recorded, the runtime untouched', async () => {
    const tagged = await publishImage(sandboxInfo(), 'pin-a');
    const other = await publishImage(sandboxInfo(), 'pin-b');
    assert.equal((await t.api.deploy(image('v1'))).status, 200);
    const old = await engine.inspect(t.config.containerName);

    const res = await t.api.deploy(`${image('pin-a')}@${other}`);
    assert.equal(res.status, 409, res.text);
    assert.ok(
      String(res.body['reason']).includes(other) && String(res.body['reason']).includes(tagged),
      String(res.body['reason']),
    );
    const now = await engine.inspect(t.config.containerName);
    assert.equal(now?.Id, old?.Id);
    assert.equal(now?.State.StartedAt, old?.State.StartedAt);
    assert.equal((await engine.named(t.config.containerName)).length, 1);
    assert.equal(
      await engine.imageId(`${sandboxInfo().registry}/${REPOSITORY_PATH}@${other}`),
      null,
      'the wrong pin was not even pulled',
    );
    assert.ok(!recordedTags(t).includes('pin-a'), 'nothing recorded for the tag');

    // The honest deploys of the tag still go through, pinned or not.
    const pinned = await t.api.deploy(`${image('pin-a')}@${tagged}`);
    assert.equal(pinned.status, 200, pinned.text);
    assert.equal(pinned.body['image_digest'], tagged);
    assert.equal((await t.api.deploy(image('pin-a'))).status, 200);
  });

  it('a pin on the index\'s attestation manifest ("unknown/unknown", no image): 409 pin mismatch, not a 502 from the pull', async () => {
    // What docker/build-push-action pushes with provenance on: the image for this platform, and an
    // attestation manifest (an in-toto layer, platform unknown/unknown) referring to it.
    const writer = new RegistryWriter(sandboxInfo().registry, REPOSITORY_PATH);
    const own = await writer.platformManifest(await publishImage(sandboxInfo(), 'att-own'), await engine.platform());
    const statement = Buffer.from(JSON.stringify({ _type: 'https://in-toto.io/Statement/v0.1', subject: [] }));
    const layer = await writer.blob(statement);
    const config = Buffer.from(
      JSON.stringify({ architecture: 'unknown', os: 'unknown', config: {}, rootfs: { type: 'layers', diff_ids: [layer] } }),
    );
    const attestation = {
      schemaVersion: 2,
      mediaType: MEDIA.oci,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: await writer.blob(config), size: config.length },
      layers: [
        {
          mediaType: 'application/vnd.in-toto+json',
          digest: layer,
          size: statement.length,
          annotations: { 'in-toto.io/predicate-type': 'https://slsa.dev/provenance/v0.2' },
        },
      ],
    };
    const attestationDigest = await writer.manifest(attestation.config.digest.slice(7, 19), attestation, MEDIA.oci);
    const index = {
      schemaVersion: 2,
      mediaType: MEDIA.ociIndex,
      manifests: [
        { ...own, platform: { os: 'linux', architecture: ARCHITECTURE } },
        {
          mediaType: MEDIA.oci,
          digest: attestationDigest,
          size: Buffer.byteLength(JSON.stringify(attestation)),
          platform: { os: 'unknown', architecture: 'unknown' },
          annotations: { 'vnd.docker.reference.digest': own.digest, 'vnd.docker.reference.type': 'attestation-manifest' },
        },
      ],
    };
    const indexDigest = await writer.manifest('att-index', index, MEDIA.ociIndex);
    assert.equal((await t.api.deploy(image('v1'))).status, 200);
    const old = await engine.inspect(t.config.containerName);

    const res = await t.api.deploy(`${image('att-index')}@${attestationDigest}`);
    process.stdout.write(`# observed: pin on an attestation manifest: ${res.status} ${res.text.slice(0, 300)}\n`);
    assert.equal(res.status, 409, res.text);
    assert.match(String(res.body['reason']), new RegExp(`pinned digest ${attestationDigest} is not what tag att-index is`));
    assert.ok(String(res.body['reason']).includes(indexDigest));
    const now = await engine.inspect(t.config.containerName);
    assert.equal(now?.Id, old?.Id);
    assert.equal(now?.State.StartedAt, old?.State.StartedAt);
    assert.ok(!recordedTags(t).includes('att-index'), 'nothing recorded for the tag');
  });

  it("an image index: the index digest and this platform's manifest are accepted, another platform's is refused", async () => {
    const own = await publishImage(sandboxInfo(), 'idx-own');
    const foreign = await publishImage(sandboxInfo(), 'idx-foreign');
    const index = await publishIndex('multi', 'idx-own', 'idx-foreign');

    const byForeign = await t.api.deploy(`${image('multi')}@${foreign}`);
    assert.equal(byForeign.status, 409, byForeign.text);
    assert.ok(
      String(byForeign.body['reason']).includes(index) && String(byForeign.body['reason']).includes(foreign),
      String(byForeign.body['reason']),
    );
    assert.ok(!recordedTags(t).includes('multi'));

    const byOwn = await t.api.deploy(`${image('multi')}@${own}`);
    assert.equal(byOwn.status, 200, byOwn.text);
    assert.equal(byOwn.body['image_digest'], own);
    const running = await engine.inspect(t.config.containerName);
    assert.equal(running?.Config.Image, `${sandboxInfo().registry}/${REPOSITORY_PATH}@${own}`);
    assert.equal(running?.Config.Labels['io.dreichor.image-digest'], own);

    // The tag is recorded as what it is (the index), so its honest deploys are not refused later.
    assert.equal((await t.api.deploy(`${image('multi')}@${index}`)).status, 200);
    const plain = await t.api.deploy(image('multi'));
    assert.equal(plain.status, 200, plain.text);
    // What runs is this platform's manifest, never the index; the tag's record stays the index.
    assert.equal(plain.body['image_digest'], own);
    assert.equal(plain.body['tag_digest'], index);
  });

  for (const tag of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
    it(`tag "${tag}" is immutable like any other`, async () => {
      const first = await publishImage(sandboxInfo(), tag);
      assert.equal((await t.api.deploy(image(tag))).status, 200);
      const running = await engine.inspect(t.config.containerName);
      const second = await publishImage(sandboxInfo(), tag);
      const res = await t.api.deploy(image(tag));
      assert.equal(res.status, 409, res.text);
      assert.ok(String(res.body['reason']).includes(first) && String(res.body['reason']).includes(second));
      assert.equal((await engine.inspect(t.config.containerName))?.Id, running?.Id, 'the runtime was not touched');
      // And after a restart, from the state file alone.
      await t.standIn({}, async (again) => {
        assert.equal((await again.api.deploy(image(tag))).status, 409);
      });
    });
  }
});
