import { createHash, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { constants, open } from 'node:fs/promises';
import { createInterface } from 'node:readline';
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
export function seal(json: string): { line: string; hash: string } {
  const hash = sha256(json);
  return { line: `${json.slice(0, -1)},"hash":"${hash}"}`, hash };
}

/** The hash a sealed line should carry, or null when the line is not sealed. */
function expectedHash(line: string): string | null {
  const match = HASH_SUFFIX.exec(line);
  return match === null ? null : sha256(`${line.slice(0, match.index)}}`);
}

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

const openForAppend = (path: string): Promise<AuditFile> => open(path, constants.O_RDWR | constants.O_APPEND | constants.O_CREAT, 0o600);

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
        const parsed = chainSchema.safeParse(safeJson(lastLine));
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
          status: 0,
          reason: `the last line was torn (${size - goodLength} bytes of an interrupted write, such as a power loss); it was moved to ${side} and the chain goes on from the last whole line`,
          duration_ms: 0,
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

  /**
   * Appends one event and waits until it is on disk. Writes are serialised so the chain stays in
   * order. A line is written whole or not at all: after a short write, a failed write or a failed
   * fsync the file is cut back to its last whole line, and a 503 AgentError says the line could not
   * be written, so no torn or uncounted line is ever left behind.
   */
  append(event: AuditEvent): Promise<void> {
    const run = async () => {
      const file = this.file;
      if (file === null) throw new AgentError(503, 'the audit log is closed');
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
        throw new AgentError(503, `the audit log could not be written (${(error as NodeJS.ErrnoException).code ?? 'error'})`, { cause: error });
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
    if (size - start >= MAX_LINE_BYTES) throw new Error(`the end of ${path} has no whole line within ${MAX_LINE_BYTES} bytes; run the audit verification`);
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
    const parsed = chainSchema.safeParse(safeJson(line));
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

function safeJson(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return null;
  }
}
