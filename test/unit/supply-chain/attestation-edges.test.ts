import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type AttestationPolicy, verificationPolicy } from '../../../src/config/verification.js';
import { AgentError } from '../../../src/errors.js';
import { AttestationVerifier } from '../../../src/supply-chain/attestation.js';
import { RegistryClient } from '../../../src/supply-chain/registry.js';
import { OCI_MANIFEST, ScriptedRegistry } from '../../support/scripted-registry.js';
import { githubClaims, provenanceStatement, SigstoreMock } from '../../support/sigstore-mock.js';
import { tempDir } from '../../support/temp-dir.js';

/**
 * The attestation checks that attestation.test.ts does not reach: what each trusted root requires
 * (a log entry, an SCT), bundles that are not a signed in-toto statement, what a refusal says, and
 * the check through a registry (its referrers). Real signatures by the mock Sigstore instances.
 */
const DIGEST = `sha256:${'1'.repeat(64)}`;
const V03 = 'application/vnd.dev.sigstore.bundle.v0.3+json';
const dir = tempDir('attestation-edges');
const blob = (bundle: object): Buffer => Buffer.from(JSON.stringify(bundle));

let mock: SigstoreMock;
let n = 0;
function verifier(...roots: object[]): AttestationVerifier {
  n += 1;
  const file = join(dir, `root-${n}.jsonl`);
  writeFileSync(file, roots.map((r) => JSON.stringify(r)).join('\n'));
  const policy = verificationPolicy({
    IMAGE_VERIFICATION: 'github-attestation',
    SIGSTORE_TRUSTED_ROOT_FILE: file,
    ATTESTATION_REPOSITORY: 'ceerkle/dreichor-trading',
    ATTESTATION_SIGNER_WORKFLOW: 'ceerkle/dreichor-trading/.github/workflows/build.yml',
  });
  assert.equal(policy.mode, 'github-attestation');
  return new AttestationVerifier(policy as AttestationPolicy);
}

const refused = (judged: ReturnType<AttestationVerifier['judge']>) => {
  assert.ok('problem' in judged, `refused, not ${JSON.stringify(judged)}`);
  return judged;
};

describe('attestations: what the trusted root requires, and what is no statement', () => {
  let publicGood: Record<string, unknown>;
  let github: Record<string, unknown>;
  /** A good attestation of DIGEST (public-good: certificate with an SCT, a Rekor entry). */
  let good: object;
  before(async () => {
    mock = await SigstoreMock.start();
    publicGood = mock.trustedRoot('public-good') as Record<string, unknown>;
    github = mock.trustedRoot('github') as Record<string, unknown>;
    good = await mock.attest(provenanceStatement(DIGEST), githubClaims());
  });
  after(() => mock.close());

  it('requires a transparency-log entry where the root has a log, even with a signed timestamp', async () => {
    // Public-good's certificate (with its SCT) and a timestamp from the TSA, but no Rekor entry.
    const unlogged = blob(await mock.attest(provenanceStatement(DIGEST), githubClaims(), 'public-good', { witness: 'tsa' }));
    const withTsa = { ...publicGood, timestampAuthorities: github['timestampAuthorities'] };
    assert.ok('provenance' in verifier({ ...withTsa, tlogs: [] }).judge(unlogged, [DIGEST]), 'the premise: good but for the log');
    assert.equal(
      refused(verifier(withTsa).judge(unlogged, [DIGEST])).problem,
      'its signature does not verify against SIGSTORE_TRUSTED_ROOT_FILE (TLOG_ERROR: expected 1 tlog entries, got 0)',
    );
  });

  it('requires an SCT in the certificate where the root has a CT log', async () => {
    // GitHub's CA (no SCT) with a Rekor entry.
    const noSct = blob(await mock.attest(provenanceStatement(DIGEST), githubClaims(), 'github', { witness: 'rekor' }));
    const githubCa = { ...publicGood, certificateAuthorities: github['certificateAuthorities'] };
    assert.ok('provenance' in verifier({ ...githubCa, ctlogs: [] }).judge(noSct, [DIGEST]), 'the premise: good but for the SCT');
    assert.equal(
      refused(verifier(githubCa).judge(noSct, [DIGEST])).problem,
      'its signature does not verify against SIGSTORE_TRUSTED_ROOT_FILE (CERTIFICATE_ERROR: expected 1 SCTs, got 0)',
    );
  });

  it("names every root's refusal, each with sigstore-js's code; a bundle that does not parse as far, by its message", () => {
    const twice = refused(verifier(github, github).judge(blob(good), [DIGEST]));
    assert.equal(twice.rank, 1);
    assert.equal(
      twice.problem,
      'its signature does not verify against SIGSTORE_TRUSTED_ROOT_FILE (CERTIFICATE_ERROR: Failed to verify certificate chain; CERTIFICATE_ERROR: Failed to verify certificate chain)',
    );
    const broken = structuredClone(good) as { verificationMaterial: { certificate: { rawBytes: string } } };
    broken.verificationMaterial.certificate.rawBytes = Buffer.from('not a certificate').toString('base64');
    const unread = refused(verifier(publicGood).judge(blob(broken), [DIGEST]));
    assert.equal(unread.rank, 1);
    assert.equal(unread.problem, 'its signature does not verify against SIGSTORE_TRUSTED_ROOT_FILE (request past end of buffer)');
  });

  it('refuses what is no bundle, or holds no DSSE in-toto statement, before any signature is checked (rank 0)', async () => {
    const v = verifier(publicGood);
    assert.deepEqual(v.judge(Buffer.from('{"not":"a bundle"}'), [DIGEST]), { rank: 0, problem: 'not a valid Sigstore bundle' });
    const noDsse = structuredClone(good) as Record<string, unknown>;
    delete noDsse['dsseEnvelope'];
    noDsse['messageSignature'] = {
      messageDigest: { algorithm: 'SHA2_256', digest: Buffer.alloc(32).toString('base64') },
      signature: Buffer.alloc(64).toString('base64'),
    };
    const problem = 'the bundle holds no in-toto statement (DSSE)';
    assert.deepEqual(v.judge(blob(noDsse), [DIGEST]), { rank: 0, problem });
    // Signed, and the payload is a statement of DIGEST, but the signed payload type says it is not one.
    const json = await mock.attest(provenanceStatement(DIGEST), githubClaims(), 'public-good', {
      payloadType: 'application/json',
    });
    assert.deepEqual(v.judge(blob(json), [DIGEST]), { rank: 0, problem });
  });

  it('refuses a signed payload that is no statement (rank 2), and names a long predicate type cut at 200', async () => {
    const v = verifier(publicGood);
    const prose = await mock.attest(Buffer.from('not a statement'), githubClaims());
    assert.deepEqual(v.judge(blob(prose), [DIGEST]), { rank: 2, problem: 'its payload is not an in-toto statement' });
    const long = `https://example.com/${'p'.repeat(300)}`;
    const other = refused(v.judge(blob(await mock.attest(provenanceStatement(DIGEST, long), githubClaims())), [DIGEST]));
    assert.equal(other.problem, `predicate type "${long.slice(0, 200)}", not ATTESTATION_PREDICATE_TYPE`);
  });

  it('refuses a certificate whose identity does not read (a SAN over 4096 characters, rank 4)', async () => {
    const workflow = `ceerkle/dreichor-trading/.github/workflows/${'x'.repeat(5000)}.yml@refs/heads/main`;
    const bundle = await mock.attest(provenanceStatement(DIGEST), githubClaims({ job_workflow_ref: workflow }));
    assert.deepEqual(verifier(publicGood).judge(blob(bundle), [DIGEST]), {
      rank: 4,
      problem: 'its certificate carries no readable identity',
    });
  });

  describe('through the registry', () => {
    let registry: ScriptedRegistry;
    before(async () => {
      registry = await ScriptedRegistry.start();
    });
    after(() => registry.close());

    /** `bundle` stored as a referrer of DIGEST (the referrers API), announced and stored as `type`. */
    const refer = (bundle: object, type: string) => {
      const layer = registry.blob(blob(bundle));
      const config = registry.blob(Buffer.from('{}'));
      const manifest = registry.manifest(
        {
          schemaVersion: 2,
          mediaType: OCI_MANIFEST,
          artifactType: type,
          config: { ...config, mediaType: 'application/vnd.oci.empty.v1+json' },
          layers: [{ ...layer, mediaType: type }],
          subject: { mediaType: OCI_MANIFEST, digest: DIGEST, size: 1 },
        },
        OCI_MANIFEST,
      );
      registry.referrers.set(DIGEST, [...(registry.referrers.get(DIGEST) ?? []), { ...manifest, artifactType: type }]);
    };
    const client = () =>
      new RegistryClient({ host: registry.host, path: registry.path, credentials: null }, AbortSignal.timeout(10_000));

    it("finds the image's attestation among its referrers and verifies it", async () => {
      registry.reset();
      refer(good, V03);
      const provenance = await verifier(publicGood).verify(client(), [DIGEST]);
      assert.equal(provenance.subject_digest, DIGEST);
      assert.equal(provenance.verified_by, 'github-attestation');
    });

    it('judges no referrer of another type, however good its bytes: no attestation found', async () => {
      registry.reset();
      refer(good, 'application/spdx+json');
      await assert.rejects(verifier(publicGood).verify(client(), [DIGEST]), (e: unknown) => {
        assert.ok(e instanceof AgentError);
        assert.equal(e.status, 422);
        assert.match(e.reason, new RegExp(`^image not verified: no attestation found for ${DIGEST} \\(referrers API`));
        return true;
      });
    });
  });
});
