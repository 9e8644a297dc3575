/**
 * Temporary folders of the unit tests, removed when the test process exits, whoever runs it (npm run
 * test:unit, scripts/test.sh or a developer's own `node --test`), and whether its tests passed or not.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const made: string[] = [];
process.once('exit', () => {
  for (const dir of made) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch (error) {
      // A folder that cannot go (a mount left in it) is said, not hidden: the run leaves something behind.
      process.stderr.write(`could not remove ${dir}: ${String(error)}\n`);
    }
  }
});

/** A new folder `dreichor-<name>-XXXXXX` in the temporary directory, removed at exit. */
export function tempDir(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `dreichor-${name}-`));
  made.push(dir);
  return dir;
}
