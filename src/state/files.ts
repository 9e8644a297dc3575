import { randomUUID } from 'node:crypto';
import { constants, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { stateRefusal } from '../errors.js';

/** The file helpers the agent's own state needs: atomic replacement, and reading what may be absent. */

/**
 * Replaces `file` atomically: write a temporary file, fsync it, rename it over, fsync the folder.
 * A crash leaves the old content or the new, never half of either.
 */
export async function writeFileAtomic(file: string, content: string): Promise<void> {
  const tmp = `${file}.${randomUUID()}.tmp`;
  try {
    const handle = await open(tmp, 'wx', 0o600);
    try {
      await handle.writeFile(content, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, file);
  } catch (error) {
    await rm(tmp, { force: true });
    throw error;
  }
  const dir = await open(join(file, '..'), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

/** A state file larger than this is not one the agent wrote: refused at once, never parsed. */
export const MAX_STATE_FILE_BYTES = 8 * 1024 * 1024;

/**
 * The file's text, or null when it does not exist. Security: the file is opened with O_NOFOLLOW and
 * must be a regular file: a symbolic link (dangling or not) or a folder in its place is damage, never
 * "absent", and a file larger than `maxBytes` is refused before it is read. Every error names the file.
 */
export async function readTextOrNull(file: string, maxBytes = MAX_STATE_FILE_BYTES): Promise<string | null> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    if (code === 'ELOOP') throw stateRefusal(`${file} is a symbolic link; the agent's state files must be regular files`);
    throw new Error(`${file} cannot be read (${code ?? String(error)})`, { cause: error });
  }
  try {
    const stat = await handle.stat();
    if (stat.isDirectory()) throw stateRefusal(`${file} is a directory (EISDIR), not the agent's file`);
    if (!stat.isFile()) throw stateRefusal(`${file} is not a regular file`);
    if (stat.size > maxBytes)
      throw stateRefusal(`${file} is ${stat.size} bytes, more than the ${maxBytes} bytes any state file of the agent can be`);
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

/** JSON.parse, or null for text that is not JSON. */
export function parseJsonOrNull(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
