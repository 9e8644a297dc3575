import { randomUUID } from 'node:crypto';
import { constants, open } from 'node:fs/promises';
import { AgentError } from '../errors.js';
import { chainSchema, GENESIS, seal } from './audit-chain.js';
import { parseJsonOrNull } from './files.js';

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
  readonly status?: number;
  readonly reason: string | null;
  readonly duration_ms?: number;
  readonly [extra: string]: unknown;
}

/** How a deploy or stop request ended. */
export type Outcome = 'deployed' | 'stopped' | 'failed' | 'refused' | 'abandoned';

/** Who asked for what. */
export interface RequestRecord {
  readonly requestId: string;
  /** The token that authenticated the request; null when none did. */
  readonly clientId: string | null;
  readonly endpoint: string;
  readonly image: string | null;
}

export interface OutcomeRecord extends RequestRecord {
  readonly outcome: Outcome;
  readonly status: number;
  readonly reason: string | null;
  readonly durationMs: number;
  /** The client id an unauthenticated request claimed: forensics only, never trusted. */
  readonly claimedClientId?: string | null;
  /** What built the deployed image, when IMAGE_VERIFICATION verified it (supply-chain/provenance.ts). */
  readonly provenance?: object;
}

/** Refusals before authentication that were counted rather than written one by one. */
export interface RefusalSummary {
  readonly count: number;
  readonly first: string;
  readonly last: string;
  readonly statuses: Readonly<Record<string, number>>;
  readonly endpoints: Readonly<Record<string, number>>;
}

export { GENESIS, seal, sha256 } from './audit-chain.js';
export { ChainVerifier, type VerifyResult, verifyAuditFile, verifyAuditLog } from './audit-verify.js';

/** The few file operations the log needs: a FileHandle has them; tests inject failing ones. */
export interface AuditFile {
  write(buffer: Buffer, offset: number, length: number, position: null): Promise<{ bytesWritten: number }>;
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  sync(): Promise<void>;
  truncate(length: number): Promise<void>;
  stat(): Promise<{ size: number }>;
  close(): Promise<void>;
}

export interface AuditOpenOptions {
  /** Opens the log file for reading and appending. Tests inject short writes and failed fsyncs. */
  readonly openFile?: (path: string) => Promise<AuditFile>;
}

/** Refusals before authentication written one by one in any minute (refusals.ts counts the rest). */
export const REFUSALS_AUDITED_PER_MINUTE = 10;

const openForAppend = (path: string): Promise<AuditFile> =>
  open(path, constants.O_RDWR | constants.O_APPEND | constants.O_CREAT, 0o600);

// An audit line is a few KiB at most; a last line longer than this is not one, and the log is damaged.
const MAX_LINE_BYTES = 1024 * 1024;
const NEWLINE = 0x0a;

export class AuditLog {
  private seq = 0;
  private head = GENESIS;
  /** Bytes of whole, counted lines: the file's length whenever no write is under way. */
  private size = 0;
  /** A failed write could not be cut back yet: the next append does that first, or refuses. */
  private dirty = false;
  private queue: Promise<unknown> = Promise.resolve();

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
    const file = await (options.openFile ?? openForAppend)(path);
    const log = new AuditLog(path, file);
    try {
      const { size } = await file.stat();
      const { goodLength, lastLine } = await readTail(file, size, path);
      if (lastLine !== null) {
        const parsed = chainSchema.safeParse(parseJsonOrNull(lastLine));
        if (!parsed.success) throw new Error(`the last line of ${path} is not an audit line; run the audit verification`);
        log.seq = parsed.data.seq + 1;
        log.head = parsed.data.hash;
      }
      log.size = goodLength;
      if (goodLength < size) {
        const side = await moveTornTail(file, path, goodLength, size);
        await log.append({
          request_id: randomUUID(),
          client_id: null,
          endpoint: 'audit-log',
          image: null,
          outcome: 'repaired',
          reason: `the last line was torn (${size - goodLength} bytes of an interrupted write, such as a power loss); it was moved to ${side} and the chain goes on from the last whole line`,
        });
      }
      return log;
    } catch (error) {
      await file.close();
      throw error;
    }
  }

  /** The hash of the last line written: the chain's head. */
  get lastHash(): string {
    return this.head;
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
    return this.append({
      request_id: r.requestId,
      client_id: r.clientId,
      ...(r.claimedClientId === undefined || r.claimedClientId === null ? {} : { claimed_client_id: r.claimedClientId }),
      endpoint: r.endpoint,
      image: r.image,
      outcome: r.outcome,
      status: r.status,
      reason: r.reason,
      duration_ms: r.durationMs,
      ...(r.provenance === undefined ? {} : { provenance: r.provenance }),
    });
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
    return this.append({
      request_id: randomUUID(),
      client_id: null,
      endpoint: 'refusals',
      image: null,
      outcome: 'refusals-counting',
      reason: `more than ${REFUSALS_AUDITED_PER_MINUTE} refusals before authentication in a minute: from ${first} on they are counted, and a summary line with their count follows`,
      first,
      first_endpoint: endpoint,
      first_status: status,
    });
  }

  /**
   * An image that image retention removed from the host (retention.ts): the reference it removed,
   * its digest, and why it was no longer kept.
   */
  pruned(r: { readonly image: string; readonly digest: string; readonly reason: string }): Promise<void> {
    return this.append({
      request_id: randomUUID(),
      client_id: null,
      endpoint: 'image-retention',
      image: r.image,
      digest: r.digest,
      outcome: 'pruned',
      reason: r.reason,
    });
  }

  /** A summary of refusals before authentication beyond the rate (see refusals.ts). */
  refusalsCounted(r: RefusalSummary, reason: string): Promise<void> {
    return this.append({
      request_id: randomUUID(),
      client_id: null,
      endpoint: 'refusals',
      image: null,
      outcome: 'refusals-counted',
      reason,
      ...r,
    });
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

/**
 * Reads only the end of the log: where its last whole line ends (everything after is a torn write)
 * and that line's text. Reads backwards in growing windows, at most MAX_LINE_BYTES beyond the tail.
 */
async function readTail(file: AuditFile, size: number, path: string): Promise<{ goodLength: number; lastLine: string | null }> {
  for (let window = 64 * 1024; ; window *= 4) {
    const start = Math.max(0, size - Math.min(window, MAX_LINE_BYTES));
    const buffer = Buffer.alloc(size - start);
    let read = 0;
    while (read < buffer.length) {
      const { bytesRead } = await file.read(buffer, read, buffer.length - read, start + read);
      if (bytesRead === 0) break;
      read += bytesRead;
    }
    const end = buffer.lastIndexOf(NEWLINE, read - 1);
    if (end === -1 && start === 0) return { goodLength: 0, lastLine: null };
    const begin = end <= 0 ? -1 : buffer.lastIndexOf(NEWLINE, end - 1);
    if (begin !== -1 || start === 0) {
      return { goodLength: start + end + 1, lastLine: buffer.subarray(begin + 1, end).toString('utf8') };
    }
    if (size - start >= MAX_LINE_BYTES)
      throw new Error(`the end of ${path} has no whole line within ${MAX_LINE_BYTES} bytes; run the audit verification`);
  }
}

/** Saves the torn tail beside the log (fsynced), then cuts the log back to its last whole line. */
async function moveTornTail(file: AuditFile, path: string, goodLength: number, size: number): Promise<string> {
  const fragment = Buffer.alloc(size - goodLength);
  await file.read(fragment, 0, fragment.length, goodLength);
  const side = `${path}.torn-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  const handle = await open(side, 'wx', 0o600);
  try {
    await handle.writeFile(fragment);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await file.truncate(goodLength);
  await file.sync();
  return side;
}
