/**
 * The fast tier samples the fault matrix and the property tests (test/support/sampling.ts); here, in
 * the integration tier, every unit file that samples runs in full (DREICHOR_MATRIX=full), so the two
 * tiers together cover every case. It needs no engine: it runs once, not on each engine.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

/** The unit files that sample: those that import the sampling helper. */
function samplingFiles(): string[] {
  const files: string[] = [];
  for (const entry of readdirSync('test/unit', { recursive: true, encoding: 'utf8' })) {
    if (!entry.endsWith('.test.ts')) continue;
    const path = join('test/unit', entry);
    if (readFileSync(path, 'utf8').includes("support/sampling.js'")) files.push(path);
  }
  return files.sort();
}

/** The environment in full mode, without the test runner's marker (a nested run would report to it, not print). */
function fullEnv(): NodeJS.ProcessEnv {
  const { NODE_TEST_CONTEXT: _, ...env } = process.env;
  return { ...env, DREICHOR_MATRIX: 'full' };
}

describe('the fast tier’s samples, in full', () => {
  it('every case of the fault matrix and every run of the property tests passes', () => {
    const files = samplingFiles();
    assert.ok(files.includes('test/unit/deploy/fault-matrix.test.ts'), `found ${files.join(', ')}`);
    const run = spawnSync(
      process.execPath,
      ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-reporter=spec', ...files],
      { encoding: 'utf8', timeout: 600_000, env: fullEnv() },
    );
    process.stdout.write(
      run.stdout
        .split('\n')
        .filter((l) => l.startsWith('# fault matrix'))
        .join('\n'),
    );
    assert.equal(run.status, 0, `${run.stdout.slice(-20_000)}\n${run.stderr.slice(-5_000)}`);
    assert.match(run.stdout, /every case \(DREICHOR_MATRIX=full\)/);
  });
});
