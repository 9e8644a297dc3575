import { randomUUID } from 'node:crypto';
import { constants, lstat, open } from 'node:fs/promises';
import { AgentError, describe, stateRefusal } from '../errors.js';
import { chainSchema, GENESIS, seal } from './audit-chain.js';
import {
  type AuditEvent,
  type AuditFile,
  type AuditOpenOptions,
  type OutcomeRecord,
  outcomeLine,
  type PrunedRecord,
  prunedLine,
  type RefusalSummary,
  type RequestRecord,
  refusalsCountedLine,
  refusalsCountingLine,
} from './audit-records.js';
import { moveTornTail, readTail } from './audit-tail.js';
import { parseJsonOrNull } from './files.js';

export { GENESIS, seal, sha256 } from './audit-chain.js';
export {
  type AuditEvent,
  type AuditFile,
  type AuditOpenOptions,
  type Outcome,
  type OutcomeRecord,
  REFUSALS_AUDITED_PER_MINUTE,
  type RefusalSummary,
  type RequestRecord,
} from './audit-records.js';
export { ChainVerifier, type VerifyResult, verifyAuditFile, verifyAuditLog } from './audit-verify.js';

// Security: O_NOFOLLOW, so a link put in the log's place is refused rather than followed (and its
// target truncated by the torn-line repair); O_NONBLOCK, so a FIFO put there cannot hang the start.
const openForAppend = (path: string): Promise<AuditFile> =>
  open(path, constants.O_RDWR | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o600);

/**
 * The agent's audit log: one JSON line per mutating request (and per start-up recovery), appended and
 * fsynced before the response is sent. Each line ends with `seq`, `prev` (the previous line's hash)
 * and `hash`, the SHA-256 of the line's own text up to that field. Editing a line breaks its own hash
 * or, if the hash was recomputed, the next line's `prev`; removing or inserting one breaks `seq`
 * (see verifyAuditLog). Rewriting the whole tail cannot be detected from the file alone: the head
 * hash is reported by GET /v1/status so it can be recorded elsewhere.
 */
export class AuditLog {
  private seq = 0;
  private head = GENESIS;
  /** Bytes of whole, counted lines: the file's length whenever no write is under way. */
  private size = 0;
  /** A failed write could not be cut back yet: the next append does that first, or refuses. */
  private dirty = false;
  private queue: Promise<unknown> = Promise.resolve();
  /** The file opened (device, inode): before each append the path must still be this file. */
  private identity: { readonly dev: number; readonly ino: number } | null = null;
  private damage: string | null = null;
  private verified = false;
  private onDamage: (problem: string) => void = () => undefined;
  private onUnrecorded: (message: string) => void = (message) => {
    process.stderr.write(`dreichor-deploy-agent: ${message}\n`);
  };

  private constructor(
    readonly path: string,
    private file: AuditFile | null,
  ) {}

  /**
   * Opens (or creates, mode 0600) the log and continues its chain. Only the tail is read, so a log of
   * any size opens at once. A torn last line, left by a power loss in the middle of a write, is moved
   * to a side file beside the log and a line saying so is appended: it must never keep the agent from
   * starting. A last whole line that is not an audit line is damage, not a torn write: refused.
   */
  static async open(path: string, options: AuditOpenOptions = {}): Promise<AuditLog> {
    const file = await (options.openFile ?? openForAppend)(path).catch((error: unknown) => {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ELOOP') throw stateRefusal(`${path} is a symbolic link; the audit log must be a regular file`);
      throw new Error(`${path} cannot be opened (${code ?? describe(error)})`, { cause: error });
    });
    const log = new AuditLog(path, file);
    if (options.onDamage !== undefined) log.onDamage = options.onDamage;
    if (options.onUnrecorded !== undefined) log.onUnrecorded = options.onUnrecorded;
    try {
      const stat = await file.stat();
      const { size } = stat;
      if (stat.isFile !== undefined && !stat.isFile()) throw stateRefusal(`${path} is not a regular file`);
      const uid = process.getuid?.();
      if (stat.uid !== undefined && uid !== undefined && stat.uid !== uid)
        throw stateRefusal(`${path} is owned by uid ${stat.uid}, not by the agent's user (uid ${uid})`);
      if (stat.dev !== undefined && stat.ino !== undefined) log.identity = { dev: stat.dev, ino: stat.ino };
      const { goodLength, lastLine } = await readTail(file, size, path);
      if (lastLine !== null) {
        const parsed = chainSchema.safeParse(parseJsonOrNull(lastLine));
        if (!parsed.success) throw new Error(`the last line of ${path} is not an audit line; run the audit verification`);
        log.seq = parsed.data.seq + 1;
        log.head = parsed.data.hash;
      }
      log.size = goodLength;
      if (goodLength < size) await log.repairTornTail(file, goodLength, size);
      return log;
    } catch (error) {
      await file.close();
      throw error;
    }
  }

  /**
   * A torn last line must never keep the agent from starting (its stop must work): with the disk
   * full, the fragment is dropped rather than saved beside the log, and a repair line that cannot be
   * written is only logged; the next append cuts the file back first (`dirty`) or answers 503.
   */
  private async repairTornTail(file: AuditFile, goodLength: number, size: number): Promise<void> {
    const torn = `${size - goodLength} bytes of an interrupted write, such as a power loss`;
    let where: string;
    try {
      where = `it was moved to ${await moveTornTail(file, this.path, goodLength, size)}`;
    } catch (error) {
      this.dirty = true;
      where = `it could not be saved (${describe(error)}) and was dropped`;
    }
    await this.append({
      request_id: randomUUID(),
      client_id: null,
      endpoint: 'audit-log',
      image: null,
      outcome: 'repaired',
      reason: `the last line of ${this.path} was torn (${torn}); ${where}, and the chain goes on from the last whole line`,
    }).catch((error: unknown) => {
      this.onUnrecorded(
        `${this.path}: a torn last line was found; ${where}; the repair could not be recorded (${describe(error)})`,
      );
    });
  }

  /** The hash of the last line written: the chain's head. */
  get lastHash(): string {
    return this.head;
  }

  /** The chain's head: the sequence number and hash of the last line written (seq -1: none yet). */
  get chainHead(): { seq: number; hash: string } {
    return { seq: this.seq - 1, hash: this.head };
  }

  /** True once the start-up verification found the chain whole; false once any damage was found. */
  get intact(): boolean | null {
    if (this.damage !== null) return false;
    return this.verified ? true : null;
  }

  get problem(): string | null {
    return this.damage;
  }

  /** The start-up verification's verdict (open-state.ts). */
  verifiedIntact(): void {
    this.verified = true;
  }

  /** Records damage found in the log; the first problem is kept and told once. */
  damaged(problem: string): void {
    if (this.damage !== null) return;
    this.damage = problem;
    this.onDamage(problem);
  }

  /**
   * Security: the path must still name the file the agent opened. Deleted, later lines would go to
   * an inode nobody can read; replaced (by a new file or a link), the chain would go on elsewhere.
   */
  private async checkIdentity(): Promise<void> {
    const identity = this.identity;
    if (identity === null) return;
    const now = await lstat(this.path).catch((error: unknown) => (error as NodeJS.ErrnoException).code ?? 'error');
    if (typeof now === 'object' && now.dev === identity.dev && now.ino === identity.ino) return;
    const what =
      now === 'ENOENT' ? 'was deleted' : typeof now === 'string' ? `cannot be checked (${now})` : 'was replaced by another file';
    const problem = `${this.path} ${what} while the agent ran; no line is written anywhere else: restore it and restart the agent`;
    this.damaged(problem);
    throw new AgentError(503, `the audit log ${what}; nothing is done unrecorded (${problem})`, { code: 'audit_replaced' });
  }

  /** Written once a deploy or stop holds the lock and before it acts: nothing happens unrecorded. */
  accepted(r: RequestRecord): Promise<void> {
    return this.append({
      request_id: r.requestId,
      client_id: r.clientId,
      endpoint: r.endpoint,
      image: r.image,
      outcome: 'accepted',
      reason: null,
    });
  }

  /** How a deploy or stop request ended, or why it was refused: on disk before the answer is sent. */
  outcome(r: OutcomeRecord): Promise<void> {
    return this.append(outcomeLine(r));
  }

  /** What start-up recovery found and did. */
  recovered(r: { readonly requestId: string | null; readonly image: string | null; readonly reason: string }): Promise<void> {
    return this.append({
      request_id: r.requestId ?? randomUUID(),
      client_id: null,
      endpoint: 'startup-recovery',
      image: r.image,
      outcome: 'recovered',
      reason: r.reason,
    });
  }

  /** Leftover containers the reconciler removed. */
  cleaned(reason: string): Promise<void> {
    return this.append({
      request_id: randomUUID(),
      client_id: null,
      endpoint: 'reconciler',
      image: null,
      outcome: 'cleaned',
      reason,
    });
  }

  /** Refusals before authentication are counted from now on; their summary line follows. */
  refusalsCounting(first: string, endpoint: string, status: number): Promise<void> {
    return this.append(refusalsCountingLine(first, endpoint, status));
  }

  /**
   * An image that image retention removed from the host (retention.ts): the reference it removed,
   * its digest, and why it was no longer kept.
   */
  pruned(r: PrunedRecord): Promise<void> {
    return this.append(prunedLine(r));
  }

  /** A summary of refusals before authentication beyond the rate (see refusals.ts). */
  refusalsCounted(r: RefusalSummary, reason: string): Promise<void> {
    return this.append(refusalsCountedLine(r, reason));
  }

  /**
   * Appends one event and waits until it is on disk. Writes are serialised so the chain stays in
   * order. A line is written whole or not at all: after a short write, a failed write or a failed
   * fsync the file is cut back to its last whole line, and a 503 AgentError says the line could not
   * be written, so no torn or uncounted line is ever left behind.
   */
  append(event: AuditEvent): Promise<void> {
    const run = async () => {
      const file = this.file;
      if (file === null) throw new AgentError(503, 'the audit log is closed', { code: 'audit_unwritable' });
      const { line, hash } = seal(JSON.stringify({ time: new Date().toISOString(), ...event, seq: this.seq, prev: this.head }));
      const bytes = Buffer.from(`${line}\n`, 'utf8');
      await this.checkIdentity();
      try {
        if (this.dirty) await this.cutBack(file);
        let written = 0;
        while (written < bytes.length) {
          // write(2) may write part of the buffer (a file system filling up): write the rest.
          const { bytesWritten } = await file.write(bytes, written, bytes.length - written, null);
          if (bytesWritten <= 0) throw Object.assign(new Error('the write made no progress'), { code: 'EIO' });
          written += bytesWritten;
        }
        await file.sync();
      } catch (error) {
        this.dirty = true;
        await this.cutBack(file).catch(() => undefined);
        const code = (error as NodeJS.ErrnoException).code ?? 'error';
        throw new AgentError(503, `the audit log could not be written (${code})`, { code: 'audit_unwritable', cause: error });
      }
      this.size += bytes.length;
      this.seq += 1;
      this.head = hash;
    };
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  /** Cuts the file back to its whole, counted lines. */
  private async cutBack(file: AuditFile): Promise<void> {
    await file.truncate(this.size);
    await file.sync();
    this.dirty = false;
  }

  async close(): Promise<void> {
    await this.queue;
    await this.file?.close();
    this.file = null;
  }
}
