import type { Readable } from 'node:stream';

/** Reading the Docker engine's streams: a pull's progress (JSON lines) and a container's logs. */

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

function parseProgress(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return { error: `unreadable progress from the engine: ${line.slice(0, 200)}` };
  }
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
