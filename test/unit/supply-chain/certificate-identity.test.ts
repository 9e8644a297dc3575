/**
 * Who signed, read from a certificate's extensions and checked against the policy: pure, so every
 * check is tested here with its one failing field (the rest of the identity valid), without signing
 * anything. Written against the mutants StrykerJS left alive (docs/TESTING.md).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AttestationPolicy } from '../../../src/config/verification.js';
import {
  derUtf8String,
  type GitHubIdentity,
  githubIdentity,
  identityProblem,
  OID,
  refAllowed,
  type SignerIdentity,
  signerIdentitySchema,
} from '../../../src/supply-chain/certificate-identity.js';

const ISSUER = 'https://token.actions.githubusercontent.com';
const POLICY: AttestationPolicy = {
  mode: 'github-attestation',
  trustedRoots: [],
  repository: 'ceerkle/dreichor-trading',
  signerWorkflow: 'ceerkle/dreichor-trading/.github/workflows/build.yml',
  sourceRefs: null,
  predicateType: 'https://slsa.dev/provenance/v1',
  issuer: ISSUER,
};
const GOOD: GitHubIdentity = {
  issuer: ISSUER,
  legacyIssuer: null,
  san: 'https://github.com/ceerkle/dreichor-trading/.github/workflows/build.yml@refs/heads/main',
  repository: 'https://github.com/ceerkle/dreichor-trading',
  commit: 'a'.repeat(40),
  ref: 'refs/heads/main',
  runUrl: 'https://github.com/ceerkle/dreichor-trading/actions/runs/1/attempts/1',
};
const problem = (change: Partial<GitHubIdentity>, policy: Partial<AttestationPolicy> = {}) =>
  identityProblem({ ...GOOD, ...change }, { ...POLICY, ...policy });

/** A DER UTF8String in the shortest length form. */
function der(text: string): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  const n = bytes.length;
  const length = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
  return Buffer.concat([Buffer.from([0x0c, ...length]), bytes]);
}
const oid = (dotted: string, value: Uint8Array) => ({ oid: { id: dotted.split('.').map(Number) }, value: new Uint8Array(value) });

describe('identityProblem: each check refuses its one wrong field', () => {
  it('passes the valid identity, with or without a legacy issuer that agrees', () => {
    assert.equal(problem({}), null);
    assert.equal(problem({ legacyIssuer: ISSUER }), null);
  });

  it('refuses a certificate naming two issuers, whichever of them matches', () => {
    assert.match(
      problem({ legacyIssuer: 'https://evil.example' }) ?? '',
      /names two issuers \("https:\/\/token.*OID \.8, "https:\/\/evil/,
    );
    assert.match(problem({ issuer: 'https://evil.example', legacyIssuer: ISSUER }) ?? '', /names two issuers/);
    // Only the legacy issuer: the issuer check itself refuses (and quotes the missing one as none).
    assert.equal(
      problem({ issuer: null, legacyIssuer: ISSUER }),
      'certificate issuer is none, not the configured ATTESTATION_ISSUER',
    );
  });

  it('refuses another issuer', () => {
    assert.equal(
      problem({ issuer: 'https://evil.example' }),
      'certificate issuer is "https://evil.example", not the configured ATTESTATION_ISSUER',
    );
    assert.match(problem({ issuer: `${ISSUER}/` }) ?? '', /certificate issuer is/);
  });

  it('takes the signer workflow at any ref, its owner and repository without case, the rest exactly', () => {
    const at = (san: string | null) => problem({ san });
    assert.equal(at('https://github.com/Ceerkle/Dreichor-Trading/.github/workflows/build.yml@refs/tags/v1'), null);
    for (const san of [
      null,
      '',
      'https://github.com/ceerkle/dreichor-trading/.github/workflows/build.yml@',
      'https://github.com/ceerkle/dreichor-trading/.github/workflows/build.yml',
      'https://github.com/ceerkle/dreichor-trading/.github/workflows/build.yml-evil@refs/heads/main',
      'https://github.com/ceerkle/dreichor-trading/.github/workflows/Build.yml@refs/heads/main',
      'https://github.com/ceerkle/dreichor-tradin/.github/workflows/build.yml@refs/heads/main',
      'https://github.com/ceerkle/dreichor-trading2/.github/workflows/build.yml@refs/heads/main',
      'https://github.com/mallory/dreichor-trading/.github/workflows/build.yml@refs/heads/main',
      'http://github.com/ceerkle/dreichor-trading/.github/workflows/build.yml@refs/heads/main',
      'https://github.com.evil/ceerkle/dreichor-trading/.github/workflows/build.yml@refs/heads/main',
      'https://gitlab.com/ceerkle/dreichor-trading/.github/workflows/build.yml@refs/heads/main',
    ]) {
      const refused = at(san);
      assert.ok(refused !== null, `accepted ${JSON.stringify(san)}`);
      assert.ok(refused.endsWith(', not ATTESTATION_SIGNER_WORKFLOW'), refused);
    }
    assert.equal(at(null), 'signed by workflow none, not ATTESTATION_SIGNER_WORKFLOW');
  });

  it('refuses another source repository, compared without case, nothing after it', () => {
    assert.equal(problem({ repository: 'https://github.com/CEERKLE/dreichor-trading' }), null);
    for (const repository of [
      null,
      'https://github.com/ceerkle/dreichor-trading/',
      'https://github.com/ceerkle/dreichor-trading.git',
      'https://github.com/ceerkle/dreichor-tradinG2',
      'https://github.com/mallory/dreichor-trading',
      'https://example.com/ceerkle/dreichor-trading',
      'ceerkle/dreichor-trading',
    ]) {
      const refused = problem({ repository });
      assert.ok(refused?.startsWith('built from repository '), `accepted ${JSON.stringify(repository)}: ${refused}`);
    }
    assert.equal(problem({ repository: null }), 'built from repository none, not ATTESTATION_REPOSITORY');
  });

  it('refuses a missing or empty source ref (OID .14) even when any ref is allowed, and a ref not allowed', () => {
    assert.equal(problem({ ref: null }), 'built from ref none, which ATTESTATION_SOURCE_REFS does not allow');
    assert.equal(problem({ ref: '' }), 'built from ref "", which ATTESTATION_SOURCE_REFS does not allow');
    assert.equal(problem({ ref: null }, { sourceRefs: ['*'] })?.startsWith('built from ref none'), true);
    assert.equal(problem({ ref: 'refs/heads/main' }, { sourceRefs: ['refs/heads/main'] }), null);
    assert.equal(problem({ ref: 'refs/tags/v2' }, { sourceRefs: ['refs/heads/main', 'refs/tags/v*'] }), null);
    assert.equal(
      problem({ ref: 'refs/heads/dev' }, { sourceRefs: ['refs/heads/main'] }),
      'built from ref "refs/heads/dev", which ATTESTATION_SOURCE_REFS does not allow',
    );
  });

  it('quotes a value cut at 200 characters', () => {
    const long = `https://evil.example/${'x'.repeat(400)}`;
    assert.equal(
      problem({ issuer: long }),
      `certificate issuer is ${JSON.stringify(long.slice(0, 200))}, not the configured ATTESTATION_ISSUER`,
    );
  });
});

describe('refAllowed', () => {
  it('matches exactly, or by the prefix before a trailing *', () => {
    assert.equal(refAllowed('x', null), true);
    assert.equal(refAllowed('refs/heads/main', []), false);
    assert.equal(refAllowed('refs/heads/main', ['refs/heads/main']), true);
    assert.equal(refAllowed('refs/heads/mai', ['refs/heads/main']), false);
    assert.equal(refAllowed('refs/heads/main2', ['refs/heads/main']), false);
    assert.equal(refAllowed('refs/tags/v1', ['refs/tags/v*']), true);
    assert.equal(refAllowed('refs/tags/v', ['refs/tags/v*']), true);
    assert.equal(refAllowed('refs/tags/', ['refs/tags/v*']), false);
    assert.equal(refAllowed('refs/heads/x', ['refs/tags/v*']), false, 'the whole prefix counts, not its first letter');
    assert.equal(refAllowed('refs/tags/v*x', ['refs/tags/v*x']), true, 'a * inside the pattern is literal');
    assert.equal(refAllowed('refs/tags/v1x', ['refs/tags/v*x']), false);
    assert.equal(refAllowed('anything', ['*']), true);
    assert.equal(refAllowed('refs/heads/dev', ['refs/heads/main', 'refs/heads/dev']), true, 'any of the patterns');
  });
});

describe('derUtf8String', () => {
  it('reads the short and both long length forms, and the empty string', () => {
    assert.equal(derUtf8String(Buffer.from([0x0c, 0x00])), '');
    assert.equal(derUtf8String(der('a')), 'a');
    assert.equal(derUtf8String(der('x'.repeat(0x7f))), 'x'.repeat(0x7f));
    assert.equal(derUtf8String(der('y'.repeat(0x80))), 'y'.repeat(0x80));
    assert.equal(derUtf8String(der('z'.repeat(0xff))), 'z'.repeat(0xff));
    assert.equal(derUtf8String(der('w'.repeat(0x100))), 'w'.repeat(0x100));
    assert.equal(derUtf8String(der('v'.repeat(0x1234))), 'v'.repeat(0x1234));
    assert.equal(derUtf8String(der('grüße')), 'grüße');
  });

  it('refuses anything but exactly one DER UTF8String', () => {
    const refused: [string, number[]][] = [
      ['empty', []],
      ['a tag only', [0x0c]],
      ['another tag (PrintableString)', [0x13, 0x01, 0x61]],
      ['an IA5String', [0x16, 0x01, 0x61]],
      ['short form, too short', [0x0c, 0x02, 0x61]],
      ['short form, too long', [0x0c, 0x01, 0x61, 0x61]],
      ['0x81 without its length byte', [0x0c, 0x81]],
      ['0x81 for a length under 0x80', [0x0c, 0x81, 0x01, 0x61]],
      ['0x81 for 0x7f', [0x0c, 0x81, 0x7f, ...Array(0x7f).fill(0x61)]],
      ['0x81, fewer bytes than it says', [0x0c, 0x81, 0x80, 0x61]],
      ['0x82 with one length byte', [0x0c, 0x82, 0x01]],
      ['0x82 for a length under 0x100', [0x0c, 0x82, 0x00, 0xff, ...Array(0xff).fill(0x61)]],
      ['0x83', [0x0c, 0x83, 0x00, 0x00, 0x01, 0x61]],
      ['indefinite length', [0x0c, 0x80, 0x61, 0x00, 0x00]],
      ['0x80 followed by exactly 0x80 bytes', [0x0c, 0x80, ...Array(0x80).fill(0x61)]],
      ['0x83 with what 0x82 would read as 0x100', [0x0c, 0x83, 0x01, 0x00, ...Array(0x100).fill(0x61)]],
      ['0x84 with what 0x82 would read as 0x100', [0x0c, 0x84, 0x01, 0x00, ...Array(0x100).fill(0x61)]],
      ['invalid UTF-8', [0x0c, 0x02, 0xc3, 0x28]],
      ['a lone continuation byte', [0x0c, 0x01, 0x80]],
    ];
    for (const [what, bytes] of refused) assert.equal(derUtf8String(Uint8Array.from(bytes)), null, what);
    assert.equal(derUtf8String(Buffer.concat([der('y'.repeat(0x80)), Buffer.from('x')])), null, 'a byte after a long form');
    assert.equal(derUtf8String(der('y'.repeat(0x80)).subarray(0, 0x80 + 2)), null, 'a long form one byte short');
    assert.equal(derUtf8String(Buffer.concat([der('w'.repeat(0x100)), Buffer.from('x')])), null, 'a byte after a 0x82 form');
  });
});

describe('signerIdentitySchema: what sigstore-js hands over is checked before it is read', () => {
  it('refuses a field of the wrong type or size', () => {
    const ok = { subjectAlternativeName: 'x', extensions: { issuer: ISSUER }, oids: [oid(OID.sourceRepositoryRef, der('r'))] };
    assert.equal(signerIdentitySchema.safeParse(ok).success, true);
    assert.equal(signerIdentitySchema.safeParse({}).success, true);
    for (const [what, value] of [
      ['a SAN that is not a string', { ...ok, subjectAlternativeName: 42 }],
      ['a SAN over 4096 characters', { ...ok, subjectAlternativeName: 'x'.repeat(4097) }],
      ['an issuer that is not a string', { ...ok, extensions: { issuer: 42 } }],
      ['an issuer over 4096 characters', { ...ok, extensions: { issuer: 'x'.repeat(4097) } }],
      ['an OID without its id', { ...ok, oids: [{ oid: {}, value: der('r') }] }],
      ['an OID id of strings', { ...ok, oids: [{ oid: { id: ['1', '3'] }, value: der('r') }] }],
      ['an OID id of fractions', { ...ok, oids: [{ oid: { id: [1.5] }, value: der('r') }] }],
      ['an OID value that is a string', { ...ok, oids: [{ oid: { id: [1, 3] }, value: 'refs/heads/main' }] }],
      ['an OID without a value', { ...ok, oids: [{ oid: { id: [1, 3] } }] }],
      ['more than 256 OIDs', { ...ok, oids: Array.from({ length: 257 }, () => oid(OID.sourceRepositoryRef, der('r'))) }],
    ] as const) {
      assert.equal(signerIdentitySchema.safeParse(value).success, false, what);
    }
  });
});

describe('githubIdentity: each field from its own extension', () => {
  const full: SignerIdentity = {
    subjectAlternativeName: GOOD.san ?? undefined,
    extensions: { issuer: 'https://from-the-extension.example' },
    oids: [
      oid(OID.issuerV2, der(ISSUER)),
      oid(OID.buildSignerUri, der('https://github.com/signer')),
      oid(OID.sourceRepositoryUri, der('https://github.com/ceerkle/dreichor-trading')),
      oid(OID.sourceRepositoryDigest, der('c'.repeat(40))),
      oid(OID.sourceRepositoryRef, der('refs/heads/main')),
      oid(OID.runInvocationUri, der('https://github.com/run')),
      // Last: the legacy issuer is found by its OID, not by its place.
      oid(OID.issuerV1, Buffer.from('https://legacy.example')),
    ],
  };

  it('reads every field', () => {
    assert.deepEqual(githubIdentity(full), {
      issuer: ISSUER,
      legacyIssuer: 'https://legacy.example',
      san: GOOD.san,
      repository: 'https://github.com/ceerkle/dreichor-trading',
      commit: 'c'.repeat(40),
      ref: 'refs/heads/main',
      runUrl: 'https://github.com/run',
    });
  });

  it('falls back to the issuer the verifier read, then to none; misses each absent field', () => {
    const withoutV2 = { ...full, oids: full.oids?.filter((o) => o.oid.id.join('.') !== OID.issuerV2) };
    assert.equal(githubIdentity(withoutV2).issuer, 'https://from-the-extension.example');
    assert.deepEqual(githubIdentity({}), {
      issuer: null,
      legacyIssuer: null,
      san: null,
      repository: null,
      commit: null,
      ref: null,
      runUrl: null,
    });
    assert.equal(githubIdentity({ extensions: {} }).issuer, null);
  });

  it('reads .8 to .21 as DER only, the legacy .1 as plain UTF-8 only', () => {
    const raw = githubIdentity({
      oids: [
        oid(OID.issuerV1, Uint8Array.from([0xc3, 0x28])),
        oid(OID.issuerV2, Buffer.from(ISSUER)),
        oid(OID.sourceRepositoryRef, Buffer.from('refs/heads/main')),
      ],
    });
    assert.equal(raw.legacyIssuer, null, 'invalid UTF-8');
    assert.equal(raw.issuer, null, 'raw bytes in .8');
    assert.equal(raw.ref, null, 'raw bytes in .14');
    // An OID that only starts like .14 (.140) is another extension.
    assert.equal(githubIdentity({ oids: [oid(`${OID.sourceRepositoryRef}0`, der('refs/heads/main'))] }).ref, null);
  });
});
