/**
 * The pure reading of what a signature covers: a bundle's media type and version, an in-toto
 * statement, a DSSE envelope, the digest a statement names. Each case is one character or one field
 * away from a valid value. Written against the mutants StrykerJS left alive (docs/TESTING.md).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  bundleVersion,
  bundleVersionProblem,
  isBundleType,
  UNDECIDED_ARTIFACT_TYPES,
} from '../../../src/supply-chain/bundle-media.js';
import { coveredDigest, dsseEnvelopeSchema, parseStatement } from '../../../src/supply-chain/statement.js';

const V03 = 'application/vnd.dev.sigstore.bundle.v0.3+json';

describe('bundle media types', () => {
  it('reads the version of both spellings, of any number of digits, and nothing around them', () => {
    assert.equal(bundleVersion(V03), '0.3');
    assert.equal(bundleVersion('application/vnd.dev.sigstore.bundle+json;version=0.2'), '0.2');
    assert.equal(bundleVersion('application/vnd.dev.sigstore.bundle+json;version=10.12'), '10.12');
    assert.equal(bundleVersion('application/vnd.dev.sigstore.bundle.v10.12+json'), '10.12');
    for (const other of [
      `x${V03}`,
      `${V03}x`,
      `${V03};version=0.3`,
      'application/vnd.dev.sigstore.bundle+json',
      'application/json',
      '',
    ]) {
      assert.equal(bundleVersion(other), null, other);
      assert.equal(isBundleType(other), false, other);
    }
    assert.equal(isBundleType(V03), true);
  });

  it('accepts v0.2 and v0.3 only, and only a string', () => {
    assert.equal(bundleVersionProblem(V03), null);
    assert.equal(bundleVersionProblem('application/vnd.dev.sigstore.bundle+json;version=0.2'), null);
    assert.match(
      bundleVersionProblem('application/vnd.dev.sigstore.bundle.v0.1+json') ?? '',
      /^it is a v0\.1 bundle; only v0\.2 and v0\.3/,
    );
    assert.match(bundleVersionProblem('application/vnd.dev.sigstore.bundle.v0.30+json') ?? '', /^it is a v0\.30 bundle/);
    // A JSON array whose one element is the type reads as that string when coerced: still not a string.
    for (const value of [[V03], undefined, 3, { toString: () => V03 }]) {
      assert.equal(bundleVersionProblem(value), 'its mediaType is not a Sigstore bundle type', JSON.stringify(value));
    }
  });

  it('leaves a referrer listed without a type, or with the empty config type, to its manifest', () => {
    assert.deepEqual([...UNDECIDED_ARTIFACT_TYPES].sort(), ['', 'application/vnd.oci.empty.v1+json']);
  });
});

const statement = (change: object = {}) => ({
  _type: 'https://in-toto.io/Statement/v1',
  subject: [{ name: 'runtime', digest: { sha256: '1'.repeat(64) } }],
  predicateType: 'https://slsa.dev/provenance/v1',
  predicate: {},
  ...change,
});
const parse = (value: unknown) => parseStatement(Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)));

describe('in-toto statements', () => {
  it('reads v1 and v0.1 statements', () => {
    assert.equal(parse(statement())?.predicateType, 'https://slsa.dev/provenance/v1');
    assert.notEqual(parse(statement({ _type: 'https://in-toto.io/Statement/v0.1' })), null);
    assert.notEqual(parse(statement({ subject: [{ digest: { sha256: 'a' } }] })), null, 'a subject needs no name');
  });

  it('refuses anything else, as null, never a crash', () => {
    for (const [what, value] of [
      ['not JSON', '{'],
      ['a type with something before it', statement({ _type: 'xhttps://in-toto.io/Statement/v1' })],
      ['a type with something after it', statement({ _type: 'https://in-toto.io/Statement/v1x' })],
      ['another version', statement({ _type: 'https://in-toto.io/Statement/v2' })],
      ['no subject', statement({ subject: [] })],
      ['a subject without a digest', statement({ subject: [{ name: 'runtime' }] })],
      ['a digest that is not a string', statement({ subject: [{ digest: { sha256: 1 } }] })],
      ['a digest over 256 characters', statement({ subject: [{ digest: { sha256: 'a'.repeat(257) } }] })],
      ['an algorithm name over 32 characters', statement({ subject: [{ digest: { ['a'.repeat(33)]: 'a' } }] })],
      ['a name over 1024 characters', statement({ subject: [{ name: 'n'.repeat(1025), digest: { sha256: 'a' } }] })],
      ['a name that is not a string', statement({ subject: [{ name: 1, digest: { sha256: 'a' } }] })],
      ['more than 1024 subjects', statement({ subject: Array.from({ length: 1025 }, () => ({ digest: { sha256: 'a' } })) })],
      ['no predicate type', statement({ predicateType: undefined })],
    ] as const) {
      assert.equal(parse(value), null, what);
    }
  });

  it('names the digest any of its subjects covers, exactly', () => {
    const DIGEST = `sha256:${'1'.repeat(64)}`;
    const OTHER = `sha256:${'2'.repeat(64)}`;
    const two = parse(statement({ subject: [{ digest: { sha256: '2'.repeat(64) } }, { digest: { sha256: '1'.repeat(64) } }] }));
    assert.ok(two !== null);
    assert.equal(coveredDigest(two, [DIGEST]), DIGEST, 'the second subject covers it');
    assert.equal(coveredDigest(two, [`sha256:${'3'.repeat(64)}`, OTHER]), OTHER);
    const one = parse(statement());
    assert.ok(one !== null);
    assert.equal(coveredDigest(one, [`sha256:${'1'.repeat(64).toUpperCase()}A`]), null);
    assert.equal(coveredDigest(one, []), null);
    const sha512 = parse(statement({ subject: [{ digest: { sha512: '1'.repeat(64) } }] }));
    assert.ok(sha512 !== null);
    assert.equal(coveredDigest(sha512, [DIGEST]), null, 'another algorithm with the same hex');
  });
});

describe('DSSE envelopes', () => {
  const envelope = (signatures: unknown) => ({ payloadType: 'application/vnd.in-toto+json', payload: 'e30=', signatures });
  it('takes one to 16 signatures, each a bounded string, with an optional bounded key id', () => {
    assert.equal(dsseEnvelopeSchema.safeParse(envelope([{ sig: 'c2ln' }])).success, true);
    assert.equal(dsseEnvelopeSchema.safeParse(envelope([{ sig: 'c2ln', keyid: '' }])).success, true);
    for (const [what, signatures] of [
      ['none', []],
      ['17', Array.from({ length: 17 }, () => ({ sig: 'c2ln' }))],
      ['one without sig', [{}]],
      ['a sig that is not a string', [{ sig: 1 }]],
      ['a sig over 16 KiB', [{ sig: 'a'.repeat(16 * 1024 + 1) }]],
      ['a key id over 256 characters', [{ sig: 'c2ln', keyid: 'k'.repeat(257) }]],
    ] as const) {
      assert.equal(dsseEnvelopeSchema.safeParse(envelope(signatures)).success, false, what);
    }
  });
});
