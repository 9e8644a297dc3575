import { type AttestationPolicy, sameGitHubName } from '../config/verification.js';
import * as z from '../zod.js';

/**
 * Who signed, read from a Fulcio certificate that has already verified against the trusted root:
 * the SAN and GitHub's OIDs (1.3.6.1.4.1.57264.1.*), checked against the policy. Pure.
 *
 * The .8 to .22 extensions are DER UTF8Strings, not plain bytes (the legacy .1 to .6 were plain):
 * a value read as raw bytes would carry the tag and length in front, and a comparison of those with
 * a prefix could be fooled. Security: a value that is not exactly one UTF8String is absent.
 */
export const OID = {
  issuerV1: '1.3.6.1.4.1.57264.1.1',
  issuerV2: '1.3.6.1.4.1.57264.1.8',
  buildSignerUri: '1.3.6.1.4.1.57264.1.9',
  sourceRepositoryUri: '1.3.6.1.4.1.57264.1.12',
  sourceRepositoryDigest: '1.3.6.1.4.1.57264.1.13',
  sourceRepositoryRef: '1.3.6.1.4.1.57264.1.14',
  runInvocationUri: '1.3.6.1.4.1.57264.1.21',
} as const;

const oidSchema = z.looseObject({ oid: z.looseObject({ id: z.array(z.int()) }), value: z.instanceof(Uint8Array) });

export const signerIdentitySchema = z.looseObject({
  subjectAlternativeName: z.optional(z.string().check(z.maxLength(4096))),
  extensions: z.optional(z.looseObject({ issuer: z.optional(z.string().check(z.maxLength(4096))) })),
  oids: z.optional(z.array(oidSchema).check(z.maxLength(256))),
});
export type SignerIdentity = z.infer<typeof signerIdentitySchema>;

/** A DER UTF8String (tag 0x0c, definite length, nothing after it), or null. */
export function derUtf8String(value: Uint8Array): string | null {
  if (value.length < 2 || value[0] !== 0x0c) return null;
  const first = value[1] ?? 0;
  let length: number;
  let offset: number;
  if (first < 0x80) {
    length = first;
    offset = 2;
  } else if (first === 0x81 && value.length >= 3) {
    length = value[2] ?? 0;
    offset = 3;
    if (length < 0x80) return null; // DER: the shortest form
  } else if (first === 0x82 && value.length >= 4) {
    length = ((value[2] ?? 0) << 8) | (value[3] ?? 0);
    offset = 4;
    if (length < 0x100) return null;
  } else {
    return null;
  }
  if (offset + length !== value.length) return null;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(value.subarray(offset));
  } catch {
    return null;
  }
}

export interface GitHubIdentity {
  readonly issuer: string | null;
  /** The legacy issuer (.1, plain bytes), when the certificate has one. */
  readonly legacyIssuer: string | null;
  readonly san: string | null;
  readonly repository: string | null;
  readonly commit: string | null;
  readonly ref: string | null;
  readonly runUrl: string | null;
}

export function githubIdentity(identity: SignerIdentity): GitHubIdentity {
  const read = (oid: string): string | null => {
    const found = identity.oids?.find((o) => o.oid.id.join('.') === oid);
    return found === undefined ? null : derUtf8String(found.value);
  };
  const legacy = identity.oids?.find((o) => o.oid.id.join('.') === OID.issuerV1);
  return {
    // The verifier reads .8 the same way; .8 (DER) is what Fulcio has issued since 2023.
    issuer: read(OID.issuerV2) ?? identity.extensions?.issuer ?? null,
    legacyIssuer: legacy === undefined ? null : plainUtf8(legacy.value),
    san: identity.subjectAlternativeName ?? null,
    repository: read(OID.sourceRepositoryUri),
    commit: read(OID.sourceRepositoryDigest),
    ref: read(OID.sourceRepositoryRef),
    runUrl: read(OID.runInvocationUri),
  };
}

/** Whether `ref` is one of `patterns`: exact, or a prefix where the pattern ends in `*`. */
export function refAllowed(ref: string, patterns: readonly string[] | null): boolean {
  if (patterns === null) return true;
  return patterns.some((p) => (p.endsWith('*') ? ref.startsWith(p.slice(0, -1)) : ref === p));
}

/** A legacy (.1 to .6) extension's value: plain UTF-8 bytes, or null. */
function plainUtf8(value: Uint8Array): string | null {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(value);
  } catch {
    return null;
  }
}

const GITHUB = 'https://github.com/';

/**
 * Whether `value` is `https://github.com/<repository><rest>`: the owner and repository compared
 * without case (GitHub's names are case-insensitive), the host and everything after them exact.
 */
function githubUrlIs(value: string | null, repository: string, rest: string): boolean {
  if (value === null || !value.startsWith(GITHUB)) return false;
  const named = value.slice(GITHUB.length, GITHUB.length + repository.length);
  return sameGitHubName(named, repository) && value.slice(GITHUB.length + repository.length) === rest;
}

/** The first check the identity fails, as a reason for a person; null when it passes them all. */
export function identityProblem(id: GitHubIdentity, policy: AttestationPolicy): string | null {
  // Security: a certificate whose legacy issuer (.1) and issuer (.8) disagree is refused, whichever
  // matches: verifiers differ in which one they read (sigstore-js .8; others .1), so a certificate
  // naming two issuers could pass one verifier's policy and not another's.
  if (id.legacyIssuer !== null && id.issuer !== null && id.legacyIssuer !== id.issuer) {
    return `certificate names two issuers (${quote(id.issuer)} in OID .8, ${quote(id.legacyIssuer)} in OID .1)`;
  }
  if (id.issuer !== policy.issuer) return `certificate issuer is ${quote(id.issuer)}, not the configured ATTESTATION_ISSUER`;
  // Security: the SAN must be this exact workflow at some ref; "…/build.yml-evil@" or another
  // repository's workflow of the same file name must not pass, so the "@" is part of the prefix.
  // The owner and repository are compared without case; the workflow's path and the ref exactly.
  const [owner = '', repo = ''] = policy.signerWorkflow.split('/');
  const workflowRepository = `${owner}/${repo}`;
  const path = `${policy.signerWorkflow.slice(workflowRepository.length)}@`;
  const ref = id.san?.slice(GITHUB.length + workflowRepository.length + path.length) ?? '';
  if (ref === '' || !githubUrlIs(id.san, workflowRepository, `${path}${ref}`)) {
    return `signed by workflow ${quote(id.san)}, not ATTESTATION_SIGNER_WORKFLOW`;
  }
  if (!githubUrlIs(id.repository, policy.repository, '')) {
    return `built from repository ${quote(id.repository)}, not ATTESTATION_REPOSITORY`;
  }
  if (id.ref === null || id.ref === '' || !refAllowed(id.ref, policy.sourceRefs)) {
    return `built from ref ${quote(id.ref)}, which ATTESTATION_SOURCE_REFS does not allow`;
  }
  return null;
}

/** A value from a certificate, quoted and cut short for a reason (never the whole certificate). */
const quote = (value: string | null): string => (value === null ? 'none' : JSON.stringify(value.slice(0, 200)));
