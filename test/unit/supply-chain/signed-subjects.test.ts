/**
 * What a valid signature is about: a signature made with the right key, or a certificate from the
 * right workflow, still says nothing for a deploy unless what it signed names the digest being
 * deployed and the source ref it was built from. Each case here is valid in every other respect, so
 * the one refusal it expects comes from the one check it is about.
 */
import assert from 'node:assert/strict';
import { sign } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type AttestationPolicy, type CosignKeyPolicy, verificationPolicy } from '../../../src/config/verification.js';
import { AttestationVerifier } from '../../../src/supply-chain/attestation.js';
import { type GitHubIdentity, identityProblem } from '../../../src/supply-chain/certificate-identity.js';
import { CosignKeyVerifier } from '../../../src/supply-chain/cosign.js';
import { cosignBundle, cosignKey, simpleSigningPayload } from '../../support/cosign.js';
import { type GitHubClaims, githubClaims, provenanceStatement, SigstoreMock } from '../../support/sigstore-mock.js';

const DIGEST = `sha256:${'1'.repeat(64)}`;
const OTHER = `sha256:${'2'.repeat(64)}`;
const dir = mkdtempSync(join(tmpdir(), 'dreichor-signed-subjects-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const file = (text: string): string => {
  files += 1;
  const path = join(dir, `f${files}`);
  writeFileSync(path, text);
  return path;
};

describe('cosign-key: a valid signature of another digest is refused, in both forms', () => {
  const key = cosignKey();
  const verifier = new CosignKeyVerifier(
    verificationPolicy({ IMAGE_VERIFICATION: 'cosign-key', COSIGN_PUBLIC_KEY_FILE: file(key.publicKeyPem) }) as CosignKeyPolicy,
  );
  const legacy = (signedDigest: string) => {
    const payload = simpleSigningPayload('registry.example:5000/dreichor/runtime', signedDigest);
    return { payload, signature: sign('sha256', payload, key.privateKey) };
  };

  it('legacy .sig: the payload names the deployed digest, or it is refused as a signature of another image', () => {
    const { payload, signature } = legacy(DIGEST);
    const good = verifier.judgeSimpleSigning(payload, signature, [DIGEST]);
    assert.ok('provenance' in good, JSON.stringify(good));
    assert.equal(good.provenance.subject_digest, DIGEST);
    // One of the digests a tag may stand for (an index and its platform's manifest) is enough.
    assert.ok('provenance' in verifier.judgeSimpleSigning(payload, signature, [OTHER, DIGEST]));
    for (const digests of [[OTHER], [], [DIGEST.toUpperCase()], [`${DIGEST} `]]) {
      const judged = verifier.judgeSimpleSigning(payload, signature, digests);
      assert.ok('problem' in judged, `accepted for ${JSON.stringify(digests)}`);
      assert.match(judged.problem, /signs another digest/);
    }
    const other = legacy(OTHER);
    const judged = verifier.judgeSimpleSigning(other.payload, other.signature, [DIGEST]);
    assert.ok('problem' in judged && /signs another digest/.test(judged.problem), JSON.stringify(judged));
  });

  it('bundle: the statement names the deployed digest, or it is refused as a signature of another image', () => {
    assert.ok('provenance' in verifier.judgeBundle(Buffer.from(JSON.stringify(cosignBundle(key.privateKey, DIGEST))), [DIGEST]));
    const judged = verifier.judgeBundle(Buffer.from(JSON.stringify(cosignBundle(key.privateKey, OTHER))), [DIGEST]);
    assert.ok('problem' in judged, 'a bundle of another digest was accepted');
    assert.match(judged.problem, /subject is another digest/);
  });
});

describe('github-attestation: the source ref (OID .14) must be there, and allowed', () => {
  let mock: SigstoreMock;
  before(async () => {
    mock = await SigstoreMock.start();
  });
  after(() => mock.close());

  const verifierWith = (refs: string | null) =>
    new AttestationVerifier(
      verificationPolicy({
        IMAGE_VERIFICATION: 'github-attestation',
        SIGSTORE_TRUSTED_ROOT_FILE: file(mock.trustedRootLines()),
        ATTESTATION_REPOSITORY: 'ceerkle/dreichor-trading',
        ATTESTATION_SIGNER_WORKFLOW: 'ceerkle/dreichor-trading/.github/workflows/build.yml',
        ...(refs === null ? {} : { ATTESTATION_SOURCE_REFS: refs }),
      }) as AttestationPolicy,
    );
  const attested = async (claims: GitHubClaims) =>
    Buffer.from(JSON.stringify(await mock.attest(provenanceStatement(DIGEST), claims)));

  it('refuses a certificate without the source-ref extension, or with an empty one, whatever the refs allowed', async () => {
    // No `ref` claim: the mock's Fulcio then issues no OID .14 (nor the legacy .6).
    const { ref: _, ...withoutRef } = githubClaims();
    const missing = await attested(withoutRef as GitHubClaims);
    const empty = await attested(githubClaims({ ref: '' }));
    const good = await attested(githubClaims());
    for (const refs of ['refs/heads/main,refs/tags/v*', 'refs/heads/*', null]) {
      const verifier = verifierWith(refs);
      assert.ok('provenance' in verifier.judge(good, [DIGEST]), `the same certificate with its ref, refs ${refs}`);
      for (const [what, bundle] of [
        ['without OID .14', missing],
        ['with an empty OID .14', empty],
      ] as const) {
        const judged = verifier.judge(bundle, [DIGEST]);
        assert.ok('problem' in judged, `a certificate ${what} passed with ATTESTATION_SOURCE_REFS=${refs}`);
        assert.match(judged.problem, /built from ref (none|""), which ATTESTATION_SOURCE_REFS does not allow/);
      }
    }
  });

  it('the pure check: no ref, or an empty one, fails; any other check failing first is named instead', () => {
    const id: GitHubIdentity = {
      issuer: 'https://token.actions.githubusercontent.com',
      legacyIssuer: null,
      san: 'https://github.com/ceerkle/dreichor-trading/.github/workflows/build.yml@refs/heads/main',
      repository: 'https://github.com/ceerkle/dreichor-trading',
      commit: 'a'.repeat(40),
      ref: 'refs/heads/main',
      runUrl: null,
    };
    for (const refs of ['refs/heads/main', null]) {
      const policy = verificationPolicy({
        IMAGE_VERIFICATION: 'github-attestation',
        SIGSTORE_TRUSTED_ROOT_FILE: file(mock.trustedRootLines()),
        ATTESTATION_REPOSITORY: 'ceerkle/dreichor-trading',
        ATTESTATION_SIGNER_WORKFLOW: 'ceerkle/dreichor-trading/.github/workflows/build.yml',
        ...(refs === null ? {} : { ATTESTATION_SOURCE_REFS: refs }),
      }) as AttestationPolicy;
      assert.equal(identityProblem(id, policy), null);
      assert.match(identityProblem({ ...id, ref: null }, policy) ?? '', /built from ref none/);
      assert.match(identityProblem({ ...id, ref: '' }, policy) ?? '', /built from ref ""/);
    }
  });
});
