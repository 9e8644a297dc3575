import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Provenance, provenanceFromLabel, provenanceLabel } from '../../../src/supply-chain/provenance.js';
import { keyProvenance } from '../../support/registry-fixture.js';

/**
 * The provenance kept in a container's label (provenance.ts): read back exactly as written, and a
 * label that is not exactly the agent's shape is shown as absent, never trusted half.
 */
const PROVENANCE: Provenance = keyProvenance(`sha256:${'a'.repeat(64)}`, 'f'.repeat(64));

describe('provenance label', () => {
  it('reads back what it wrote', () => {
    assert.deepEqual(provenanceFromLabel(provenanceLabel(PROVENANCE)), PROVENANCE);
    const attested: Provenance = {
      ...PROVENANCE,
      verified_by: 'github-attestation',
      repository: 'https://github.com/o/r',
      commit: 'c'.repeat(40),
      ref: 'refs/heads/main',
      workflow: 'https://github.com/o/r/.github/workflows/build.yml@refs/heads/main',
      run_url: 'https://github.com/o/r/actions/runs/1/attempts/1',
      predicate_type: 'https://slsa.dev/provenance/v1',
      key_fingerprint: null,
    };
    assert.deepEqual(provenanceFromLabel(provenanceLabel(attested)), attested);
  });

  it('absent, not JSON, or longer than 8192 characters (even when the JSON inside is valid): null', () => {
    assert.equal(provenanceFromLabel(undefined), null);
    assert.equal(provenanceFromLabel('{'), null);
    const padded = `${' '.repeat(8192)}${provenanceLabel(PROVENANCE)}`;
    assert.equal(provenanceFromLabel(padded), null);
    const justFits = `${' '.repeat(8192 - provenanceLabel(PROVENANCE).length)}${provenanceLabel(PROVENANCE)}`;
    assert.equal(justFits.length, 8192);
    assert.deepEqual(provenanceFromLabel(justFits), PROVENANCE);
  });

  it('another shape is refused whole: an extra field, a missing one, another mode, a digest that is not one', () => {
    const label = (p: object) => provenanceFromLabel(JSON.stringify(p));
    assert.equal(label({ ...PROVENANCE, trusted: true }), null);
    const { commit: _, ...missing } = PROVENANCE;
    assert.equal(label(missing), null);
    assert.equal(label({ ...PROVENANCE, verified_by: 'none' }), null);
    for (const subject_digest of [
      `sha256:${'A'.repeat(64)}`,
      `sha256:${'a'.repeat(63)}`,
      ` sha256:${'a'.repeat(64)}`,
      `sha256:${'a'.repeat(64)}\n`,
    ]) {
      assert.equal(label({ ...PROVENANCE, subject_digest }), null, subject_digest);
    }
    assert.equal(label({ ...PROVENANCE, key_fingerprint: 'f'.repeat(129) }), null);
  });
});
