import * as z from '../zod.js';

/**
 * In-toto statements as they travel in a DSSE envelope (attestations, and cosign 3's signatures),
 * and the pure checks on them. Nothing here trusts a statement: it is read only after its envelope's
 * signature has verified.
 */
export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';

const subjectSchema = z.looseObject({
  name: z.optional(z.string().check(z.maxLength(1024))),
  digest: z.record(z.string().check(z.maxLength(32)), z.string().check(z.maxLength(256))),
});

export const statementSchema = z.looseObject({
  _type: z.string().check(z.regex(/^https:\/\/in-toto\.io\/Statement\/v(0\.1|1)$/)),
  subject: z.array(subjectSchema).check(z.minLength(1), z.maxLength(1024)),
  predicateType: z.string().check(z.maxLength(512)),
});
export type Statement = z.infer<typeof statementSchema>;

const signatureSchema = z.looseObject({
  sig: z.string().check(z.maxLength(16 * 1024)),
  keyid: z.optional(z.string().check(z.maxLength(256))),
});

export const dsseEnvelopeSchema = z.looseObject({
  payloadType: z.string().check(z.maxLength(256)),
  payload: z.string().check(z.maxLength(2 * 1024 * 1024)),
  signatures: z.array(signatureSchema).check(z.minLength(1), z.maxLength(16)),
});

/** The statement in a DSSE payload, or null when it is not one. */
export function parseStatement(payload: Buffer): Statement | null {
  try {
    const parsed = statementSchema.safeParse(JSON.parse(payload.toString('utf8')));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/**
 * Which of `digests` (`sha256:<hex>`) the statement's subject names, or null. Security: exact
 * comparison of lowercase hex; a subject for another image proves nothing about this one.
 */
export function coveredDigest(statement: Statement, digests: readonly string[]): string | null {
  for (const digest of digests) {
    const hex = digest.slice('sha256:'.length);
    if (statement.subject.some((s) => s.digest['sha256'] === hex)) return digest;
  }
  return null;
}

/** DSSE's pre-authentication encoding: what a DSSE signature signs. */
export function pae(payloadType: string, payload: Buffer): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${type.length} `, 'utf8'),
    type,
    Buffer.from(` ${payload.length} `, 'utf8'),
    payload,
  ]);
}
