import type { Readable } from 'node:stream';
import { AgentError } from '../errors.js';
import { imageEventSchema, pullEventSchema } from './docker-schemas.js';

/**
 * Reading the Docker engine's streams: a pull's progress and the engine's event log (JSON lines), and
 * a container's logs.
 */

/**
 * The JSON objects of a progress stream, one a line. A line that is not JSON becomes an error event,
 * so it fails the pull rather than being skipped. Ends (by throwing the signal's reason) when the
 * signal fires: a stream that stops because of an abort must not read as a finished pull.
 */
export async function* jsonLines(stream: Readable, signal: AbortSignal): AsyncGenerator<unknown> {
  let pending = '';
  const onAbort = () => stream.destroy(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const chunk of stream) {
      pending += Buffer.isBuffer(chunk) ? chunk.toString('utf8') : String(chunk);
      let newline = pending.indexOf('\n');
      while (newline !== -1) {
        const line = pending.slice(0, newline).trim();
        pending = pending.slice(newline + 1);
        if (line !== '') yield parseProgress(line);
        newline = pending.indexOf('\n');
      }
    }
    if (pending.trim() !== '') yield parseProgress(pending.trim());
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
  if (signal.aborted) throw signal.reason;
}

/** What a pull's progress said: the digest it pulled, or its first error event (the pull failed). */
export interface PullProgress {
  readonly digest: string | null;
  readonly failure: string | null;
}

/**
 * The engine reports pull failures (unknown tag, denied pull, broken layer) as events inside a 200
 * stream, so every event is checked; any error event fails the pull.
 */
export async function readPull(stream: Readable, signal: AbortSignal): Promise<PullProgress> {
  let digest: string | null = null;
  let failure: string | null = null;
  for await (const event of jsonLines(stream, signal)) {
    const parsed = pullEventSchema.safeParse(event);
    if (!parsed.success) continue;
    const { status, error, errorDetail } = parsed.data;
    if (error !== undefined || errorDetail?.message !== undefined) {
      failure = errorDetail?.message ?? error ?? 'unknown error';
      break;
    }
    const match = status === undefined ? null : /^Digest: (sha256:[0-9a-f]{64})$/.exec(status);
    if (match?.[1] !== undefined) digest = match[1];
  }
  return { digest, failure };
}

/** The images named by a read of the engine's event log (GET /events, image events), in order. */
export async function readImageEvents(stream: Readable, signal: AbortSignal): Promise<string[]> {
  const pulled: string[] = [];
  for await (const event of jsonLines(stream, signal)) {
    const parsed = imageEventSchema.safeParse(event);
    if (!parsed.success) throw new AgentError(502, 'the engine sent an image event the agent cannot read');
    const id = parsed.data.Actor?.ID ?? parsed.data.id;
    if (id !== undefined) pulled.push(id);
  }
  return pulled;
}

function parseProgress(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return { error: `unreadable progress from the engine: ${line.slice(0, 200)}` };
  }
}

/** How much of a container's log tail is masked and kept; the reasons quote less. */
const LOG_CHARS_MASKED = 16 * 1024;

/**
 * The end of a container's logs (GET /containers/{id}/logs), as text to be masked. Only the end is
 * ever shown (a reason quotes 2,000 characters): masking a runtime's megabytes of output would hold
 * the event loop for seconds. The cut may split a secret; the redactor masks a piece of one at either
 * edge of the text.
 */
export function logTail(raw: unknown): string {
  const buffer = Buffer.isBuffer(raw) ? raw : Buffer.from(typeof raw === 'string' ? raw : '');
  const text = demultiplex(buffer).trimEnd();
  return text.length > LOG_CHARS_MASKED ? text.slice(-LOG_CHARS_MASKED) : text;
}

/**
 * Container logs without a TTY come multiplexed: frames of an 8-byte header (stream type, 3 zero
 * bytes, big-endian length) and a payload. Anything that does not parse as frames is returned as is.
 */
export function demultiplex(buffer: Buffer): string {
  const parts: Buffer[] = [];
  let offset = 0;
  while (offset + 8 <= buffer.length) {
    const type = buffer[offset];
    if (
      (type !== 0 && type !== 1 && type !== 2) ||
      buffer[offset + 1] !== 0 ||
      buffer[offset + 2] !== 0 ||
      buffer[offset + 3] !== 0
    ) {
      return buffer.toString('utf8');
    }
    const length = buffer.readUInt32BE(offset + 4);
    parts.push(buffer.subarray(offset + 8, offset + 8 + length));
    offset += 8 + length;
  }
  if (offset !== buffer.length) return buffer.toString('utf8');
  return Buffer.concat(parts).toString('utf8');
}
