import { createHash } from 'node:crypto';
import * as z from '../zod.js';

/**
 * The audit log's hash chain. Each line ends with `seq`, `prev` (the previous line's hash) and `hash`,
 * the SHA-256 of the line's own text up to that field. Editing a line breaks its own hash or, if the
 * hash was recomputed, the next line's `prev`; removing or inserting one breaks `seq`.
 */
export const GENESIS = '0'.repeat(64);

export const sha256 = (line: string): string => createHash('sha256').update(line, 'utf8').digest('hex');

export const chainSchema = z.object({ seq: z.int().check(z.nonnegative()), prev: z.string(), hash: z.string() });

// The hash field is always last, so the hashed text is the line without this suffix.
const HASH_SUFFIX = /,"hash":"[0-9a-f]{64}"\}$/;

/** Seals a serialised object: appends its own hash as the last field. */
export function seal(json: string): { line: string; hash: string } {
  const hash = sha256(json);
  return { line: `${json.slice(0, -1)},"hash":"${hash}"}`, hash };
}

/** The hash a sealed line should carry, or null when the line is not sealed. */
export function expectedHash(line: string): string | null {
  const match = HASH_SUFFIX.exec(line);
  return match === null ? null : sha256(`${line.slice(0, match.index)}}`);
}
