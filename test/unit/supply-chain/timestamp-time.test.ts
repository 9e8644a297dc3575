import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseGeneralizedTime, readSigningTimeStrictly } from '../../../src/supply-chain/timestamp-time.js';

/**
 * The RFC 3161 time read by DER's rules (timestamp-time.ts), on shapes of @sigstore/core's parsed
 * timestamp built here: the signing time is replaced only when its genTime is a GeneralizedTime read
 * strictly; any other shape keeps the library's reading (which then refuses what it cannot read).
 */
const LIBRARY = new Date('2000-01-01T00:00:00.000Z');
interface Shape {
  signingTime: Date;
  tstInfo?: unknown;
}
/** A parsed timestamp whose fifth TSTInfo field is `genTime`, the way @sigstore/core holds it. */
const timestamp = (genTime: unknown): Shape => {
  const shape: Shape = { signingTime: LIBRARY, tstInfo: { root: { subs: [0, 1, 2, 3, genTime] } } };
  return shape;
};
const generalized = (text: string, isGeneralizedTime: unknown = () => true) => ({
  tag: { isGeneralizedTime },
  value: new Uint8Array(Buffer.from(text, 'latin1')),
});
const read = (t: Shape): string => {
  readSigningTimeStrictly(t);
  return t.signingTime.toISOString();
};

describe('timestamp time: GeneralizedTime by DER rules', () => {
  it('the fraction to the millisecond: one, two, three digits, finer dropped', () => {
    assert.equal(parseGeneralizedTime('20261201012345.1Z')?.toISOString(), '2026-12-01T01:23:45.100Z');
    assert.equal(parseGeneralizedTime('20261201012345.001Z')?.toISOString(), '2026-12-01T01:23:45.001Z');
    assert.equal(parseGeneralizedTime('20261201012345.0001Z')?.toISOString(), '2026-12-01T01:23:45.000Z');
    assert.equal(parseGeneralizedTime('19991231235959.999999999Z')?.toISOString(), '1999-12-31T23:59:59.999Z');
  });

  it('refuses more than nine digits, text around it, and a date that rolls over', () => {
    for (const bad of [
      '20261201012345.1234567891Z',
      'x20261201012345Z',
      '20261201012345Zx',
      '20261201012345',
      '20261201246000Z',
      '20261201012360Z',
      '20261232012345Z',
      // Date rolls these over (to 2 March, 1 May, the next day): read back, they are not what was written.
      '20260229012345Z',
      '20260431012345Z',
      '20261201240000Z',
      '2026120101234aZ',
    ]) {
      assert.equal(parseGeneralizedTime(bad), null, bad);
    }
  });
});

describe('timestamp time: the signing time given to the verifier', () => {
  it('a GeneralizedTime genTime replaces the library reading, a fresh Date each time', () => {
    const t = timestamp(generalized('20261201012345.52Z'));
    assert.equal(read(t), '2026-12-01T01:23:45.520Z');
    t.signingTime.setTime(0);
    assert.equal(t.signingTime.toISOString(), '2026-12-01T01:23:45.520Z');
    // Configurable: the library (or a second reading) may define it again.
    assert.equal(read(t), '2026-12-01T01:23:45.520Z');
  });

  it('the library reading is kept for every other shape', () => {
    const long = `20261201012345.${'1'.repeat(17)}Z`;
    assert.equal(long.length, 33);
    for (const genTime of [
      undefined,
      null,
      'text',
      { value: new Uint8Array(Buffer.from('20261201012345Z')) },
      { tag: {} },
      generalized('20261201012345Z', () => false),
      generalized('20261201012345Z', () => 'yes'),
      generalized('20261201012345Z', 'not a function'),
      { tag: null, value: new Uint8Array(Buffer.from('20261201012345Z')) },
      { tag: { isGeneralizedTime: () => true }, value: '20261201012345Z' },
      generalized(long),
      generalized('20261201012345.50Z'),
      generalized('20261201012345Z', () => {
        throw new Error('malformed');
      }),
    ]) {
      assert.equal(read(timestamp(genTime)), LIBRARY.toISOString(), JSON.stringify(genTime));
    }
    for (const shape of [{ signingTime: LIBRARY }, { signingTime: LIBRARY, tstInfo: { root: {} } }]) {
      assert.equal(read(shape), LIBRARY.toISOString());
    }
  });
});
