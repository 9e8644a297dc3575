/**
 * IMAGE_VERIFICATION=cosign-key, check by check: each case is valid but for the one thing it is
 * about, and expects the refusal (and its rank: which candidate's problem a refusal names) of that
 * check. The legacy `.sig` path runs against an in-memory registry client (no HTTP), so the whole
 * file takes milliseconds; written against the mutants StrykerJS left alive (docs/TESTING.md).
 */
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { describe, it } from 'node:test';
import type { CosignKeyPolicy } from '../../../src/config/verification.js';
import { CosignKeyVerifier } from '../../../src/supply-chain/cosign.js';
import type { Fetched, RegistryClient } from '../../../src/supply-chain/registry.js';
import { simpleSigningPayload } from '../../support/cosign.js';

const DIGEST = `sha256:${'1'.repeat(64)}`;
const OTHER = `sha256:${'2'.repeat(64)}`;
const FINGERPRINT = `sha256:${'f'.repeat(64)}`;
const SIMPLE_SIGNING = 'application/vnd.dev.cosign.simplesigning.v1+json';
const IN_TOTO = 'application/vnd.in-toto+json';
const sha256 = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ed = generateKeyPairSync('ed25519');
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const verifierFor = (publicKey: KeyObject) =>
  new CosignKeyVerifier({ mode: 'cosign-key', publicKey, fingerprint: FINGERPRINT } satisfies CosignKeyPolicy);
const verifier = verifierFor(ec.publicKey);
/** cosign signs ECDSA and RSA over SHA-256, Ed25519 over the message itself. */
const signWith = (key: KeyObject, data: Buffer) => sign(key.asymmetricKeyType === 'ed25519' ? null : 'sha256', data, key);

const refusal = (judged: object): { rank: number; problem: string } => {
  assert.ok('problem' in judged, `accepted: ${JSON.stringify(judged)}`);
  return judged as { rank: number; problem: string };
};
const expectedProvenance = (digest: string, predicateType: string | null) => ({
  verified_by: 'cosign-key',
  subject_digest: digest,
  repository: null,
  commit: null,
  ref: null,
  workflow: null,
  run_url: null,
  predicate_type: predicateType,
  key_fingerprint: FINGERPRINT,
});

describe('judgeSimpleSigning (legacy .sig)', () => {
  const payload = simpleSigningPayload('registry.example:5000/dreichor/runtime', DIGEST);

  it('accepts the key of each kind cosign uses, and says what was verified', () => {
    for (const pair of [ec, ed, rsa]) {
      const judged = verifierFor(pair.publicKey).judgeSimpleSigning(payload, signWith(pair.privateKey, payload), [DIGEST]);
      assert.deepEqual(judged, { provenance: expectedProvenance(DIGEST, null) }, pair.publicKey.asymmetricKeyType);
    }
  });

  it('refuses a signature not made with the key (rank 1): another key, empty, too long, over other bytes', () => {
    const notTheKey = { rank: 1, problem: 'its signature is not made with COSIGN_PUBLIC_KEY_FILE' };
    const good = signWith(ec.privateKey, payload);
    for (const [what, signature] of [
      ['another key', signWith(stranger.privateKey, payload)],
      ['empty', Buffer.alloc(0)],
      ['a valid signature with bytes after it', Buffer.concat([good, Buffer.alloc(1100)])],
      ['over other bytes', signWith(ec.privateKey, Buffer.concat([payload, Buffer.from(' ')]))],
    ] as const) {
      assert.deepEqual(verifier.judgeSimpleSigning(payload, signature, [DIGEST]), notTheKey, what);
    }
    // Ed25519 signs the message itself: a signature over its SHA-256 is another signature.
    const hashed = sign(null, createHash('sha256').update(payload).digest(), ed.privateKey);
    assert.deepEqual(verifierFor(ed.publicKey).judgeSimpleSigning(payload, hashed, [DIGEST]), notTheKey);
    // A key that cannot verify at all (X25519 only agrees keys) makes node throw: a refusal, not a crash.
    const x = generateKeyPairSync('x25519');
    assert.deepEqual(verifierFor(x.publicKey).judgeSimpleSigning(payload, good, [DIGEST]), notTheKey);
  });

  it('refuses a validly signed payload that is not a simple-signing payload (rank 2)', () => {
    const bad = (value: unknown) => {
      const bytes = Buffer.from(typeof value === 'string' ? value : JSON.stringify(value));
      return refusal(verifier.judgeSimpleSigning(bytes, signWith(ec.privateKey, bytes), [DIGEST]));
    };
    const critical = (change: object) => ({
      critical: { image: { 'docker-manifest-digest': DIGEST }, type: 'cosign container image signature', ...change },
    });
    for (const value of [
      'not json',
      {},
      critical({ type: 'cosign container image signature ' }),
      critical({ type: undefined }),
      critical({ image: {} }),
      critical({ image: { 'docker-manifest-digest': 42 } }),
      critical({ image: { 'docker-manifest-digest': `${DIGEST}${'0'.repeat(128 - DIGEST.length + 1)}` } }),
    ]) {
      assert.deepEqual(
        bad(value),
        { rank: 2, problem: 'its payload is not a cosign simple-signing payload' },
        JSON.stringify(value),
      );
    }
    // 128 characters is still a (wrong) digest to compare, not a malformed payload.
    assert.equal(bad(critical({ image: { 'docker-manifest-digest': `${DIGEST}${'0'.repeat(128 - DIGEST.length)}` } })).rank, 3);
  });

  it('refuses a signature of another digest (rank 3)', () => {
    const judged = verifier.judgeSimpleSigning(payload, signWith(ec.privateKey, payload), [OTHER]);
    assert.deepEqual(judged, { rank: 3, problem: 'it signs another digest (a signature of another image)' });
  });
});

/** A cosign 3 bundle around `payload`, signed (over DSSE's PAE, unless told otherwise) by each key. */
function bundle(
  payload: Buffer,
  options: { keys?: KeyObject[]; payloadType?: string; mediaType?: string; signed?: (pae: Buffer) => Buffer } = {},
): Buffer {
  const payloadType = options.payloadType ?? IN_TOTO;
  const pae = Buffer.concat([Buffer.from(`DSSEv1 ${payloadType.length} ${payloadType} ${payload.length} `), payload]);
  const signed = options.signed?.(pae) ?? pae;
  return Buffer.from(
    JSON.stringify({
      mediaType: options.mediaType ?? 'application/vnd.dev.sigstore.bundle.v0.3+json',
      verificationMaterial: { publicKey: { hint: 'cosign-key' }, tlogEntries: [] },
      dsseEnvelope: {
        payload: payload.toString('base64'),
        payloadType,
        signatures: (options.keys ?? [ec.privateKey]).map((k) => ({ sig: signWith(k, signed).toString('base64'), keyid: '' })),
      },
    }),
  );
}
const statement = (digest: string, predicateType = 'https://sigstore.dev/cosign/sign/v1') =>
  Buffer.from(
    JSON.stringify({
      _type: 'https://in-toto.io/Statement/v1',
      subject: [{ name: 'runtime', digest: { sha256: digest.slice('sha256:'.length) } }],
      predicateType,
      predicate: {},
    }),
  );

describe('judgeBundle (cosign 3)', () => {
  it('accepts a statement of the digest, signed over its PAE, and records its predicate type', () => {
    assert.deepEqual(verifier.judgeBundle(bundle(statement(DIGEST, 'https://example/p')), [OTHER, DIGEST]), {
      provenance: expectedProvenance(DIGEST, 'https://example/p'),
    });
    assert.ok(
      'provenance' in verifierFor(ed.publicKey).judgeBundle(bundle(statement(DIGEST), { keys: [ed.privateKey] }), [DIGEST]),
    );
    assert.ok(
      'provenance' in
        verifier.judgeBundle(bundle(statement(DIGEST), { mediaType: 'application/vnd.dev.sigstore.bundle+json;version=0.2' }), [
          DIGEST,
        ]),
    );
  });

  it('refuses what is not a bundle holding an in-toto DSSE (rank 0)', () => {
    const notBundle = { rank: 0, problem: 'not a Sigstore bundle holding an in-toto statement (DSSE)' };
    assert.deepEqual(verifier.judgeBundle(Buffer.from('{'), [DIGEST]), notBundle);
    assert.deepEqual(verifier.judgeBundle(Buffer.from('{"mediaType":"x"}'), [DIGEST]), notBundle);
    assert.deepEqual(verifier.judgeBundle(bundle(statement(DIGEST), { payloadType: 'application/json' }), [DIGEST]), notBundle);
  });

  it('refuses a bundle version without inclusion proofs, or no bundle type (rank 0)', () => {
    const judged = refusal(
      verifier.judgeBundle(bundle(statement(DIGEST), { mediaType: 'application/vnd.dev.sigstore.bundle+json;version=0.1' }), [
        DIGEST,
      ]),
    );
    assert.equal(judged.rank, 0);
    assert.match(judged.problem, /^not an accepted Sigstore bundle: it is a v0\.1 bundle/);
    const untyped = refusal(verifier.judgeBundle(bundle(statement(DIGEST), { mediaType: 'application/json' }), [DIGEST]));
    assert.deepEqual(untyped, {
      rank: 0,
      problem: 'not an accepted Sigstore bundle: its mediaType is not a Sigstore bundle type',
    });
  });

  it('needs one signature by the key, over the PAE (rank 1 otherwise)', () => {
    const notTheKey = { rank: 1, problem: 'its signature is not made with COSIGN_PUBLIC_KEY_FILE' };
    assert.ok(
      'provenance' in verifier.judgeBundle(bundle(statement(DIGEST), { keys: [stranger.privateKey, ec.privateKey] }), [DIGEST]),
    );
    assert.deepEqual(verifier.judgeBundle(bundle(statement(DIGEST), { keys: [stranger.privateKey] }), [DIGEST]), notTheKey);
    // The payload signed as it is, not in DSSE's encoding: another message.
    const raw = statement(DIGEST);
    assert.deepEqual(verifier.judgeBundle(bundle(raw, { signed: () => raw }), [DIGEST]), notTheKey);
  });

  it('refuses a signed payload that is not a statement (rank 2), and a statement of another digest (rank 3)', () => {
    assert.deepEqual(verifier.judgeBundle(bundle(Buffer.from('{"_type":"x"}')), [DIGEST]), {
      rank: 2,
      problem: 'its payload is not an in-toto statement',
    });
    assert.deepEqual(verifier.judgeBundle(bundle(statement(OTHER)), [DIGEST]), {
      rank: 3,
      problem: 'its subject is another digest (a signature of another image)',
    });
  });
});

/** The calls the verifier makes, answered from memory: the `.sig` tag and its blobs, no referrers. */
class MemoryRegistry {
  readonly manifests = new Map<string, Buffer>();
  readonly blobs = new Map<string, Buffer>();
  readonly calls: string[] = [];

  async manifest(reference: string, accept: readonly string[], maxBytes: number): Promise<Fetched | null> {
    this.calls.push(`manifest ${reference} ${accept.join(',')} ${maxBytes}`);
    const bytes = this.manifests.get(reference);
    return bytes === undefined ? null : { bytes, mediaType: null, digest: sha256(bytes) };
  }

  async blob(digest: string, maxBytes: number): Promise<Buffer> {
    this.calls.push(`blob ${digest} ${maxBytes}`);
    const bytes = this.blobs.get(digest);
    if (bytes === undefined) throw new Error(`no blob ${digest}`);
    return bytes;
  }

  /** What the referrers API lists, by subject digest (none: the API answers nothing). */
  readonly listed = new Map<string, Buffer>();

  async referrers(digest: string, maxBytes: number): Promise<Fetched | null> {
    this.calls.push(`referrers ${digest} ${maxBytes}`);
    const bytes = this.listed.get(digest);
    return bytes === undefined ? null : { bytes, mediaType: null, digest: sha256(bytes) };
  }

  /** A cosign 3 bundle stored as a referrer of `digest` (listed beside the others), as cosign 3 stores it. */
  referrer(
    digest: string,
    bundleBytes: Buffer,
    options: {
      subject?: string | null;
      layerType?: string;
      size?: number;
      /** The manifest's own artifactType; null: none, the listing's (or the config's) decides. */
      artifactType?: string | null;
      listedType?: string;
      configType?: string;
    } = {},
  ): void {
    const type = 'application/vnd.dev.sigstore.bundle.v0.3+json';
    const empty = Buffer.from('{}');
    this.blobs.set(sha256(bundleBytes), bundleBytes);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        ...(options.artifactType === null ? {} : { artifactType: options.artifactType ?? type }),
        config: {
          mediaType: options.configType ?? 'application/vnd.oci.empty.v1+json',
          digest: sha256(empty),
          size: empty.length,
        },
        layers: [{ mediaType: options.layerType ?? type, digest: sha256(bundleBytes), size: options.size ?? bundleBytes.length }],
        ...(options.subject === null
          ? {}
          : { subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: options.subject ?? digest, size: 1 } }),
      }),
    );
    this.manifests.set(sha256(manifest), manifest);
    const listed = this.listed.get(digest);
    const manifests = listed === undefined ? [] : (JSON.parse(listed.toString()) as { manifests: unknown[] }).manifests;
    manifests.push({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: sha256(manifest),
      size: manifest.length,
      ...(options.listedType === undefined ? {} : { artifactType: options.listedType }),
    });
    this.listed.set(digest, Buffer.from(JSON.stringify({ schemaVersion: 2, manifests })));
  }

  /** The `.sig` tag of `digest`, one layer per entry. */
  sigTag(digest: string, layers: { payload: Buffer; signature?: Buffer; mediaType?: string; size?: number }[]): void {
    const descriptors = layers.map((l) => {
      this.blobs.set(sha256(l.payload), l.payload);
      return {
        mediaType: l.mediaType ?? SIMPLE_SIGNING,
        digest: sha256(l.payload),
        size: l.size ?? l.payload.length,
        ...(l.signature === undefined
          ? {}
          : { annotations: { 'dev.cosignproject.cosign/signature': l.signature.toString('base64') } }),
      };
    });
    const config = Buffer.from('{}');
    const manifest = {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: descriptors,
    };
    this.manifests.set(`${digest.replace(':', '-')}.sig`, Buffer.from(JSON.stringify(manifest)));
  }
}
const client = (registry: MemoryRegistry) => registry as unknown as RegistryClient;
const signedLayer = (digest: string, key = ec.privateKey) => {
  const payload = simpleSigningPayload('registry.example:5000/dreichor/runtime', digest);
  return { payload, signature: signWith(key, payload) };
};

describe('verify: a cosign 3 bundle stored as a referrer', () => {
  it('is judged as a bundle: the statement of the digest passes, another digest does not', async () => {
    const registry = new MemoryRegistry();
    registry.referrer(DIGEST, bundle(statement(DIGEST)));
    assert.deepEqual(
      await verifier.verify(client(registry), [DIGEST]),
      expectedProvenance(DIGEST, 'https://sigstore.dev/cosign/sign/v1'),
    );

    const other = new MemoryRegistry();
    other.referrer(DIGEST, bundle(statement(OTHER)));
    await assert.rejects(verifier.verify(client(other), [DIGEST]), /passes every check: its subject is another digest/);
  });

  it('is found beside a legacy signature that fails', async () => {
    const registry = new MemoryRegistry();
    registry.sigTag(DIGEST, [signedLayer(DIGEST, stranger.privateKey)]);
    registry.referrer(DIGEST, bundle(statement(DIGEST)));
    assert.equal((await verifier.verify(client(registry), [DIGEST])).predicate_type, 'https://sigstore.dev/cosign/sign/v1');
  });
});

describe('verify: which referrers are judged, and which refusal is named', () => {
  it('skips a referrer that holds no bundle, is not one, or is about another image, and names why', async () => {
    const cases: [string, Parameters<MemoryRegistry['referrer']>[2], RegExp][] = [
      ['no bundle layer', { layerType: 'application/json' }, /is not a signature manifest/],
      ['another artifact type', { artifactType: 'application/vnd.example+json' }, /is not a signature manifest/],
      ['another subject', { subject: OTHER }, new RegExp(`refers to another image \\(${OTHER}\\)`)],
      ['a bundle over 1 MiB', { size: 1024 * 1024 + 1 }, /is 1048577 bytes, more than the 1048576 allowed/],
    ];
    for (const [what, options, reason] of cases) {
      const registry = new MemoryRegistry();
      registry.referrer(DIGEST, bundle(statement(DIGEST)), options);
      await assert.rejects(verifier.verify(client(registry), [DIGEST]), reason, what);
      assert.ok(!registry.calls.some((c) => c.startsWith('blob')), `${what}: its blob was fetched`);
    }
    const atLimit = new MemoryRegistry();
    atLimit.referrer(DIGEST, bundle(statement(DIGEST)), { size: 1024 * 1024 });
    assert.equal((await verifier.verify(client(atLimit), [DIGEST])).subject_digest, DIGEST);
  });

  it('takes a referrer without a subject; refuses one whose manifest is missing; names both digests when none', async () => {
    const bare = new MemoryRegistry();
    bare.referrer(DIGEST, bundle(statement(DIGEST)), { subject: null });
    assert.equal((await verifier.verify(client(bare), [DIGEST])).subject_digest, DIGEST);
    const missing = new MemoryRegistry();
    missing.referrer(DIGEST, bundle(statement(DIGEST)));
    for (const key of [...missing.manifests.keys()]) if (key.startsWith('sha256:')) missing.manifests.delete(key);
    await assert.rejects(
      verifier.verify(client(missing), [DIGEST]),
      /passes every check: referrer sha256:[0-9a-f]{64} is not a signature manifest/,
    );
    await assert.rejects(verifier.verify(client(new MemoryRegistry()), [DIGEST, OTHER]), (e: Error) =>
      e.message.includes(`no signature found for ${DIGEST} or ${OTHER} (`),
    );
  });

  it("decides a referrer's type by its manifest, else by the listing unless it is undecided, else by its config", async () => {
    const BUNDLE = 'application/vnd.dev.sigstore.bundle.v0.3+json';
    const judged = async (options: Parameters<MemoryRegistry['referrer']>[2]) => {
      const registry = new MemoryRegistry();
      registry.referrer(DIGEST, bundle(statement(DIGEST)), options);
      return verifier.verify(client(registry), [DIGEST]).then(
        () => 'accepted',
        (e: Error) => (/is not a signature manifest/.test(e.message) ? 'not a signature' : e.message),
      );
    };
    assert.equal(await judged({ artifactType: BUNDLE, listedType: 'application/vnd.oci.empty.v1+json' }), 'accepted');
    assert.equal(await judged({ artifactType: null, listedType: BUNDLE }), 'accepted');
    assert.equal(await judged({ artifactType: null, listedType: 'application/vnd.oci.empty.v1+json' }), 'not a signature');
    assert.equal(
      await judged({ artifactType: null, listedType: 'application/vnd.oci.empty.v1+json', configType: BUNDLE }),
      'accepted',
    );
    assert.equal(await judged({ artifactType: null, configType: BUNDLE }), 'accepted');
    assert.equal(await judged({ artifactType: null }), 'not a signature');
  });

  it('names the refusal of the candidate that got furthest, whichever came first; the first of equals', async () => {
    for (const order of [0, 1]) {
      const registry = new MemoryRegistry();
      const furthest = bundle(statement(OTHER)); // rank 3
      const shallow = bundle(statement(DIGEST), { keys: [stranger.privateKey] }); // rank 1
      for (const b of order === 0 ? [furthest, shallow] : [shallow, furthest]) registry.referrer(DIGEST, b);
      await assert.rejects(verifier.verify(client(registry), [DIGEST]), /: its subject is another digest/);
    }
    // Two refusals of rank 0: the legacy tag's, judged first, is named.
    const equals = new MemoryRegistry();
    equals.manifests.set(`sha256-${'1'.repeat(64)}.sig`, Buffer.from('{"schemaVersion":2}'));
    equals.referrer(DIGEST, Buffer.from('{}'));
    await assert.rejects(verifier.verify(client(equals), [DIGEST]), (e: Error) =>
      e.message.includes(`passes every check: the sha256-${'1'.repeat(64)}.sig tag is not a signature manifest;`),
    );
  });

  it('refuses more than 32 candidates over all the digests without judging any', async () => {
    // 17 for each of the two digests a tag stands for (an index and its manifest): 34 in all.
    const fill = (registry: MemoryRegistry, each: number) => {
      for (const digest of [DIGEST, OTHER]) {
        for (let i = 0; i < each; i += 1) registry.referrer(digest, bundle(statement(digest, `https://example/${i}`)));
      }
    };
    const registry = new MemoryRegistry();
    fill(registry, 17);
    await assert.rejects(verifier.verify(client(registry), [DIGEST, OTHER]), /more than 32 candidate signatures;/);
    assert.ok(!registry.calls.some((c) => c.startsWith('blob')));
    const full = new MemoryRegistry();
    fill(full, 16);
    assert.ok((await verifier.verify(client(full), [DIGEST, OTHER])).subject_digest.startsWith('sha256:'));
  });
});

describe('verify: the legacy .sig tag', () => {
  it('asks for the tag of each digest, as a manifest of either kind, within the limits', async () => {
    const registry = new MemoryRegistry();
    registry.sigTag(OTHER, [signedLayer(OTHER)]);
    const provenance = await verifier.verify(client(registry), [DIGEST, OTHER]);
    assert.deepEqual(provenance, expectedProvenance(OTHER, null));
    const sigCalls = registry.calls.filter((c) => c.includes('.sig') || c.startsWith('blob'));
    assert.deepEqual(sigCalls, [
      `manifest sha256-${'1'.repeat(64)}.sig application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json 262144`,
      `manifest sha256-${'2'.repeat(64)}.sig application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json 262144`,
      `blob ${sha256(signedLayer(OTHER).payload)} 65536`,
    ]);
  });

  it('refuses with no signature at all, and names what is wrong with a tag that is not a signature', async () => {
    await assert.rejects(verifier.verify(client(new MemoryRegistry()), [DIGEST]), /no signature found for sha256:1{64}/);
    const registry = new MemoryRegistry();
    registry.manifests.set(`sha256-${'1'.repeat(64)}.sig`, Buffer.from('{"schemaVersion":2}'));
    await assert.rejects(verifier.verify(client(registry), [DIGEST]), (e: Error) =>
      e.message.includes(`the sha256-${'1'.repeat(64)}.sig tag is not a signature manifest`),
    );
  });

  it('judges only simple-signing layers, each with its annotation and within the payload limit', async () => {
    const other = new MemoryRegistry();
    other.sigTag(DIGEST, [{ ...signedLayer(DIGEST), mediaType: 'application/octet-stream' }]);
    await assert.rejects(verifier.verify(client(other), [DIGEST]), /no signature found/);

    const unsigned = new MemoryRegistry();
    unsigned.sigTag(DIGEST, [{ payload: signedLayer(DIGEST).payload }]);
    await assert.rejects(
      verifier.verify(client(unsigned), [DIGEST]),
      /a \.sig layer without a signature annotation, or too large/,
    );

    const large = new MemoryRegistry();
    large.sigTag(DIGEST, [{ ...signedLayer(DIGEST), size: 64 * 1024 + 1 }]);
    await assert.rejects(verifier.verify(client(large), [DIGEST]), /a \.sig layer without a signature annotation, or too large/);
    assert.ok(!large.calls.some((c) => c.startsWith('blob')), 'a layer over the limit is not fetched');
    const atLimit = new MemoryRegistry();
    atLimit.sigTag(DIGEST, [{ ...signedLayer(DIGEST), size: 64 * 1024 }]);
    assert.equal((await verifier.verify(client(atLimit), [DIGEST])).subject_digest, DIGEST);
  });

  it('takes the first layer that verifies, fetches none after it, and names the best refusal otherwise', async () => {
    const registry = new MemoryRegistry();
    registry.sigTag(DIGEST, [
      signedLayer(DIGEST, stranger.privateKey),
      signedLayer(DIGEST),
      signedLayer(`sha256:${'3'.repeat(64)}`),
    ]);
    assert.equal((await verifier.verify(client(registry), [DIGEST])).subject_digest, DIGEST);
    assert.equal(registry.calls.filter((c) => c.startsWith('blob')).length, 2);

    const refused = new MemoryRegistry();
    refused.sigTag(DIGEST, [signedLayer(OTHER), signedLayer(DIGEST, stranger.privateKey)]);
    await assert.rejects(verifier.verify(client(refused), [DIGEST]), /passes every check: it signs another digest/);
  });

  it('judges at most 32 layers of a tag', async () => {
    const registry = new MemoryRegistry();
    const strangers = Array.from({ length: 32 }, (_, i) => {
      const payload = Buffer.from(`${simpleSigningPayload('r', DIGEST).toString()}${' '.repeat(i)}`);
      return { payload, signature: signWith(stranger.privateKey, payload) };
    });
    registry.sigTag(DIGEST, [...strangers, signedLayer(DIGEST)]);
    await assert.rejects(verifier.verify(client(registry), [DIGEST]), /its signature is not made with COSIGN_PUBLIC_KEY_FILE/);
    assert.equal(registry.calls.filter((c) => c.startsWith('blob')).length, 32);
  });
});
