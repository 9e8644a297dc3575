import type { ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Stops a child process the way a host does: SIGTERM (or `signal`), then SIGKILL after `graceMs`.
 * Resolves when it has exited; at once if it already had. Bounded: never waits forever.
 */
export async function stopChild(child: ChildProcess, graceMs = 10_000, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  if ((await Promise.race([exited.then(() => 'exited'), sleep(graceMs, 'timeout')])) === 'timeout') {
    child.kill('SIGKILL');
    await Promise.race([exited, sleep(5_000)]);
  }
}
