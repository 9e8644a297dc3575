import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { ConfigError } from '../../../src/config/config.js';
import { type AttestationPolicy, type CosignKeyPolicy, verificationPolicy } from '../../../src/config/verification.js';
import { AttestationVerifier } from '../../../src/supply-chain/attestation.js';
import { derUtf8String, refAllowed } from '../../../src/supply-chain/certificate-identity.js';
import { CosignKeyVerifier } from '../../../src/supply-chain/cosign.js';
import { provenanceFromLabel } from '../../../src/supply-chain/provenance.js';
import { indexSchema, manifestSchema, parseJson } from '../../../src/supply-chain/referrers.js';
import { parseChallenge } from '../../../src/supply-chain/registry.js';
import { parseStatement } from '../../../src/supply-chain/statement.js';
import { parseGeneralizedTime } from '../../../src/supply-chain/timestamp-time.js';
import { cosignBundle, cosignKey, simpleSigningPayload } from '../../support/cosign.js';
import { propertyRuns } from '../../support/sampling.js';
import { githubClaims, provenanceStatement, SigstoreMock } from '../../support/sigstore-mock.js';
import { tempDir } from '../../support/temp-dir.js';

const dir = tempDir('supply-chain');
const DIGEST = `sha256:${'3'.repeat(64)}`;
const file = (name: string, text: string): string => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const ROOT = JSON.stringify({
  mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
  certificateAuthorities: [{}],
  tlogs: [{}],
});
const ATTESTATION = {
  IMAGE_VERIFICATION: 'github-attestation',
  SIGSTORE_TRUSTED_ROOT_FILE: file('root.json', ROOT),
  ATTESTATION_REPOSITORY: 'ceerkle/dreichor-trading',
  ATTESTATION_SIGNER_WORKFLOW: 'ceerkle/dreichor-trading/.github/workflows/build.yml',
};

function refused(raw: Record<string, string | undefined>, variable: string, message?: RegExp): void {
  assert.throws(
    () => verificationPolicy(raw),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError, String(e));
      assert.equal(e.variable, variable, e.message);
      if (message !== undefined) assert.match(e.message, message);
      return true;
    },
  );
}

describe('IMAGE_VERIFICATION and its policy', () => {
  it('is required, with no default, and one of three values', () => {
    refused({}, 'IMAGE_VERIFICATION', /is required/);
    refused({ IMAGE_VERIFICATION: 'sigstore' }, 'IMAGE_VERIFICATION');
    assert.deepEqual(verificationPolicy({ IMAGE_VERIFICATION: 'none' }), { mode: 'none' });
  });

  it('github-attestation: defaults, refs, and every inconsistent combination named', () => {
    const p = verificationPolicy({
      ...ATTESTATION,
      ATTESTATION_SOURCE_REFS: 'refs/heads/main, refs/tags/v*',
    }) as AttestationPolicy;
    assert.equal(p.predicateType, 'https://slsa.dev/provenance/v1');
    assert.equal(p.issuer, 'https://token.actions.githubusercontent.com');
    assert.deepEqual(p.sourceRefs, ['refs/heads/main', 'refs/tags/v*']);
    refused({ ...ATTESTATION, SIGSTORE_TRUSTED_ROOT_FILE: undefined }, 'SIGSTORE_TRUSTED_ROOT_FILE', /required/);
    refused({ ...ATTESTATION, SIGSTORE_TRUSTED_ROOT_FILE: join(dir, 'missing.json') }, 'SIGSTORE_TRUSTED_ROOT_FILE', /ENOENT/);
    refused({ ...ATTESTATION, SIGSTORE_TRUSTED_ROOT_FILE: file('bad.json', '{"mediaType":"x"}') }, 'SIGSTORE_TRUSTED_ROOT_FILE');
    refused({ ...ATTESTATION, SIGSTORE_TRUSTED_ROOT_FILE: file('text.json', 'not json\n') }, 'SIGSTORE_TRUSTED_ROOT_FILE');
    refused({ ...ATTESTATION, ATTESTATION_REPOSITORY: undefined }, 'ATTESTATION_REPOSITORY');
    refused({ ...ATTESTATION, ATTESTATION_REPOSITORY: 'https://github.com/ceerkle/x' }, 'ATTESTATION_REPOSITORY');
    refused(
      { ...ATTESTATION, ATTESTATION_SIGNER_WORKFLOW: 'mallory/tools/.github/workflows/build.yml' },
      'ATTESTATION_SIGNER_WORKFLOW',
      /a workflow of ATTESTATION_REPOSITORY/,
    );
    refused(
      { ...ATTESTATION, ATTESTATION_SIGNER_WORKFLOW: 'ceerkle/dreichor-trading/.github/workflows/../x.yml' },
      'ATTESTATION_SIGNER_WORKFLOW',
    );
    refused({ ...ATTESTATION, ATTESTATION_SOURCE_REFS: 'main' }, 'ATTESTATION_SOURCE_REFS');
    refused({ ...ATTESTATION, ATTESTATION_SOURCE_REFS: 'refs/*/main' }, 'ATTESTATION_SOURCE_REFS');
    refused({ ...ATTESTATION, ATTESTATION_ISSUER: 'http://issuer.example' }, 'ATTESTATION_ISSUER');
    refused(
      { ...ATTESTATION, COSIGN_PUBLIC_KEY_FILE: '/k.pub' },
      'COSIGN_PUBLIC_KEY_FILE',
      /only used with IMAGE_VERIFICATION=cosign-key/,
    );
    refused({ IMAGE_VERIFICATION: 'none', ATTESTATION_REPOSITORY: 'a/b' }, 'ATTESTATION_REPOSITORY', /"none"/);
  });

  it('cosign-key: a PEM public key, its fingerprint; a private key or garbage refused', () => {
    const { publicKeyPem, privateKey } = cosignKey();
    const p = verificationPolicy({
      IMAGE_VERIFICATION: 'cosign-key',
      COSIGN_PUBLIC_KEY_FILE: file('cosign.pub', publicKeyPem),
    }) as CosignKeyPolicy;
    assert.match(p.fingerprint, /^sha256:[0-9a-f]{64}$/);
    refused({ IMAGE_VERIFICATION: 'cosign-key' }, 'COSIGN_PUBLIC_KEY_FILE', /required/);
    refused(
      { IMAGE_VERIFICATION: 'cosign-key', COSIGN_PUBLIC_KEY_FILE: file('garbage.pub', 'hello') },
      'COSIGN_PUBLIC_KEY_FILE',
      /not a PEM public key/,
    );
    const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    refused(
      { IMAGE_VERIFICATION: 'cosign-key', COSIGN_PUBLIC_KEY_FILE: file('cosign.key', pem) },
      'COSIGN_PUBLIC_KEY_FILE',
      /private key/,
    );
    refused(
      { IMAGE_VERIFICATION: 'cosign-key', COSIGN_PUBLIC_KEY_FILE: file('c2.pub', publicKeyPem), ATTESTATION_REPOSITORY: 'a/b' },
      'ATTESTATION_REPOSITORY',
    );
  });
});

describe('the bundle refuses to start without an explicit choice', () => {
  it('exits 2 with one line naming the variable', () => {
    const base = {
      PATH: process.env['PATH'] ?? '',
      ENVIRONMENT: 'dev',
      CF_ACCESS_CLIENT_ID: 'client.access',
      CF_ACCESS_CLIENT_SECRET: 'a-secret-of-enough-length',
      AUDIT_EVENTS_PATH: '/var/lib/dreichor/dev/audit-events',
      SNAPSHOTS_PATH: '/var/lib/dreichor/dev/snapshots',
    };
    const cases: [Record<string, string>, RegExp][] = [
      [{}, /^dreichor-deploy-agent: invalid configuration: IMAGE_VERIFICATION: is required/],
      [
        { ...ATTESTATION, ATTESTATION_SIGNER_WORKFLOW: 'mallory/tools/.github/workflows/build.yml' },
        /^dreichor-deploy-agent: invalid configuration: ATTESTATION_SIGNER_WORKFLOW: /,
      ],
      [
        { IMAGE_VERIFICATION: 'cosign-key', COSIGN_PUBLIC_KEY_FILE: file('not-a-key.pub', 'nope') },
        /^dreichor-deploy-agent: invalid configuration: COSIGN_PUBLIC_KEY_FILE: is not a PEM public key/,
      ],
    ];
    for (const [env, line] of cases) {
      const r = spawnSync(process.execPath, ['dist/agent.js'], { env: { ...base, ...env }, encoding: 'utf8', timeout: 10_000 });
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, line);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
  });
});

describe('the pure parsers of the supply chain', () => {
  it('reads GeneralizedTime by DER rules: any fraction without trailing zeros', () => {
    assert.equal(parseGeneralizedTime('20261201012345Z')?.toISOString(), '2026-12-01T01:23:45.000Z');
    assert.equal(parseGeneralizedTime('20261201012345.52Z')?.toISOString(), '2026-12-01T01:23:45.520Z');
    assert.equal(parseGeneralizedTime('20261201012345.5Z')?.toISOString(), '2026-12-01T01:23:45.500Z');
    assert.equal(parseGeneralizedTime('20261201012345.123456789Z')?.toISOString(), '2026-12-01T01:23:45.123Z');
    for (const bad of [
      '20261201012345.50Z',
      '20261201012345.Z',
      '20261301012345Z',
      '20260230012345Z',
      '20261201012345+0100',
      '2026120101234Z',
    ]) {
      assert.equal(parseGeneralizedTime(bad), null, bad);
    }
  });

  it('reads certificate extensions as DER UTF8Strings, exactly', () => {
    const der = (s: string) => Buffer.concat([Buffer.from([0x0c, Buffer.byteLength(s)]), Buffer.from(s)]);
    assert.equal(derUtf8String(der('refs/heads/main')), 'refs/heads/main');
    assert.equal(derUtf8String(Buffer.from('refs/heads/main')), null, 'raw bytes (the legacy form) are not read as DER');
    assert.equal(derUtf8String(Buffer.concat([der('a'), Buffer.from('x')])), null, 'nothing may follow');
    const long = 'x'.repeat(200);
    assert.equal(derUtf8String(Buffer.concat([Buffer.from([0x0c, 0x81, 200]), Buffer.from(long)])), long);
    assert.equal(
      derUtf8String(Buffer.from([0x0c, 0x81, 0x05, 0x61, 0x61, 0x61, 0x61, 0x61])),
      null,
      'not the shortest length form',
    );
  });

  it('matches refs exactly or by a trailing-* prefix', () => {
    assert.ok(refAllowed('refs/tags/v1.2', ['refs/tags/v*']));
    assert.ok(!refAllowed('refs/heads/main-evil', ['refs/heads/main']));
    assert.ok(refAllowed('anything', null));
  });

  it('parses registry challenges', () => {
    assert.deepEqual(parseChallenge('Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull"'), {
      scheme: 'bearer',
      params: Object.assign(Object.create(null) as object, {
        realm: 'https://ghcr.io/token',
        service: 'ghcr.io',
        scope: 'repository:a/b:pull',
      }),
    });
    assert.equal(parseChallenge('Basic realm="registry"')?.scheme, 'basic');
  });

  it('reads a container label of provenance only when it is whole', () => {
    assert.equal(provenanceFromLabel('{"verified_by":"cosign-key"}'), null);
    assert.equal(provenanceFromLabel('not json'), null);
    assert.equal(provenanceFromLabel(undefined), null);
  });
});

describe('arbitrary bytes at every parser of registry answers and bundles (property)', () => {
  let mock: SigstoreMock;
  let attestations: AttestationVerifier;
  let cosign: CosignKeyVerifier;
  let validBundle: string;
  let validAttestation: string;
  before(async () => {
    mock = await SigstoreMock.start();
    attestations = new AttestationVerifier(
      verificationPolicy({
        ...ATTESTATION,
        SIGSTORE_TRUSTED_ROOT_FILE: file('mock-root.jsonl', mock.trustedRootLines()),
      }) as AttestationPolicy,
    );
    const key = cosignKey();
    cosign = new CosignKeyVerifier(
      verificationPolicy({
        IMAGE_VERIFICATION: 'cosign-key',
        COSIGN_PUBLIC_KEY_FILE: file('k.pub', key.publicKeyPem),
      }) as CosignKeyPolicy,
    );
    validBundle = JSON.stringify(cosignBundle(key.privateKey, DIGEST));
    validAttestation = JSON.stringify(await mock.attest(provenanceStatement(DIGEST), githubClaims()));
  });
  after(() => mock.close());

  // Bytes, JSON-ish text, and mutations of real bundles: the parsers must answer, never throw.
  const mutated = (valid: () => string) =>
    fc.tuple(fc.nat(), fc.string({ maxLength: 8 })).map(([at, s]) => {
      const text = valid();
      const i = at % (text.length + 1);
      return Buffer.from(text.slice(0, i) + s + text.slice(i + 1));
    });
  const inputs = fc.oneof(
    fc.uint8Array({ maxLength: 2048 }).map((b) => Buffer.from(b)),
    fc.json().map((j) => Buffer.from(j)),
    mutated(() => validBundle),
    mutated(() => validAttestation),
  );

  it('judges anything as a refusal or a verdict, without throwing', () => {
    fc.assert(
      fc.property(inputs, (bytes) => {
        for (const judged of [
          attestations.judge(bytes, [DIGEST]),
          cosign.judgeBundle(bytes, [DIGEST]),
          cosign.judgeSimpleSigning(bytes, bytes, [DIGEST]),
        ]) {
          if ('problem' in judged) assert.equal(typeof judged.problem, 'string');
        }
        parseJson(bytes, manifestSchema);
        parseJson(bytes, indexSchema);
        parseStatement(bytes);
        derUtf8String(bytes);
        parseGeneralizedTime(bytes.toString('latin1'));
        parseChallenge(bytes.toString('latin1'));
        provenanceFromLabel(bytes.toString('utf8'));
      }),
      propertyRuns(300),
    );
  });

  it('the unmutated attestation verifies: the mutations above start from a valid one', () => {
    assert.ok('provenance' in attestations.judge(Buffer.from(validAttestation), [DIGEST]));
  });

  it('a cosign bundle verifies only with its key and only for its digest', () => {
    assert.ok('provenance' in cosign.judgeBundle(Buffer.from(validBundle), [DIGEST]));
    const other = `sha256:${'4'.repeat(64)}`;
    const judged = cosign.judgeBundle(Buffer.from(validBundle), [other]);
    assert.ok('problem' in judged && /another digest/.test(judged.problem));
    const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const forged = cosign.judgeBundle(Buffer.from(JSON.stringify(cosignBundle(stranger, DIGEST))), [DIGEST]);
    assert.ok('problem' in forged && /not made with COSIGN_PUBLIC_KEY_FILE/.test(forged.problem));
    const payload = simpleSigningPayload('r', DIGEST);
    assert.ok('problem' in cosign.judgeSimpleSigning(payload, Buffer.from('x'), [DIGEST]));
  });
});
