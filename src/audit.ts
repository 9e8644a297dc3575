import { createHash } from 'node:crypto';
import { constants, type FileHandle, open, readFile } from 'node:fs/promises';
import { z } from 'zod';
import { AgentError } from './errors.js';

/**
 * The agent's audit log: one JSON line per mutating request (and per start-up recovery), appended and
 * fsynced before the response is sent. Each line ends with `seq`, `prev` (the previous line's hash)
 * and `hash`, the SHA-256 of the line's own text up to that field. Editing a line breaks its own hash
 * or, if the hash was recomputed, the next line's `prev`; removing or inserting one breaks `seq`
 * (see verifyAuditLog). Rewriting the whole tail cannot be detected from the file alone: the head
 * hash is reported by GET /v1/status so it can be recorded elsewhere.
 */
export interface AuditEvent {
  readonly request_id: string;
  readonly client_id: string | null;
  readonly endpoint: string;
  readonly image: string | null;
  readonly outcome: string;
  readonly status: number;
  readonly reason: string | null;
  readonly duration_ms: number;
  readonly [extra: string]: unknown;
}

export const GENESIS = '0'.repeat(64);

export const sha256 = (line: string): string => createHash('sha256').update(line, 'utf8').digest('hex');

const chainSchema = z.object({ seq: z.number().int().nonnegative(), prev: z.string(), hash: z.string() });

// The hash field is always last, so the hashed text is the line without this suffix.
const HASH_SUFFIX = /,"hash":"[0-9a-f]{64}"\}$/;

/** Seals a serialised object: appends its own hash as the last field. */
function seal(json: string): { line: string; hash: string } {
  const hash = sha256(json);
  return { line: `${json.slice(0, -1)},"hash":"${hash}"}`, hash };
}

/** The hash a sealed line should carry, or null when the line is not sealed. */
function expectedHash(line: string): string | null {
  const match = HASH_SUFFIX.exec(line);
  return match === null ? null : sha256(`${line.slice(0, match.index)}}`);
}

export class AuditLog {
  private handle: FileHandle | null = null;
  private seq = 0;
  private head = GENESIS;
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(readonly path: string) {}

  /** Opens (or creates, mode 0600) the log and continues its chain. */
  static async open(path: string): Promise<AuditLog> {
    const log = new AuditLog(path);
    const text = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return '';
      throw error;
    });
    const lines = text.split('\n').filter((l) => l !== '');
    const last = lines.at(-1);
    if (last !== undefined) {
      const parsed = chainSchema.safeParse(safeJson(last));
      if (!parsed.success) throw new Error(`the last line of ${path} is not an audit line; run the audit verification`);
      log.seq = parsed.data.seq + 1;
      log.head = parsed.data.hash;
    }
    log.handle = await open(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, 0o600);
    return log;
  }

  /** The hash of the last line written: the chain's head. */
  get lastHash(): string {
    return this.head;
  }

  /**
   * Appends one event and waits until it is on disk. Writes are serialised so the chain stays in
   * order. Throws a 500 AgentError when the line cannot be written.
   */
  append(event: AuditEvent): Promise<void> {
    const run = async () => {
      if (this.handle === null) throw new AgentError(500, 'the audit log is closed');
      const { line, hash } = seal(JSON.stringify({ time: new Date().toISOString(), ...event, seq: this.seq, prev: this.head }));
      try {
        await this.handle.write(`${line}\n`);
        await this.handle.sync();
      } catch (error) {
        throw new AgentError(500, `the audit log could not be written (${(error as NodeJS.ErrnoException).code ?? 'error'})`, { cause: error });
      }
      this.seq += 1;
      this.head = hash;
    };
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  async close(): Promise<void> {
    await this.queue;
    await this.handle?.close();
    this.handle = null;
  }
}

export interface VerifyResult {
  readonly ok: boolean;
  readonly lines: number;
  /** 1-based line number of the first line that does not fit the chain. */
  readonly badLine?: number;
  readonly problem?: string;
}

/**
 * Checks a whole audit file and names the first line that was changed, removed or inserted: each line
 * must parse, carry its own hash, number on from the line before and point at that line's hash.
 */
export function verifyAuditLog(text: string): VerifyResult {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  let prev = GENESIS;
  for (let i = 0; i < lines.length; i += 1) {
    const line = lines[i] ?? '';
    const parsed = chainSchema.safeParse(safeJson(line));
    const fail = (problem: string): VerifyResult => ({ ok: false, lines: lines.length, badLine: i + 1, problem });
    if (!parsed.success) return fail('not an audit line');
    if (expectedHash(line) !== parsed.data.hash) return fail('changed: its content does not match its own hash');
    if (parsed.data.seq > i) return fail(`lines removed before it: its sequence number is ${parsed.data.seq}, ${i} was expected`);
    if (parsed.data.seq < i) return fail(`inserted or moved: its sequence number is ${parsed.data.seq}, ${i} was expected`);
    if (parsed.data.prev !== prev) {
      // The line before was rewritten with a recomputed hash of its own; name that one.
      return { ok: false, lines: lines.length, badLine: Math.max(i, 1), problem: 'changed: the next line no longer points at its hash' };
    }
    prev = parsed.data.hash;
  }
  return { ok: true, lines: lines.length };
}

function safeJson(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return null;
  }
}
