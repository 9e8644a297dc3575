import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type AttestationPolicy, type CosignKeyPolicy, verificationPolicy } from '../../../src/config/verification.js';
import { AttestationVerifier } from '../../../src/supply-chain/attestation.js';
import { CosignKeyVerifier } from '../../../src/supply-chain/cosign.js';
import { RegistryClient } from '../../../src/supply-chain/registry.js';
import { cosignBundle, cosignKey } from '../../support/cosign.js';
import { githubClaims, provenanceStatement, SigstoreMock } from '../../support/sigstore-mock.js';

/**
 * The policy gaps a cross-check against cosign 3.1.1 and sigstore-go 1.3.0 found, each with the
 * case that showed it: how cosign 3 stores its signature (a referrer listed under the empty config's
 * type), bundle versions judged by the bundle's own mediaType (v0.2 and v0.3 only), v0.2 referrers
 * found, a certificate naming two issuers, and GitHub's case-insensitive owner and repository names.
 */
const DIGEST = `sha256:${'1'.repeat(64)}`;
const dir = mkdtempSync(join(tmpdir(), 'dreichor-bundle-policy-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const sha256 = (data: Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;
const json = (value: object): Buffer => Buffer.from(JSON.stringify(value));

const V01 = 'application/vnd.dev.sigstore.bundle+json;version=0.1';
const V02 = 'application/vnd.dev.sigstore.bundle+json;version=0.2';
const V03 = 'application/vnd.dev.sigstore.bundle.v0.3+json';
const EMPTY = 'application/vnd.oci.empty.v1+json';

let n = 0;
function policyFile(name: string, contents: string): string {
  n += 1;
  const file = join(dir, `${n}-${name}`);
  writeFileSync(file, contents);
  return file;
}

const key = cosignKey();
const cosignPolicy = verificationPolicy({
  IMAGE_VERIFICATION: 'cosign-key',
  COSIGN_PUBLIC_KEY_FILE: policyFile('cosign.pub', key.publicKeyPem),
}) as CosignKeyPolicy;

/**
 * A registry of the test's own that has no referrers API (as docker-registry and GHCR): manifests
 * by tag and digest, blobs by digest.
 */
class MemoryRegistry {
  readonly manifests = new Map<string, { body: Buffer; type: string }>();
  readonly blobs = new Map<string, Buffer>();
  private constructor(
    private readonly server: Server,
    readonly host: string,
  ) {}

  static async start(): Promise<MemoryRegistry> {
    let registry: MemoryRegistry | null = null;
    const server = createServer((req, res) => {
      const url = req.url ?? '';
      const manifest = /\/manifests\/(.+)$/.exec(url)?.[1];
      const found = manifest === undefined ? undefined : registry?.manifests.get(manifest);
      if (found !== undefined) return void res.writeHead(200, { 'Content-Type': found.type }).end(found.body);
      const blob = registry?.blobs.get(/\/blobs\/(.+)$/.exec(url)?.[1] ?? '');
      if (blob !== undefined) return void res.writeHead(200).end(blob);
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    registry = new MemoryRegistry(server, `127.0.0.1:${(server.address() as AddressInfo).port}`);
    return registry;
  }

  blob(data: Buffer): string {
    this.blobs.set(sha256(data), data);
    return sha256(data);
  }

  manifest(value: object, type = 'application/vnd.oci.image.manifest.v1+json', tag?: string): string {
    const body = json(value);
    this.manifests.set(sha256(body), { body, type });
    if (tag !== undefined) this.manifests.set(tag, { body, type });
    return sha256(body);
  }

  /**
   * A bundle stored as a referrer of `subject` the way cosign 3.1.1 stores it on a registry without
   * the referrers API (seen on docker-registry): the manifest says what it is in its own
   * artifactType; the `sha256-<hex>` tag's index entry says `listedAs`.
   */
  referrer(subject: string, bundle: Buffer, artifactType: string | undefined, listedAs: string | undefined): void {
    const manifest = {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: EMPTY, size: 2, digest: this.blob(Buffer.from('{}')) },
      layers: [{ mediaType: artifactType ?? V03, size: bundle.length, digest: this.blob(bundle) }],
      subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 1, digest: subject },
      ...(artifactType === undefined ? {} : { artifactType }),
    };
    const digest = this.manifest(manifest);
    const entry = {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      size: json(manifest).length,
      digest,
      ...(listedAs === undefined ? {} : { artifactType: listedAs }),
    };
    const tag = subject.replace(':', '-');
    const existing = this.manifests.get(tag);
    const manifests = existing === undefined ? [] : (JSON.parse(existing.body.toString()) as { manifests: object[] }).manifests;
    this.manifest(
      { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [...manifests, entry] },
      'application/vnd.oci.image.index.v1+json',
      tag,
    );
  }

  client(): RegistryClient {
    return new RegistryClient({ host: this.host, path: 'dreichor/runtime', credentials: null }, AbortSignal.timeout(10_000));
  }

  close(): void {
    this.server.closeAllConnections();
    this.server.close();
  }
}

describe("cosign 3's signatures as cosign stores them, and bundle versions (cosign-key)", () => {
  let registry: MemoryRegistry;
  const verifier = new CosignKeyVerifier(cosignPolicy);
  let subjectN = 0;
  const subject = (): string => {
    subjectN += 1;
    return `sha256:${createHash('sha256').update(`image ${subjectN}`).digest('hex')}`;
  };
  before(async () => {
    registry = await MemoryRegistry.start();
  });
  after(() => registry.close());

  it("finds a referrer listed under the empty config's type by its manifest's own artifactType (cosign 3.1.1's output)", async () => {
    const digest = subject();
    registry.referrer(digest, json(cosignBundle(key.privateKey, digest)), V03, EMPTY);
    const provenance = await verifier.verify(registry.client(), [digest]);
    assert.equal(provenance.subject_digest, digest);
    assert.equal(provenance.predicate_type, 'https://sigstore.dev/cosign/sign/v1');
  });

  it('finds a referrer listed with no type at all, judged by its manifest', async () => {
    const digest = subject();
    registry.referrer(digest, json(cosignBundle(key.privateKey, digest)), V03, undefined);
    assert.equal((await verifier.verify(registry.client(), [digest])).subject_digest, digest);
  });

  it("does not judge an empty-typed referrer whose manifest says it is something else (an SBOM's manifest)", async () => {
    const digest = subject();
    registry.referrer(digest, json(cosignBundle(key.privateKey, digest)), 'application/spdx+json', EMPTY);
    await assert.rejects(verifier.verify(registry.client(), [digest]), /is not a signature manifest/);
  });

  it('finds a v0.2 bundle by its artifact type (older actions/attest-build-provenance) and accepts it', async () => {
    const digest = subject();
    registry.referrer(digest, json({ ...cosignBundle(key.privateKey, digest), mediaType: V02 }), V02, V02);
    assert.equal((await verifier.verify(registry.client(), [digest])).subject_digest, digest);
  });

  it("judges the version by the bundle's own mediaType: v0.2 and v0.3 (both spellings) only", () => {
    const cases: [string, boolean][] = [
      [V01, false],
      [V02, true],
      [V03, true],
      ['application/vnd.dev.sigstore.bundle+json;version=0.3', true],
      ['application/vnd.dev.sigstore.bundle.v0.4+json', false],
      ['application/vnd.dev.sigstore.bundle+json', false],
      ['application/json', false],
    ];
    for (const [mediaType, accepted] of cases) {
      const judged = verifier.judgeBundle(json({ ...cosignBundle(key.privateKey, DIGEST), mediaType }), [DIGEST]);
      assert.equal('provenance' in judged, accepted, `${mediaType}: ${JSON.stringify(judged)}`);
      if (!accepted) assert.ok('problem' in judged && /not an accepted Sigstore bundle/.test(judged.problem), mediaType);
    }
  });

  it('refuses a v0.1 bundle stored as a v0.3 artifact (the label is not the bundle)', async () => {
    const digest = subject();
    registry.referrer(digest, json({ ...cosignBundle(key.privateKey, digest), mediaType: V01 }), V03, V03);
    await assert.rejects(verifier.verify(registry.client(), [digest]), /it is a v0\.1 bundle; only v0\.2 and v0\.3/);
  });
});

describe('attestations: bundle versions, two issuers, and case', () => {
  let mock: SigstoreMock;
  const policy = (overrides: Record<string, string> = {}): AttestationPolicy =>
    verificationPolicy({
      IMAGE_VERIFICATION: 'github-attestation',
      SIGSTORE_TRUSTED_ROOT_FILE: policyFile('root.jsonl', mock.trustedRootLines()),
      ATTESTATION_REPOSITORY: 'ceerkle/dreichor-trading',
      ATTESTATION_SIGNER_WORKFLOW: 'ceerkle/dreichor-trading/.github/workflows/build.yml',
      ATTESTATION_SOURCE_REFS: 'refs/heads/main',
      ...overrides,
    }) as AttestationPolicy;
  before(async () => {
    mock = await SigstoreMock.start();
  });
  after(() => mock.close());

  it('refuses a v0.1 bundle (a log promise, no inclusion proof) that sigstore-js alone accepts; takes it as v0.2', async () => {
    const verifier = new AttestationVerifier(policy());
    const bundle = (await mock.attest(provenanceStatement(DIGEST), githubClaims())) as {
      mediaType: string;
      verificationMaterial: { tlogEntries: { inclusionProof?: unknown }[] };
    };
    const v02 = verifier.judge(json({ ...bundle, mediaType: V02 }), [DIGEST]);
    assert.ok('provenance' in v02, JSON.stringify(v02));
    for (const entry of bundle.verificationMaterial.tlogEntries) delete entry.inclusionProof;
    const v01 = verifier.judge(json({ ...bundle, mediaType: V01 }), [DIGEST]);
    assert.ok('problem' in v01, 'a v0.1 bundle is refused');
    assert.match(v01.problem, /it is a v0\.1 bundle; only v0\.2 and v0\.3 are accepted/);
    const unproven = verifier.judge(json({ ...bundle, mediaType: V03 }), [DIGEST]);
    assert.ok('problem' in unproven, 'a v0.3 bundle without its inclusion proof is refused');
  });

  it('refuses a certificate whose legacy issuer (.1) and issuer (.8) disagree, whichever is configured', async () => {
    const verifier = new AttestationVerifier(policy());
    const bundle = await mock.attest(provenanceStatement(DIGEST), githubClaims(), 'public-good', {
      legacyIssuer: 'https://accounts.example.com',
    });
    const judged = verifier.judge(json(bundle), [DIGEST]);
    assert.ok('problem' in judged, 'refused');
    assert.match(
      judged.problem,
      /certificate names two issuers \("https:\/\/token.actions.githubusercontent.com" in OID \.8, "https:\/\/accounts.example.com" in OID \.1\)/,
    );
    const same = await mock.attest(provenanceStatement(DIGEST), githubClaims(), 'public-good', {
      legacyIssuer: 'https://token.actions.githubusercontent.com',
    });
    assert.ok('provenance' in verifier.judge(json(same), [DIGEST]), 'the same issuer in both is accepted');
  });

  it('compares the GitHub owner and repository without case; the workflow path and the ref exactly', async () => {
    const mixed = policy({
      ATTESTATION_REPOSITORY: 'Ceerkle/Dreichor-Trading',
      ATTESTATION_SIGNER_WORKFLOW: 'CEERKLE/dreichor-trading/.github/workflows/build.yml',
    });
    const verifier = new AttestationVerifier(mixed);
    const judge = async (claims: Parameters<typeof githubClaims>[0]) =>
      verifier.judge(json(await mock.attest(provenanceStatement(DIGEST), githubClaims(claims))), [DIGEST]);
    const lower = await judge({});
    assert.ok('provenance' in lower, JSON.stringify(lower));
    const upper = await judge({
      repository: 'CeerKle/DREICHOR-trading',
      job_workflow_ref: 'ceerKLE/Dreichor-Trading/.github/workflows/build.yml@refs/heads/main',
    });
    assert.ok('provenance' in upper, JSON.stringify(upper));
    const refusals: [Parameters<typeof githubClaims>[0], RegExp][] = [
      [
        { job_workflow_ref: 'ceerkle/dreichor-trading/.github/workflows/Build.yml@refs/heads/main' },
        /not ATTESTATION_SIGNER_WORKFLOW/,
      ],
      [
        { job_workflow_ref: 'ceerkle/dreichor-trading/.GitHub/workflows/build.yml@refs/heads/main' },
        /not ATTESTATION_SIGNER_WORKFLOW/,
      ],
      [{ job_workflow_ref: 'ceerkle/dreichor-trading/.github/workflows/build.yml@' }, /not ATTESTATION_SIGNER_WORKFLOW/],
      [{ ref: 'refs/heads/Main' }, /ATTESTATION_SOURCE_REFS does not allow/],
      [{ repository: 'ceerkle/dreichor-tradinG2' }, /not ATTESTATION_REPOSITORY/],
      // The Kelvin sign folds to "k" under Unicode's rules; GitHub's names are ASCII.
      [{ repository: 'ceer\u212Ale/dreichor-trading' }, /not ATTESTATION_REPOSITORY/],
    ];
    for (const [claims, reason] of refusals) {
      const judged = await judge(claims);
      assert.ok('problem' in judged, JSON.stringify(claims));
      assert.match(judged.problem, reason, JSON.stringify(claims));
    }
  });

  it('takes a signer workflow whose owner/repository differs from ATTESTATION_REPOSITORY only in case', () => {
    assert.equal(
      policy({ ATTESTATION_SIGNER_WORKFLOW: 'Ceerkle/Dreichor-Trading/.github/workflows/build.yml' }).mode,
      'github-attestation',
    );
    assert.throws(
      () => policy({ ATTESTATION_SIGNER_WORKFLOW: 'ceerkle/dreichor-trading/.GITHUB/workflows/build.yml' }),
      /ATTESTATION_SIGNER_WORKFLOW/,
    );
    assert.throws(
      () => policy({ ATTESTATION_SIGNER_WORKFLOW: 'mallory/dreichor-trading/.github/workflows/build.yml' }),
      /ATTESTATION_SIGNER_WORKFLOW/,
    );
  });
});
