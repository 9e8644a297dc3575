import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

/** Keeps `npm run bench` working: one quick run with its own sandbox. Asserts no timing. */
describe('the benchmark', () => {
  it('runs in quick mode and reports every figure beside its target', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dreichor-bench-'));
    const out = join(dir, 'BENCHMARKS.md');
    try {
      const r = spawnSync('npx', ['tsx', 'scripts/bench.ts', '--quick', '--out', out], { encoding: 'utf8', timeout: 300_000 });
      assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
      const report = readFileSync(out, 'utf8');
      for (const figure of [
        'status p99 at 50 connections',
        'status throughput ≥ 0.25× the bare floor',
        'bare node:http',
        'idle memory ≤ 1.25× the bare floor',
        'memory after the status load',
        'downtime ≤ 1.15× the engine start call',
        'swap faster than the docker CLI',
        'rollback within 1.1× of a swap whose image is present',
        'rollback: the previous image, on the host',
        'start-up',
      ]) {
        assert.ok(report.includes(figure), `the report has ${figure}`);
      }
      assert.doesNotMatch(report, /NaN|undefined|Infinity/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
