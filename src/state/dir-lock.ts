import { createHash } from 'node:crypto';
import { realpath, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { stateRefusal } from '../errors.js';
import { readTextOrNull, writeFileAtomic } from './files.js';

/**
 * One agent process per STATE_DIR. Two processes on one folder (a second agent started by hand with
 * the same env file, or dev and prod given one folder) remove each other's staging containers, fork
 * the audit chain and lose tag records to lost updates.
 *
 * Node has no flock(2). The lock is a Linux abstract unix socket bound under a name derived from the
 * folder's real path, held for the process's life. Chosen over a lock file created with O_EXCL:
 *  - the kernel releases it when the process dies, however it dies (SIGKILL, OOM, power loss): there
 *    is no stale lock to judge, so no pid liveness check and no pid-reuse race (a recorded pid and
 *    its start time can be read wrong; a bound name cannot);
 *  - the bind is atomic: of two processes starting at once, exactly one gets it.
 * Its limit: abstract names live in a network namespace. The systemd unit shares the host's (no
 * PrivateNetwork, see systemd/), as does every process an operator starts by hand on the host.
 * The name carries no environment on purpose: dev and prod on one folder must exclude each other.
 * A pid file beside it (agent.pid) only serves the refusal's message; it is never trusted as the lock.
 */
export interface DirLock {
  readonly dir: string;
  release(): Promise<void>;
}

const PID_FILE = 'agent.pid';

export const lockName = (realDir: string): string =>
  `\0dreichor-deploy-agent-state-${createHash('sha256').update(realDir, 'utf8').digest('hex').slice(0, 40)}`;

/** Takes the folder's lock, or refuses (exit 2) naming the folder and the holder's pid. The folder must exist. */
export async function lockStateDir(dir: string): Promise<DirLock> {
  const real = await realpath(dir);
  const server = createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ path: lockName(real), exclusive: true }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
    const pid = await readTextOrNull(join(dir, PID_FILE), 64).catch(() => null);
    const holder = pid === null ? 'unknown' : pid.trim().slice(0, 16);
    throw stateRefusal(
      `STATE_DIR ${dir} is in use by another agent process (pid ${holder}); one agent per STATE_DIR: stop that one first, or give each agent its own folder`,
    );
  }
  // Held for the process's life, but it must not keep the process alive on its own.
  server.unref();
  // Anyone connecting learns nothing and is hung up on.
  server.on('connection', (socket) => socket.destroy());
  // Only the refusal's message reads it: a full disk must not keep the agent from starting (its stop
  // must work), so a pid that cannot be written is left out rather than left stale.
  await writeFileAtomic(join(dir, PID_FILE), `${process.pid}\n`).catch(() =>
    rm(join(dir, PID_FILE), { force: true }).catch(() => undefined),
  );
  return { dir, release: () => close(server) };
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
