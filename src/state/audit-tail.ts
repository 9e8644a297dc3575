import { open } from 'node:fs/promises';
import type { AuditFile } from './audit.js';

/** The audit log's tail at open: where its last whole line ends, and a torn write after it moved aside. */

// An audit line is a few KiB at most; a last line longer than this is not one, and the log is damaged.
const MAX_LINE_BYTES = 1024 * 1024;
const NEWLINE = 0x0a;

/**
 * Reads only the end of the log: where its last whole line ends (everything after is a torn write)
 * and that line's text. Reads backwards in growing windows, at most MAX_LINE_BYTES beyond the tail.
 */
export async function readTail(
  file: AuditFile,
  size: number,
  path: string,
): Promise<{ goodLength: number; lastLine: string | null }> {
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
export async function moveTornTail(file: AuditFile, path: string, goodLength: number, size: number): Promise<string> {
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
