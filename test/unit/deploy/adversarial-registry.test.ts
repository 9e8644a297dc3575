import assert from 'node:assert/strict';
import { randomUUID, sign } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { pino } from 'pino';
import type { Config } from '../../../src/config/config.js';
import { Deployer } from '../../../src/deploy/deployer.js';
import { LABEL } from '../../../src/deploy/runtime-spec.js';
import { AgentError } from '../../../src/errors.js';
import { parseImageReference } from '../../../src/policy/image.js';
import { AuditLog } from '../../../src/state/audit.js';
import { DeployJournal } from '../../../src/state/journal.js';
import { StateStore } from '../../../src/state/state.js';
import { createImageVerifier, type ImageVerifier } from '../../../src/supply-chain/verifier.js';
import { cosignBundle, cosignKey, simpleSigningPayload } from '../../support/cosign.js';
import { FakeEngine } from '../../support/fake-engine.js';
import { OCI_MANIFEST, ScriptedRegistry } from '../../support/scripted-registry.js';
import { unitConfig } from '../../support/unit-config.js';

/**
 * An adversarial registry, as a property (IMAGE_VERIFICATION=cosign-key, the real verifier and real
 * signatures; the scripted engine): whoever can push to the repository writes image indexes (variants,
 * aliases, duplicates, nested indexes, attestation manifests, other platforms) and signatures (legacy
 * `.sig` layers and bundles of several versions, through the referrers API or the `sha256-` tag, by the
 * key or another, naming this image or another, under their own subject or another's), and the engine
 * may even report another image for what it created. Whatever is generated:
 *
 *   - safety: 200 only if the container was created from an image manifest (never an index) that is
 *     the tag's own or the one its index lists for the engine's platform, whose own digest (or whose
 *     index's) a signature by the key names; the engine's image is that manifest's config; the
 *     provenance is that digest's; its labels keep the tag's and the running digest apart. Any other
 *     answer leaves the runtime untouched;
 *   - liveness: a legacy signature by the key on the manifest the engine's platform runs (or on the
 *     index), an unambiguous index and an honest engine: 200.
 *
 * DREICHOR_PROPERTY_SEED replays a run (its seed is printed); DREICHOR_PROPERTY_RUNS runs more cases.
 */
const root = mkdtempSync(join(tmpdir(), 'dreichor-adversarial-registry-'));
const NAME = 'dreichor-runtime-dev';
const key = cosignKey();
const stranger = cosignKey();
const keyFile = join(root, 'cosign.pub');
writeFileSync(keyFile, key.publicKeyPem);

const SEED = Number(process.env['DREICHOR_PROPERTY_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
const RUNS = Number(process.env['DREICHOR_PROPERTY_RUNS'] ?? 60);

/** Platforms an entry may claim; for each engine, its rank as containerd's matcher orders them (null: never). */
const PLATFORMS = [
  ['amd64', undefined],
  ['x86_64', undefined],
  ['AMD64', undefined],
  ['amd64', 'v1'],
  ['amd64', 'v2'],
  ['amd64', 'v9'],
  ['386', undefined],
  ['i386', undefined],
  ['arm64', undefined],
  ['aarch64', undefined],
  ['arm64', 'v8'],
  ['arm64', 'v9'],
  ['arm', 'v8'],
  ['arm', 'v7'],
  ['armhf', undefined],
  ['arm', undefined],
  ['s390x', undefined],
  ['unknown', undefined],
] as const;
const ENGINES = {
  amd64: { platform: { os: 'linux', architecture: 'amd64', variant: '' }, ranks: [0, 0, 0, 0, null, null, 1, 1] },
  arm64: {
    platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
    ranks: [null, null, null, null, null, null, null, null, 0, 0, 0, null, 1, 2, 2, 2],
  },
} as const;

const entryArb = fc.record({
  image: fc.nat(3),
  // Biased towards the engines' own platforms and their aliases: that is where the attacks are.
  platform: fc.oneof(
    { arbitrary: fc.nat(3), weight: 5 },
    { arbitrary: fc.constantFrom(6, 7), weight: 1 },
    { arbitrary: fc.constantFrom(8, 9, 10), weight: 2 },
    { arbitrary: fc.nat(PLATFORMS.length - 1), weight: 2 },
  ),
  os: fc.constantFrom('linux', 'linux', 'linux', 'linux', 'linux', 'Linux', 'windows', 'unknown'),
  kind: fc.constantFrom('image', 'image', 'image', 'image', 'image', 'image', 'nested-index', 'attestation', 'no-platform'),
});
const signatureArb = fc.record({
  /** Attached to one of the images, or to the index. */
  on: fc.oneof(fc.nat(3), fc.constant('index' as const)),
  /** Naming the digest it is attached to, another image, or the index. */
  names: fc.oneof(
    { arbitrary: fc.constant('self' as const), weight: 4 },
    { arbitrary: fc.nat(3), weight: 1 },
    { arbitrary: fc.constant('index' as const), weight: 1 },
  ),
  form: fc.constantFrom('legacy', 'bundle'),
  byKey: fc.nat(3).map((n) => n > 0),
  bundleType: fc.constantFrom(
    'application/vnd.dev.sigstore.bundle.v0.3+json',
    'application/vnd.dev.sigstore.bundle+json;version=0.2',
    'application/vnd.dev.sigstore.bundle+json;version=0.1',
  ),
  via: fc.constantFrom('api', 'tag', 'both'),
  listedType: fc.constantFrom('own', 'none', 'empty'),
  subject: fc.constantFrom('own', 'own', 'other', 'none'),
});
const caseArb = fc.record({
  engine: fc.constantFrom('amd64', 'amd64', 'amd64', 'arm64') as fc.Arbitrary<keyof typeof ENGINES>,
  tagIsIndex: fc.boolean(),
  single: fc.nat(3),
  entries: fc.array(entryArb, { minLength: 0, maxLength: 6 }),
  signatures: fc.array(signatureArb, { minLength: 1, maxLength: 5 }),
  /** The issue's shape: a signed image and an unsigned one listed for the engine's platform under two names. */
  hostile: fc.option(fc.boolean(), { freq: 3 }),
  referrersApi: fc.boolean(),
  pin: fc.constantFrom('none', 'none', 'tag', 'chosen', 'other'),
  /** The engine reports another image for the container it created. */
  substitute: fc.nat(9).map((n) => n < 2),
});
type Case = typeof caseArb extends fc.Arbitrary<infer T> ? T : never;

let registry: ScriptedRegistry;
let verifier: ImageVerifier | null;
let config: Config;
let cases = 0;
let deployed = 0;

before(async () => {
  registry = await ScriptedRegistry.start();
  config = unitConfig(join(root, 'template'), {
    IMAGE_REPOSITORY: registry.repository,
    IMAGE_VERIFICATION: 'cosign-key',
    COSIGN_PUBLIC_KEY_FILE: keyFile,
    STOP_TIMEOUT_SECONDS: '1',
    START_CHECK_SECONDS: '1',
    DEPLOY_TIMEOUT_SECONDS: '20',
  });
  verifier = createImageVerifier(config.imageVerification);
});
after(async () => {
  await registry.close();
  rmSync(root, { recursive: true, force: true });
});

/** The repository as the registry holds it for one case, and what a correct agent must conclude. */
function publish(c: Case) {
  registry.reset();
  registry.referrersApi = c.referrersApi;
  const tag = `t${cases}`;
  const images = [0, 1, 2, 3].map((i) => registry.image(`${tag}-${i}`));
  const at = (i: number) => images[i % images.length] ?? assert.fail('no image');
  let tagDigest = c.tagIsIndex ? '' : at(c.single).digest;
  let chosen: string | null = c.tagIsIndex ? null : tagDigest;
  if (c.tagIsIndex) {
    const nested = registry.index([{ ...at(0), platform: { os: 'linux', architecture: 'amd64' } }]);
    const ranks: (number | null)[] = [...ENGINES[c.engine].ranks];
    const entries = [...c.entries];
    if (c.hostile !== null) {
      const [own, alias] = c.engine === 'amd64' ? [0, 1] : [8, 9];
      const pair = [
        { image: 0, platform: own, os: 'linux', kind: 'image' },
        { image: 1, platform: alias, os: 'linux', kind: 'image' },
      ] as const;
      entries.unshift(...(c.hostile ? pair : [...pair].reverse()));
    }
    const manifests = entries.map((e) => {
      const [architecture, variant] = PLATFORMS[e.platform] ?? PLATFORMS[0];
      const platform = { os: e.os, architecture, ...(variant === undefined ? {} : { variant }) };
      if (e.kind === 'nested-index') return { ...nested, platform };
      if (e.kind === 'no-platform') return at(e.image);
      if (e.kind === 'attestation') {
        return {
          ...at(e.image),
          platform: { os: 'unknown', architecture: 'unknown' },
          annotations: { 'vnd.docker.reference.type': 'attestation-manifest' },
        };
      }
      return { ...at(e.image), platform };
    });
    tagDigest = registry.index(manifests, tag).digest;
    // The oracle of the platform choice: the best rank, held by exactly one image.
    let best: { rank: number; digests: Set<string> } | null = null;
    for (const [i, e] of entries.entries()) {
      const rank = e.kind === 'image' && e.os.toLowerCase() === 'linux' ? (ranks[e.platform] ?? null) : null;
      if (rank === null) continue;
      const digest = manifests[i]?.digest ?? '';
      if (best === null || rank < best.rank) best = { rank, digests: new Set([digest]) };
      else if (rank === best.rank) best.digests.add(digest);
    }
    chosen = best?.digests.size === 1 ? ([...best.digests][0] ?? null) : null;
  } else {
    registry.manifests.set(tag, registry.manifests.get(tagDigest) ?? assert.fail('no manifest'));
  }

  // Signatures: `covered` holds every digest a signature by the key names, wherever it is stored.
  const covered = new Set<string>();
  const legacyLayers = new Map<string, object[]>();
  const referrers = new Map<string, object[]>();
  let liveBy: string | null = null;
  for (const s of c.signatures) {
    const on = s.on === 'index' ? (c.tagIsIndex ? tagDigest : at(c.single).digest) : at(s.on).digest;
    const names = s.names === 'self' ? on : s.names === 'index' ? tagDigest : at(s.names).digest;
    const signer = s.byKey ? key.privateKey : stranger.privateKey;
    if (s.byKey) covered.add(names);
    if (s.form === 'legacy') {
      const payload = simpleSigningPayload(registry.repository, names);
      const blob = registry.blob(payload);
      const layers = legacyLayers.get(on) ?? [];
      layers.push({
        ...blob,
        mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json',
        annotations: { 'dev.cosignproject.cosign/signature': sign('sha256', payload, signer).toString('base64') },
      });
      legacyLayers.set(on, layers);
      if (s.byKey && names === on && (on === chosen || (on === tagDigest && c.tagIsIndex))) liveBy = on;
      continue;
    }
    const bundle = { ...cosignBundle(signer, names), mediaType: s.bundleType };
    const layer = registry.blob(Buffer.from(JSON.stringify(bundle)));
    const empty = registry.blob(Buffer.from('{}'));
    const subjectOf = s.subject === 'other' ? at(3).digest : on;
    const artifact = registry.manifest(
      {
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType: s.bundleType,
        config: { ...empty, mediaType: 'application/vnd.oci.empty.v1+json' },
        layers: [{ ...layer, mediaType: s.bundleType }],
        ...(s.subject === 'none' ? {} : { subject: { mediaType: OCI_MANIFEST, digest: subjectOf, size: 1 } }),
      },
      OCI_MANIFEST,
    );
    const listedType =
      s.listedType === 'own' ? s.bundleType : s.listedType === 'empty' ? 'application/vnd.oci.empty.v1+json' : undefined;
    const descriptor = { ...artifact, ...(listedType === undefined ? {} : { artifactType: listedType }) };
    if (s.via !== 'tag') registry.referrers.set(on, [...(registry.referrers.get(on) ?? []), descriptor]);
    if (s.via !== 'api') referrers.set(on, [...(referrers.get(on) ?? []), descriptor]);
  }
  if (c.hostile !== null) {
    // Image 0 signed by the key, in cosign's legacy form.
    const payload = simpleSigningPayload(registry.repository, at(0).digest);
    const layers = legacyLayers.get(at(0).digest) ?? [];
    layers.push({
      ...registry.blob(payload),
      mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json',
      annotations: { 'dev.cosignproject.cosign/signature': sign('sha256', payload, key.privateKey).toString('base64') },
    });
    legacyLayers.set(at(0).digest, layers);
    covered.add(at(0).digest);
  }
  for (const [on, layers] of legacyLayers) {
    const empty = registry.blob(Buffer.from('{}'));
    registry.manifest(
      { schemaVersion: 2, mediaType: OCI_MANIFEST, config: { ...empty, mediaType: 'application/vnd.oci.empty.v1+json' }, layers },
      OCI_MANIFEST,
      `${on.replace(':', '-')}.sig`,
    );
  }
  for (const [on, list] of referrers) registry.index(list, on.replace(':', '-'));
  const other = images.find((i) => i.digest !== chosen && i.digest !== tagDigest)?.digest ?? at(0).digest;
  const pin = { none: null, tag: tagDigest, chosen: chosen ?? tagDigest, other }[c.pin];
  return { tag, tagDigest, chosen, covered, liveBy, pin, configs: new Map(images.map((i) => [i.digest, i.config])) };
}

async function runCase(c: Case): Promise<void> {
  cases += 1;
  const world = publish(c);
  const dir = join(root, `c${cases}`);
  const engine = new FakeEngine();
  engine.enginePlatform = ENGINES[c.engine].platform;
  engine.tagDigest = world.tagDigest;
  engine.tagIsIndex = c.tagIsIndex;
  for (const [digest, cfg] of world.configs) engine.imageIds.set(digest, c.substitute ? `sha256:${'e'.repeat(64)}` : cfg);
  const old = engine.seed(NAME);
  const deployer = new Deployer({
    config: { ...config, stateDir: dir, startCheckSeconds: 0 },
    engine,
    store: await StateStore.open(dir),
    audit: await AuditLog.open(join(dir, 'audit.jsonl')),
    journal: new DeployJournal(dir),
    logger: pino({ level: 'silent' }),
    verifier,
  });
  const reference = `${registry.repository}:${world.tag}${world.pin === null ? '' : `@${world.pin}`}`;
  const image = parseImageReference(reference, { repository: registry.repository, environment: 'dev' });
  const context = {
    requestId: randomUUID(),
    clientId: 'client.access',
    endpoint: '/v1/deploy',
    callerGone: new AbortController().signal,
    receivedAt: Date.now(),
  };
  const answer = await deployer.deploy(image, context).catch((error: unknown) => {
    assert.ok(error instanceof AgentError, `only AgentErrors escape: ${String(error)}`);
    assert.ok(error.status !== 500, `no internal error: ${error.reason}`);
    return error;
  });
  await deployer.shutdown();
  const pinOk = world.pin === null || world.pin === world.tagDigest || world.pin === world.chosen;
  if (answer instanceof AgentError) {
    assert.deepEqual(engine.touched(old.id), [], 'a refusal leaves the runtime untouched');
    assert.equal(old.running, true);
    const live = world.liveBy !== null && world.chosen !== null && pinOk && !c.substitute;
    assert.ok(!live, `refused although signed by the key, unambiguous and honest: ${answer.reason}`);
    return;
  }
  deployed += 1;
  const created = engine.containers.get(answer.container_id) ?? assert.fail('no container');
  const run = created.image.slice(created.image.lastIndexOf('@') + 1);
  assert.equal(created.image, `${registry.repository}@${run}`);
  assert.ok(
    world.chosen !== null && run === world.chosen,
    `created from ${run}, the engine platform's manifest is ${world.chosen}`,
  );
  assert.ok(registry.manifests.get(run)?.mediaType === OCI_MANIFEST, 'an image manifest, never an index');
  const signedBy = world.covered.has(run) ? run : c.tagIsIndex && world.covered.has(world.tagDigest) ? world.tagDigest : null;
  assert.ok(signedBy !== null, `${run} (from ${world.tagDigest}) runs, and no signature by the key names it or its index`);
  assert.ok(
    answer.provenance?.subject_digest === run || (c.tagIsIndex && answer.provenance?.subject_digest === world.tagDigest),
    'the provenance is the running digest, or its index',
  );
  assert.ok(world.covered.has(answer.provenance?.subject_digest ?? ''), 'and a signature by the key names it');
  assert.equal(created.imageId, world.configs.get(run), "the engine's image is the manifest's config");
  assert.equal(answer.image_digest, run);
  assert.equal(answer.tag_digest, world.tagDigest);
  assert.equal(created.labels[LABEL.digest], run);
  assert.equal(created.labels[LABEL.tagDigest], world.tagDigest);
  assert.equal(old.running, false);
}

describe('an adversarial registry (property)', () => {
  it('200 only for what a signature by the key names, created from that very manifest, with its provenance', async () => {
    const started = Date.now();
    try {
      await fc.assert(fc.asyncProperty(caseArb, runCase), { seed: SEED, numRuns: RUNS, endOnFailure: false });
    } finally {
      console.log(
        `adversarial registry: ${cases} cases (${deployed} deployed) in ${Date.now() - started} ms, seed ${SEED} (DREICHOR_PROPERTY_SEED=${SEED} replays it; DREICHOR_PROPERTY_RUNS sets how many)`,
      );
    }
  });

  it('the generator reaches both answers: deploys and refusals', () => {
    assert.ok(deployed > 0 || RUNS < 20, 'some cases deployed');
    assert.ok(cases - deployed > 0, 'some cases were refused');
  });
});
