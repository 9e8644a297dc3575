import { lstat, mkdir } from 'node:fs/promises';
import { stateRefusal } from '../errors.js';

/**
 * STATE_DIR is checked before anything in it is read. Security: the agent's tag records, journal and
 * audit log are only as trustworthy as the folder that holds them: a folder another user owns, or any
 * other user may write to, lets that user swap the files under the agent (a journal naming another
 * container, a state without tag records, an audit log replaced by a link). So it must be a real
 * folder (not a symbolic link), owned by the agent's own user, with no group or other write bit.
 */
export async function checkStateDir(dir: string): Promise<void> {
  // Created where it is missing, as systemd's StateDirectory would: owned by this user, mode 0700.
  await mkdir(dir, { recursive: true, mode: 0o700 }).catch((error: unknown) => {
    throw stateRefusal(`STATE_DIR ${dir} cannot be created (${(error as NodeJS.ErrnoException).code ?? String(error)})`, error);
  });
  const stat = await lstat(dir);
  if (stat.isSymbolicLink()) throw stateRefusal(`STATE_DIR ${dir} is a symbolic link; give the real folder`);
  if (!stat.isDirectory()) throw stateRefusal(`STATE_DIR ${dir} is not a folder`);
  const uid = process.getuid?.();
  if (uid !== undefined && stat.uid !== uid)
    throw stateRefusal(
      `STATE_DIR ${dir} is owned by uid ${stat.uid}, not by the agent's user (uid ${uid}); chown it to the agent's user`,
    );
  if ((stat.mode & 0o022) !== 0)
    throw stateRefusal(
      `STATE_DIR ${dir} has mode ${(stat.mode & 0o777).toString(8)}: group or others may write to it; chmod 700 it`,
    );
}
