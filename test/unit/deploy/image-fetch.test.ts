import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { checkCreatedImage, type FetchDeps, fetchImage } from '../../../src/deploy/image-fetch.js';
import type { PullResult } from '../../../src/engine/engine-port.js';
import { parseImageReference } from '../../../src/policy/image.js';
import { StateStore } from '../../../src/state/state.js';
import type { Provenance } from '../../../src/supply-chain/provenance.js';
import type { ImageVerifier, VerifyRequest } from '../../../src/supply-chain/verifier.js';
import { FakeEngine } from '../../support/fake-engine.js';
import { keyProvenance, refusal, registryFixture } from '../../support/registry-fixture.js';

/**
 * Step 1 of a deploy on its own (image-fetch.ts): the tag held to its record, the pin held to the
 * tag, the verifier asked about what will run, and exactly that digest pulled. Security: each slip
 * here deploys an image other than the one asked for and verified.
 */
const files = registryFixture('dreichor-image-fetch-');
const { root } = files;
let n = 0;

const digestOf = (c: string) => `sha256:${c.repeat(64)}`;
const NONE: FetchDeps['config'] = { registryAuth: null, imageVerification: { mode: 'none' } };
const image = (ref: string) =>
  parseImageReference(`${files.registry.repository}:${ref}`, { repository: files.registry.repository, environment: 'dev' });
const signal = () => new AbortController().signal;

/** An engine that reports another digest for a pull (a registry or engine that swapped the image). */
class SwappingEngine extends FakeEngine {
  reported: string | null = digestOf('e');
  override async pull(repository: string, digest: string, auth: unknown, s: AbortSignal): Promise<PullResult> {
    await super.pull(repository, digest, auth, s);
    return { digest: this.reported };
  }
}

/** A verifier that records what it was asked and vouches for it. */
class RecordingVerifier implements ImageVerifier {
  readonly asked: VerifyRequest[] = [];
  async verify(request: VerifyRequest): Promise<Provenance> {
    this.asked.push(request);
    return keyProvenance(request.runDigest, 'sha256:key');
  }
}

async function store(): Promise<StateStore> {
  n += 1;
  return StateStore.open(join(root, `s${n}`));
}
const pulls = (engine: FakeEngine) => engine.calls.filter((c) => c.startsWith('pull '));

describe('fetchImage', () => {
  it('a single manifest without verification: the registry is not read, the tag digest pulled, both ids kept', async () => {
    const engine = new FakeEngine();
    engine.imageIds.set(engine.tagDigest, digestOf('f'));
    const fetched = await fetchImage({ config: NONE, engine, store: await store() }, image('v1'), signal());
    assert.equal(fetched.digest, engine.tagDigest);
    assert.equal(fetched.tagDigest, engine.tagDigest);
    assert.equal(fetched.provenance, null);
    assert.deepEqual(fetched.imageIds, [digestOf('f'), engine.tagDigest]);
    assert.deepEqual(pulls(engine), [`pull ${engine.tagDigest}`]);
    assert.ok(
      engine.calls.includes(`inspectImage ${files.registry.repository}@${engine.tagDigest}`),
      'the image inspected by that digest',
    );
    assert.ok(!engine.calls.includes('platform'));
    assert.deepEqual(files.registry.requests, []);
  });

  it('a tag that moved since its first deploy: 409 tag_moved, nothing pulled; the same digest passes', async () => {
    const engine = new FakeEngine();
    const s = await store();
    await s.recordTag('v1', digestOf('b'));
    const error = await refusal(fetchImage({ config: NONE, engine, store: s }, image('v1'), signal()));
    assert.equal(error.status, 409);
    assert.equal(error.code, 'tag_moved');
    assert.match(
      error.reason,
      new RegExp(`tag v1 was first deployed here as ${digestOf('b')} but now resolves to ${engine.tagDigest}`),
    );
    assert.deepEqual(pulls(engine), []);
    await s.recordTag('v2', engine.tagDigest);
    await fetchImage({ config: NONE, engine, store: s }, image('v2'), signal());
  });

  it('a pin that is not the tag (no index): 409 pin_mismatch before anything is read or pulled; the right pin passes', async () => {
    const engine = new FakeEngine();
    const deps = { config: NONE, engine, store: await store() };
    const error = await refusal(fetchImage(deps, image(`v1@${digestOf('b')}`), signal()));
    assert.equal(error.status, 409);
    assert.equal(error.code, 'pin_mismatch');
    assert.match(
      error.reason,
      new RegExp(`pinned digest ${digestOf('b')} is not what tag v1 is: the tag resolves to ${engine.tagDigest}`),
    );
    assert.deepEqual(pulls(engine), []);
    const pinned = await fetchImage(deps, image(`v1@${engine.tagDigest}`), signal());
    assert.equal(pinned.digest, engine.tagDigest);
  });

  it('the engine reports another digest than the one pulled: 502; one that reports none is taken at its word', async () => {
    const engine = new SwappingEngine();
    const deps = { config: NONE, engine, store: await store() };
    const error = await refusal(fetchImage(deps, image('v1'), signal()));
    assert.equal(error.status, 502);
    assert.match(error.reason, new RegExp(`the engine pulled ${digestOf('e')} when asked for .*@${engine.tagDigest}`));
    engine.reported = engine.tagDigest;
    await fetchImage(deps, image('v1'), signal());
    engine.reported = null;
    await fetchImage(deps, image('v1'), signal());
  });

  it('the pulled image missing from the engine store: 502', async () => {
    const engine = new FakeEngine();
    engine.imageStore = new Set();
    engine.pull = async () => ({ digest: null }); // pulled, but nothing landed in the store
    const error = await refusal(fetchImage({ config: NONE, engine, store: await store() }, image('v1'), signal()));
    assert.equal(error.status, 502);
    assert.match(error.reason, /is not in the engine's image store/);
  });

  it('verification configured but no verifier wired: a 500, fail closed, nothing pulled', async () => {
    const engine = new FakeEngine();
    const { publicKey } = generateKeyPairSync('ed25519');
    const config: FetchDeps['config'] = {
      ...NONE,
      imageVerification: { mode: 'cosign-key', publicKey, fingerprint: 'sha256:key' },
    };
    for (const verifier of [undefined, null]) {
      const error = await refusal(fetchImage({ config, engine, store: await store(), verifier }, image('v1'), signal()));
      assert.equal(error.status, 500);
      assert.match(error.reason, /no verifier is wired/);
    }
    assert.deepEqual(pulls(engine), []);
  });

  it('with a verifier: asked about the tag and what runs, its provenance kept, the config read from the registry', async () => {
    const pushed = files.registry.image('verified', 'v7');
    const engine = new FakeEngine();
    engine.tagDigest = pushed.digest;
    const verifier = new RecordingVerifier();
    const deps = { config: NONE, engine, store: await store(), verifier };
    const fetched = await fetchImage(deps, image('v7'), signal());
    assert.deepEqual(verifier.asked, [
      { repository: files.registry.repository, tagDigest: pushed.digest, runDigest: pushed.digest, credentials: null },
    ]);
    assert.equal(fetched.provenance?.subject_digest, pushed.digest);
    // The config digest from the registry, not the engine's word (its default image id here).
    assert.deepEqual(fetched.imageIds, [pushed.config, pushed.digest]);
    assert.ok(!engine.calls.includes('platform'), 'a single manifest needs no platform');
  });
  it('with a verifier, a pin that is not the tag (no index): refused before the registry is read or the verifier asked', async () => {
    const pushed = files.registry.image('pinned', 'v8');
    const engine = new FakeEngine();
    engine.tagDigest = pushed.digest;
    const verifier = new RecordingVerifier();
    const read = files.registry.requests.length;
    const deps = { config: NONE, engine, store: await store(), verifier };
    const error = await refusal(fetchImage(deps, image(`v8@${digestOf('b')}`), signal()));
    assert.equal(error.code, 'pin_mismatch');
    assert.equal(files.registry.requests.length, read, files.registry.requests.slice(read).join(', '));
    assert.deepEqual(verifier.asked, []);
  });
});

describe('checkCreatedImage', () => {
  const fetched = { digest: digestOf('a'), imageIds: [digestOf('c'), digestOf('a')] };

  it('passes a container of the config or of the manifest; refuses another image, or a container gone', async () => {
    const engine = new FakeEngine();
    const ok = engine.seed('by-config');
    await checkCreatedImage(engine, ok.id, fetched, signal());
    const byManifest = engine.seed('by-manifest');
    byManifest.imageId = digestOf('a');
    await checkCreatedImage(engine, byManifest.id, fetched, signal());
    const other = engine.seed('other');
    other.imageId = digestOf('d');
    const error = await refusal(checkCreatedImage(engine, other.id, fetched, signal()));
    assert.equal(error.status, 502);
    assert.match(
      error.reason,
      new RegExp(`from image ${digestOf('d')}, not from the manifest ${digestOf('a')} \\(config ${digestOf('c')}\\)`),
    );
    const gone = await refusal(checkCreatedImage(engine, 'no-such-id', fetched, signal()));
    assert.match(gone.reason, /from image \(gone\)/);
  });
});
