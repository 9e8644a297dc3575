import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { AuditLog, GENESIS, seal } from '../../src/state/audit.js';
import { auditEvent } from '../support/audit-files.js';

/** The slow tier's part of the audit log's promises: a log larger than V8's largest string. */
describe('an audit log of any size', () => {
  it('a log of more than 600 MB: opened from its tail, verified as a stream by the built agent', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dreichor-audit-size-'));
    const file = join(dir, 'audit.jsonl');
    const out = createWriteStream(file);
    const reason = 'r'.repeat(8000);
    let prev = GENESIS;
    let written = 0;
    let seq = 0;
    while (written < 610 * 1024 * 1024) {
      const { line, hash } = seal(JSON.stringify({ time: '2026-11-23T08:00:00.000Z', ...auditEvent(seq, reason), seq, prev }));
      if (!out.write(`${line}\n`)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
      written += line.length + 1;
      prev = hash;
      seq += 1;
    }
    await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())));

    const log = await AuditLog.open(file);
    assert.equal(log.lastHash, prev, 'the chain goes on from the last line');
    await log.append(auditEvent(seq));
    await log.close();
    // A heap far smaller than the file: reading it whole would not fit (nor would one string hold it).
    const verify = spawnSync(process.execPath, ['--max-old-space-size=64', 'dist/agent.js', 'audit-verify', file], {
      encoding: 'utf8',
      timeout: 240_000,
    });
    assert.equal(verify.status, 0, verify.stdout + verify.stderr);
    assert.match(verify.stdout, new RegExp(`intact, ${seq + 1} lines`));
    rmSync(dir, { recursive: true, force: true });
  });
});
