import * as z from '../zod.js';

/**
 * What built the image that runs: read from a verified attestation's signing certificate (or, for
 * `cosign-key`, the key that signed it). Carried by the deploy's answer, its audit outcome line and,
 * as a container label, by the status of the running container.
 */
export const provenanceSchema = z.strictObject({
  /** How it was verified: `github-attestation` or `cosign-key`. */
  verified_by: z.enum(['github-attestation', 'cosign-key']),
  /** The digest the attestation or signature covers: the tag's digest or its platform manifest. */
  subject_digest: z.string().check(z.regex(/^sha256:[0-9a-f]{64}$/)),
  /** `https://github.com/<owner>/<repo>` (certificate OID .12). */
  repository: z.nullable(z.string().check(z.maxLength(512))),
  /** The commit built (OID .13). */
  commit: z.nullable(z.string().check(z.maxLength(128))),
  /** The git ref built from (OID .14). */
  ref: z.nullable(z.string().check(z.maxLength(512))),
  /** The workflow that signed: the certificate's SAN, `https://github.com/<workflow>@<ref>`. */
  workflow: z.nullable(z.string().check(z.maxLength(1024))),
  /** The workflow run (OID .21). */
  run_url: z.nullable(z.string().check(z.maxLength(1024))),
  /** The attestation's predicate type (`github-attestation`). */
  predicate_type: z.nullable(z.string().check(z.maxLength(512))),
  /** SHA-256 of the public key's SubjectPublicKeyInfo (`cosign-key`). */
  key_fingerprint: z.nullable(z.string().check(z.maxLength(128))),
});

export type Provenance = z.infer<typeof provenanceSchema>;

/** The container label that keeps the provenance of the image a container runs. */
export const PROVENANCE_LABEL = 'io.dreichor.provenance';

export const provenanceLabel = (p: Provenance): string => JSON.stringify(p);

/**
 * The provenance kept in a container's label, or null. Security: a label is only as trustworthy as
 * whoever created the container; the agent's own containers carry what the agent verified, and a
 * label that does not parse is shown as absent, never trusted half.
 */
export function provenanceFromLabel(label: string | undefined): Provenance | null {
  if (label === undefined || label.length > 8192) return null;
  try {
    const parsed = provenanceSchema.safeParse(JSON.parse(label));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}
