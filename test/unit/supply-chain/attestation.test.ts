import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type AttestationPolicy, verificationPolicy } from '../../../src/config/verification.js';
import { AttestationVerifier } from '../../../src/supply-chain/attestation.js';
import { githubClaims, type Instance, provenanceStatement, SigstoreMock } from '../../support/sigstore-mock.js';
import { tempDir } from '../../support/temp-dir.js';

/**
 * The attestation checks on real bundles: signed through @sigstore/mock's Fulcio, Rekor and TSA on
 * 127.0.0.1 by @sigstore/sign, judged by the agent's verifier (sigstore-js) against a trusted root
 * built from the mock's keys. The registry side is in test/integration/supply-chain*.test.ts.
 */
const DIGEST = `sha256:${'1'.repeat(64)}`;
const OTHER = `sha256:${'2'.repeat(64)}`;
const dir = tempDir('attestation');

let mock: SigstoreMock;
let n = 0;

function policy(roots: string, overrides: Record<string, string> = {}): AttestationPolicy {
  n += 1;
  const file = join(dir, `root-${n}.jsonl`);
  writeFileSync(file, roots);
  const p = verificationPolicy({
    IMAGE_VERIFICATION: 'github-attestation',
    SIGSTORE_TRUSTED_ROOT_FILE: file,
    ATTESTATION_REPOSITORY: 'ceerkle/dreichor-trading',
    ATTESTATION_SIGNER_WORKFLOW: 'ceerkle/dreichor-trading/.github/workflows/build.yml',
    ATTESTATION_SOURCE_REFS: 'refs/heads/main,refs/tags/v*',
    ...overrides,
  });
  assert.equal(p.mode, 'github-attestation');
  return p as AttestationPolicy;
}

const blob = (bundle: object): Buffer => Buffer.from(JSON.stringify(bundle));

describe('GitHub attestations, verified offline against the trusted root', () => {
  let both: AttestationVerifier;
  before(async () => {
    mock = await SigstoreMock.start();
    both = new AttestationVerifier(policy(mock.trustedRootLines()));
  });
  after(() => mock.close());

  for (const instance of ['public-good', 'github'] as const satisfies Instance[]) {
    it(`accepts a provenance attestation of the digest from the signer workflow (${instance}), with its provenance`, async () => {
      const bundle = await mock.attest(provenanceStatement(DIGEST), githubClaims(), instance);
      const judged = both.judge(blob(bundle), [DIGEST]);
      assert.ok('provenance' in judged, JSON.stringify(judged));
      assert.deepEqual(judged.provenance, {
        verified_by: 'github-attestation',
        subject_digest: DIGEST,
        repository: 'https://github.com/ceerkle/dreichor-trading',
        commit: 'a'.repeat(40),
        ref: 'refs/heads/main',
        workflow: 'https://github.com/ceerkle/dreichor-trading/.github/workflows/build.yml@refs/heads/main',
        run_url: 'https://github.com/ceerkle/dreichor-trading/actions/runs/4242/attempts/1',
        predicate_type: 'https://slsa.dev/provenance/v1',
        key_fingerprint: null,
      });
    });
  }

  it("refuses a bundle of one instance against the other's root only (chain, log or timestamp missing)", async () => {
    const onlyGitHub = new AttestationVerifier(policy(JSON.stringify(mock.trustedRoot('github'))));
    const judged = onlyGitHub.judge(blob(await mock.attest(provenanceStatement(DIGEST), githubClaims(), 'public-good')), [
      DIGEST,
    ]);
    assert.ok('problem' in judged);
    assert.match(judged.problem, /does not verify against SIGSTORE_TRUSTED_ROOT_FILE/);
  });

  it('names the failed check: workflow, repository, ref, issuer, predicate type, subject', async () => {
    const cases: [Parameters<typeof githubClaims>[0], RegExp][] = [
      [
        { job_workflow_ref: 'ceerkle/dreichor-trading/.github/workflows/other.yml@refs/heads/main' },
        /signed by workflow .*other\.yml.*not ATTESTATION_SIGNER_WORKFLOW/,
      ],
      [
        { job_workflow_ref: 'ceerkle/dreichor-trading/.github/workflows/build.yml-evil@refs/heads/main' },
        /not ATTESTATION_SIGNER_WORKFLOW/,
      ],
      [
        { repository: 'mallory/dreichor-trading' },
        /built from repository "https:\/\/github.com\/mallory\/dreichor-trading", not ATTESTATION_REPOSITORY/,
      ],
      [{ ref: 'refs/heads/feature' }, /built from ref "refs\/heads\/feature", which ATTESTATION_SOURCE_REFS does not allow/],
      [
        { iss: 'https://accounts.example.com' },
        /certificate issuer is "https:\/\/accounts.example.com", not the configured ATTESTATION_ISSUER/,
      ],
    ];
    for (const [claims, reason] of cases) {
      const judged = both.judge(blob(await mock.attest(provenanceStatement(DIGEST), githubClaims(claims))), [DIGEST]);
      assert.ok('problem' in judged, JSON.stringify(claims));
      assert.match(judged.problem, reason);
    }
    const tagged = both.judge(blob(await mock.attest(provenanceStatement(DIGEST), githubClaims({ ref: 'refs/tags/v1.4.2' }))), [
      DIGEST,
    ]);
    assert.ok('provenance' in tagged, 'refs/tags/v* allows a version tag');

    const sbom = both.judge(
      blob(await mock.attest(provenanceStatement(DIGEST, 'https://spdx.dev/Document/v2.3'), githubClaims())),
      [DIGEST],
    );
    assert.ok('problem' in sbom);
    assert.match(sbom.problem, /predicate type "https:\/\/spdx.dev\/Document\/v2.3", not ATTESTATION_PREDICATE_TYPE/);
    const other = both.judge(blob(await mock.attest(provenanceStatement(OTHER), githubClaims())), [DIGEST]);
    assert.ok('problem' in other);
    assert.match(other.problem, /subject is another digest/);
  });

  it('refuses a bundle whose statement was changed after signing', async () => {
    const bundle = (await mock.attest(provenanceStatement(OTHER), githubClaims())) as { dsseEnvelope: { payload: string } };
    bundle.dsseEnvelope.payload = Buffer.from(JSON.stringify(provenanceStatement(DIGEST))).toString('base64');
    const judged = both.judge(blob(bundle), [DIGEST]);
    assert.ok('problem' in judged);
    assert.match(judged.problem, /does not verify/);
  });

  it('verifies every signed timestamp, whatever the fraction of its second (RFC 3161 wrinkle)', async () => {
    // The mock's TSA writes ".52Z" about one time in ten; thirty signatures make one all but certain.
    const github = new AttestationVerifier(policy(JSON.stringify(mock.trustedRoot('github'))));
    for (let i = 0; i < 30; i++) {
      const judged = github.judge(blob(await mock.attest(provenanceStatement(DIGEST), githubClaims(), 'github')), [DIGEST]);
      assert.ok('provenance' in judged, `signature ${i}: ${JSON.stringify(judged)}`);
    }
  });
});
