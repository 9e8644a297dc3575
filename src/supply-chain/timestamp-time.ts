/**
 * The RFC 3161 fractional-seconds wrinkle. @sigstore/core (3.2.1, 4.0.1) reads a GeneralizedTime
 * with no fraction or exactly three digits, and rejects `…23.52Z` as "invalid time". That time is
 * valid DER, and real timestamp authorities write it: X.690 (11.7.3) requires trailing zeros of the
 * fraction to be dropped, and RFC 3161 (2.4.2) allows any precision, so a TSA with millisecond
 * precision writes one or two digits whenever the time ends in 0 (one time in ten, as the mock's
 * does), and one with finer precision writes up to nine. Sigstore's timestamp-authority formats
 * `genTime` with Go's `20060102150405.999999999Z` (fraction, trailing zeros dropped), and GitHub's
 * instance runs it. Refusing those would fail a valid attestation at random, so the time is read here,
 * strictly by DER's rules, and handed to the verifier in place of the library's reading. Everything
 * else (the message imprint, the signature, the TSA's chain and validity at that time) is still
 * checked by @sigstore/verify.
 */

// DER GeneralizedTime: UTC ("Z"), seconds present, fraction without trailing zeros, no empty fraction.
const DER_GENERALIZED_TIME = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.(\d{0,8}[1-9]))?Z$/;

/** A DER GeneralizedTime as a Date (to the millisecond, finer digits dropped), or null. */
export function parseGeneralizedTime(text: string): Date | null {
  const m = DER_GENERALIZED_TIME.exec(text);
  if (m === null) return null;
  const [, year, month, day, hour, minute, second, fraction] = m;
  const ms = (fraction ?? '').padEnd(3, '0').slice(0, 3);
  const iso = `${year}-${month}-${day}T${hour}:${minute}:${second}.${ms}Z`;
  const date = new Date(iso);
  // Security: no rolling over ("…1332…" is not 1 February); the date must read back as written.
  return Number.isNaN(date.getTime()) || date.toISOString() !== iso ? null : date;
}

/**
 * Gives a parsed RFC 3161 timestamp (@sigstore/core's RFC3161Timestamp) a `signingTime` read by
 * DER's rules. Its internals are not its API, so each step is checked; a timestamp whose genTime
 * cannot be read this way keeps the library's reading, which then refuses it.
 */
export function readSigningTimeStrictly(timestamp: object): void {
  let text: string;
  try {
    const genTime: unknown = (timestamp as { tstInfo?: { root?: { subs?: unknown[] } } }).tstInfo?.root?.subs?.[4];
    if (typeof genTime !== 'object' || genTime === null || !('tag' in genTime) || !('value' in genTime)) return;
    const { tag, value } = genTime;
    const isGeneralizedTime =
      typeof tag === 'object' && tag !== null && 'isGeneralizedTime' in tag && typeof tag.isGeneralizedTime === 'function'
        ? (tag.isGeneralizedTime as () => unknown).call(tag)
        : false;
    if (isGeneralizedTime !== true || !(value instanceof Uint8Array) || value.length > 32) return;
    text = Buffer.from(value).toString('latin1');
  } catch {
    return; // a malformed token: the library refuses it when it verifies
  }
  const date = parseGeneralizedTime(text);
  if (date === null) return;
  Object.defineProperty(timestamp, 'signingTime', { get: () => new Date(date.getTime()), configurable: true });
}
