import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { attachBundle, cosignBundle, cosignKey, pushLegacySignature, RegistryWriter } from '../support/cosign.js';
import { engine, image, repository, startTestAgent, type TestAgent } from '../support/harness.js';
import { deployOnlyVerified, pushHonestIndex, pushHostileIndexes } from '../support/hostile-index.js';
import { publishImage, REPOSITORY_PATH, sandboxInfo } from '../support/sandbox.js';
import { Verifiers, verifiersBin } from '../support/verifiers.js';

/**
 * IMAGE_VERIFICATION=cosign-key held against cosign 3.1.1 itself (Debian sid's, run offline): images
 * signed by real `cosign sign --key` (its default, a v0.3 bundle stored as an OCI 1.1 referrer, and
 * the legacy `.sig` of `--new-bundle-format=false`) and `cosign attest` deploy on the real engine and
 * are refused under another key; for every fixture, real or crafted with node:crypto, the agent's
 * verdict equals `cosign verify --key … --insecure-ignore-tlog`, except the cases named in DIFFERENT
 * (docs/SUPPLY-CHAIN.md says why). sigstore-go-verification is no oracle here: it verifies a
 * key-signed bundle only with a timestamp, and cosign's have none.
 */
const found = verifiersBin();
const skip = 'skip' in found ? found.skip : false;
if (skip !== false) console.log(`# SKIPPED the cosign-key oracle tests: ${skip}`);

const dir = mkdtempSync(join(tmpdir(), 'dreichor-oracle-key-'));
const V01 = 'application/vnd.dev.sigstore.bundle+json;version=0.1';
const V02 = 'application/vnd.dev.sigstore.bundle+json;version=0.2';
const V03 = 'application/vnd.dev.sigstore.bundle.v0.3+json';

/**
 * Where the agent deliberately differs from cosign, by case name, and why (docs/SUPPLY-CHAIN.md):
 * the test checks that cosign's verdict is the other one, so each entry stays true.
 */
const DIFFERENT: Readonly<Record<string, string>> = {
  'a v0.2 bundle (found by its artifact type)':
    'cosign 3 looks for referrers of the v0.3 type only; the agent also finds v0.2 ones, as `gh attestation verify` does',
};

let n = 0;
async function publish(): Promise<{ tag: string; digest: string; ref: string }> {
  n += 1;
  const tag = `oracle-key-${process.pid}-${n}`;
  const digest = await publishImage(sandboxInfo(), tag);
  return { tag, digest, ref: `${sandboxInfo().registry}/${REPOSITORY_PATH}@${digest}` };
}

describe('oracle: cosign-key, the agent against cosign 3 itself', { skip }, () => {
  let v: Verifiers;
  let keys: { key: string; pub: string };
  let strangerKeys: { key: string; pub: string };
  let t: TestAgent;
  before(async () => {
    if ('skip' in found) return;
    v = await Verifiers.start(found.bin, join(dir, 'cosign'));
    keys = await v.keyPair('ours');
    strangerKeys = await v.keyPair('stranger');
    t = await startTestAgent({ IMAGE_VERIFICATION: 'cosign-key', COSIGN_PUBLIC_KEY_FILE: keys.pub });
  });
  after(() => t?.cleanup());

  const registryFlags = ['--allow-http-registry', '--allow-insecure-registry'];
  const cosignVerify = (ref: string, pub: string) =>
    v.cosign('verify', '--key', pub, '--trusted-root', v.emptyRoot, '--insecure-ignore-tlog', ...registryFlags, ref);
  /** `cosign sign --key`: cosign 3's default, or the legacy `.sig` (which takes no signing config). */
  const sign = (ref: string, key: string, legacy = false) => {
    const form = legacy
      ? ['--new-bundle-format=false', '--use-signing-config=false', '--tlog-upload=false']
      : ['--signing-config', v.signingConfig];
    return v.cosign('sign', '--key', key, '--trusted-root', v.emptyRoot, ...form, ...registryFlags, ref);
  };

  /** The agent's verdict on a real deploy (200 or 422) and cosign's, which must agree. */
  async function bothJudge(name: string, p: { tag: string; ref: string }, pub: string, agent = t) {
    const before = await engine.inspect(agent.config.containerName);
    const r = await agent.api.deploy(image(p.tag));
    assert.ok([200, 422].includes(r.status), `${name}: ${r.text}`);
    if (r.status === 422) assert.equal((await engine.inspect(agent.config.containerName))?.Id, before?.Id, `${name}: untouched`);
    const cosign = await cosignVerify(p.ref, pub);
    const why = DIFFERENT[name];
    if (why === undefined) {
      assert.equal(r.status === 200, cosign.ok, `${name}: the agent says ${r.status} (${r.text}), cosign says ${cosign.output}`);
    } else {
      assert.notEqual(
        r.status === 200,
        cosign.ok,
        `${name}: named as a difference from cosign (${why}); cosign: ${cosign.output}`,
      );
    }
    return r;
  }

  it("deploys an image signed by `cosign sign --key` (cosign 3's default), stored as cosign stores it", async () => {
    const p = await publish();
    const signed = await sign(p.ref, keys.key);
    assert.ok(signed.ok, signed.output);
    // What cosign 3.1.1 stores on a registry without the referrers API: the sha256- tag's index
    // lists the referrer under the empty config's type; the manifest names the v0.3 bundle type;
    // the bundle is a DSSE envelope of cosign's own in-toto statement.
    const host = sandboxInfo().registry;
    const get = async (path: string, accept: string) =>
      (await fetch(`http://${host}/v2/${REPOSITORY_PATH}/${path}`, { headers: { Accept: accept } })).json() as Promise<
        Record<string, unknown>
      >;
    const index = await get(`manifests/${p.digest.replace(':', '-')}`, 'application/vnd.oci.image.index.v1+json');
    const entry = (index['manifests'] as Record<string, string>[])[0];
    assert.equal(entry?.['artifactType'], 'application/vnd.oci.empty.v1+json');
    const manifest = await get(`manifests/${entry?.['digest']}`, 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(manifest['artifactType'], V03);
    const layer = (manifest['layers'] as Record<string, string>[])[0];
    const bundle = await get(`blobs/${layer?.['digest']}`, '*/*');
    const envelope = bundle['dsseEnvelope'] as { payload: string };
    const statement = JSON.parse(Buffer.from(envelope.payload, 'base64').toString()) as Record<string, unknown>;
    assert.equal(statement['predicateType'], 'https://sigstore.dev/cosign/sign/v1');

    const r = await bothJudge('cosign sign (default)', p, keys.pub);
    assert.equal(r.status, 200, r.text);
    const provenance = r.body['provenance'] as Record<string, unknown>;
    assert.equal(provenance['verified_by'], 'cosign-key');
    assert.equal(provenance['predicate_type'], 'https://sigstore.dev/cosign/sign/v1');
    const labels = (await engine.inspect(t.config.containerName))?.Config.Labels ?? {};
    assert.equal(JSON.parse(labels['io.dreichor.provenance'] ?? '{}')['key_fingerprint'], provenance['key_fingerprint']);
  });

  it('deploys an image signed by `cosign sign --key --new-bundle-format=false` (the legacy .sig tag)', async () => {
    const p = await publish();
    const signed = await sign(p.ref, keys.key, true);
    assert.ok(signed.ok, signed.output);
    const r = await bothJudge('cosign sign --new-bundle-format=false', p, keys.pub);
    assert.equal(r.status, 200, r.text);
    assert.equal((r.body['provenance'] as Record<string, unknown>)['predicate_type'], null);
  });

  it('deploys an image attested by `cosign attest --key` (cosign verify accepts it as a signature too)', async () => {
    const p = await publish();
    const predicate = join(dir, 'predicate.json');
    writeFileSync(predicate, JSON.stringify({ buildDefinition: { buildType: 'https://example.invalid/build' } }));
    const args = ['attest', '--key', keys.key, '--signing-config', v.signingConfig, '--trusted-root', v.emptyRoot];
    const attested = await v.cosign(...args, '--predicate', predicate, '--type', 'slsaprovenance1', ...registryFlags, p.ref);
    assert.ok(attested.ok, attested.output);
    const r = await bothJudge('cosign attest', p, keys.pub);
    assert.equal(r.status, 200, r.text);
    assert.equal((r.body['provenance'] as Record<string, unknown>)['predicate_type'], 'https://slsa.dev/provenance/v1');
  });

  it('refuses images signed by real cosign with another key, in both forms, and unsigned ones, as cosign does', async () => {
    for (const legacy of [false, true]) {
      const p = await publish();
      const signed = await sign(p.ref, strangerKeys.key, legacy);
      assert.ok(signed.ok, signed.output);
      const r = await bothJudge(`cosign sign${legacy ? ' --new-bundle-format=false' : ''} with another key`, p, keys.pub);
      assert.equal(r.status, 422, r.text);
      assert.match(String(r.body['reason']), /not made with COSIGN_PUBLIC_KEY_FILE/);
      assert.equal(await engine.imageId(`${sandboxInfo().registry}/${REPOSITORY_PATH}@${p.digest}`), null, 'nothing pulled');
    }
    const unsigned = await publish();
    assert.equal((await bothJudge('unsigned', unsigned, keys.pub)).status, 422);
  });

  it('an index that hides an unsigned image beside one signed by `cosign sign --key`: exactly the signed manifest runs, or 4xx untouched; cosign agrees which one is signed', async () => {
    const platform = await engine.platform();
    const writer = new RegistryWriter(sandboxInfo().registry, REPOSITORY_PATH);
    const repo = repository();
    // v1's manifest for the engine's platform, signed by cosign 3 (its default bundle); an unsigned one.
    const signed = await writer.platformManifest((await publish()).digest, platform);
    const unsigned = await writer.platformManifest((await publish()).digest, platform);
    const made = await sign(`${repo}@${signed.digest}`, keys.key);
    assert.ok(made.ok, made.output);
    // The oracle on which manifest is signed: the one, not the other.
    const signedVerdict = await cosignVerify(`${repo}@${signed.digest}`, keys.pub);
    assert.ok(signedVerdict.ok, signedVerdict.output);
    assert.equal((await cosignVerify(`${repo}@${unsigned.digest}`, keys.pub)).ok, false, 'cosign: the other is unsigned');

    // An honest index over the signed manifest: it runs, by its own digest; the tag keeps the index.
    const honest = await pushHonestIndex(writer, signed, unsigned, platform);
    const r = await t.api.deploy(`${repo}:${honest.tag}`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body['image_digest'], signed.digest);
    assert.equal(r.body['tag_digest'], honest.digest);
    const provenance = r.body['provenance'] as Record<string, unknown>;
    assert.equal(provenance['subject_digest'], signed.digest);
    assert.equal(provenance['verified_by'], 'cosign-key');
    const running = await engine.inspect(t.config.containerName);
    assert.equal(running?.Config.Image, `${repo}@${signed.digest}`, 'created from the manifest, never the index');
    assert.equal(running?.Image, await engine.imageId(`${repo}@${signed.digest}`));
    const line = t.auditLines().find((l) => l['request_id'] === r.headers.get('x-request-id') && l['outcome'] === 'deployed');
    assert.equal(line?.['tag_digest'], honest.digest, JSON.stringify(line));
    assert.equal(line?.['image_digest'], signed.digest, JSON.stringify(line));
    const subject = await cosignVerify(`${repo}@${String(provenance['subject_digest'])}`, keys.pub);
    assert.ok(subject.ok, `cosign accepts the digest the provenance names: ${subject.output}`);

    // The two hostile shapes: refused (or the signed manifest runs), the runtime untouched.
    for (const index of await pushHostileIndexes(writer, signed, unsigned, platform, /no signature found for sha256:/)) {
      await deployOnlyVerified(t, repo, index, signed.digest);
      const onIndex = await cosignVerify(`${repo}@${index.digest}`, keys.pub);
      assert.equal(onIndex.ok, false, `cosign: the index itself (${index.name}) carries no signature`);
    }
  });

  it('agrees with cosign on every crafted signature (node:crypto), or names why it differs', async () => {
    const key = cosignKey();
    const pub = join(dir, 'node.pub');
    writeFileSync(pub, key.publicKeyPem);
    const crafted = await startTestAgent({ IMAGE_VERIFICATION: 'cosign-key', COSIGN_PUBLIC_KEY_FILE: pub });
    const host = sandboxInfo().registry;
    const writer = new RegistryWriter(host, REPOSITORY_PATH);
    try {
      const other = await publish();
      const cases: [string, (digest: string) => Promise<void>, number][] = [
        ['a legacy .sig', (d) => pushLegacySignature(writer, key.privateKey, d), 200],
        ['a legacy .sig of another digest', (d) => pushLegacySignature(writer, key.privateKey, d, other.digest), 422],
        ['a v0.3 bundle', (d) => attachBundle(host, REPOSITORY_PATH, d, cosignBundle(key.privateKey, d)), 200],
        [
          'a v0.3 bundle of another digest',
          (d) => attachBundle(host, REPOSITORY_PATH, d, cosignBundle(key.privateKey, other.digest)),
          422,
        ],
        [
          'a v0.2 bundle (found by its artifact type)',
          (d) => attachBundle(host, REPOSITORY_PATH, d, cosignBundle(key.privateKey, d, undefined, V02), null, V02),
          200,
        ],
        [
          'a v0.1 bundle stored as a v0.3 artifact',
          (d) => attachBundle(host, REPOSITORY_PATH, d, cosignBundle(key.privateKey, d, undefined, V01)),
          422,
        ],
      ];
      for (const [name, signWith, status] of cases) {
        const p = await publish();
        await signWith(p.digest);
        const r = await bothJudge(name, p, pub, crafted);
        assert.equal(r.status, status, `${name}: ${r.text}`);
      }
    } finally {
      await crafted.cleanup();
    }
  });
});
