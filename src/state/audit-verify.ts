import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { chainSchema, expectedHash, GENESIS } from './audit-chain.js';
import { parseJsonOrNull } from './files.js';

/**
 * Verification of the audit log's hash chain (`agent.js audit-verify`): names the first line that was
 * changed, removed or inserted.
 */
export interface VerifyResult {
  readonly ok: boolean;
  readonly lines: number;
  /** 1-based line number of the first line that does not fit the chain. */
  readonly badLine?: number;
  readonly problem?: string;
}

/**
 * Checks an audit log line by line and names the first line that was changed, removed or inserted:
 * each line must parse, carry its own hash, number on from the line before and point at that line's
 * hash. It keeps only the previous hash, so a log of any size is checked in constant memory.
 */
export class ChainVerifier {
  private count = 0;
  private prev = GENESIS;
  private failure: VerifyResult | null = null;

  /** Checks the next line; returns false once a line failed (the rest need not be read). */
  push(line: string): boolean {
    if (this.failure !== null) return false;
    const i = this.count;
    this.count += 1;
    const parsed = chainSchema.safeParse(parseJsonOrNull(line));
    const fail = (problem: string, badLine = i + 1): false => {
      this.failure = { ok: false, lines: 0, badLine, problem };
      return false;
    };
    if (!parsed.success) return fail('not an audit line');
    if (expectedHash(line) !== parsed.data.hash) return fail('changed: its content does not match its own hash');
    if (parsed.data.seq > i) return fail(`lines removed before it: its sequence number is ${parsed.data.seq}, ${i} was expected`);
    if (parsed.data.seq < i) return fail(`inserted or moved: its sequence number is ${parsed.data.seq}, ${i} was expected`);
    // The line before was rewritten with a recomputed hash of its own; name that one.
    if (parsed.data.prev !== this.prev) return fail('changed: the next line no longer points at its hash', Math.max(i, 1));
    this.prev = parsed.data.hash;
    return true;
  }

  /** The verdict; `lines` counts the lines read. */
  result(): VerifyResult {
    return this.failure === null ? { ok: true, lines: this.count } : { ...this.failure, lines: this.count };
  }
}

/** Checks a whole audit log held in memory (tests, small logs). */
export function verifyAuditLog(text: string): VerifyResult {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  const verifier = new ChainVerifier();
  for (const line of lines) if (!verifier.push(line)) break;
  const result = verifier.result();
  return { ...result, lines: lines.length };
}

/** Checks an audit log file as a stream, in constant memory whatever its size. */
export async function verifyAuditFile(path: string): Promise<VerifyResult> {
  const verifier = new ChainVerifier();
  const lines = createInterface({ input: createReadStream(path, { encoding: 'utf8' }), crlfDelay: Number.POSITIVE_INFINITY });
  let total = 0;
  for await (const line of lines) {
    total += 1;
    verifier.push(line);
  }
  return { ...verifier.result(), lines: total };
}
