import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { AgentError } from '../../../src/errors.js';
import { AuditLog, verifyAuditLog } from '../../../src/state/audit.js';
import { auditEvent, type Faults, faultyAuditFile } from '../../support/audit-files.js';

/**
 * The audit log under faults: short writes, failed writes and fsyncs, a disk that fills in the middle
 * of a line, a torn last line after a power loss. (A log too large for one string: test/integration/audit-size.test.ts.)
 */
const root = mkdtempSync(join(tmpdir(), 'dreichor-audit-faults-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshFile = (): string => {
  n += 1;
  return join(mkdtempSync(join(root, `l${n}-`)), 'audit.jsonl');
};
const lines = (file: string): Record<string, unknown>[] =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

async function rejects503(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (e: unknown) => e instanceof AgentError && e.status === 503 && e.reason.includes(`(${code})`));
}

describe('audit log faults', () => {
  it('short writes: every line is written whole', async () => {
    const file = freshFile();
    const log = await AuditLog.open(file, { openFile: faultyAuditFile({ maxBytesPerWrite: 7 }) });
    for (let i = 0; i < 5; i += 1) await log.append(auditEvent(i));
    await log.close();
    assert.deepEqual(verifyAuditLog(readFileSync(file, 'utf8')), { ok: true, lines: 5 });
  });

  it('a failed fsync: 503, the line is cut back out of the file, and the chain goes on', async () => {
    const file = freshFile();
    const log = await AuditLog.open(file, { openFile: faultyAuditFile({ failNextSync: true }) });
    await rejects503(log.append(auditEvent(0)), 'EIO');
    assert.equal(statSync(file).size, 0, 'no line that the chain did not count');
    await log.append(auditEvent(1));
    await log.close();
    assert.deepEqual(verifyAuditLog(readFileSync(file, 'utf8')), { ok: true, lines: 1 });
    assert.deepEqual(
      lines(file).map((l) => l['request_id']),
      ['r1'],
    );
  });

  it('a write that fails halfway through a line: 503, cut back, no torn line', async () => {
    const file = freshFile();
    const faults: Faults = { failWritesAfter: 40 };
    const log = await AuditLog.open(file, { openFile: faultyAuditFile(faults) });
    await rejects503(log.append(auditEvent(0)), 'EIO');
    assert.equal(statSync(file).size, 0);
    faults.failWritesAfter = null;
    await log.append(auditEvent(1));
    await log.close();
    assert.deepEqual(verifyAuditLog(readFileSync(file, 'utf8')), { ok: true, lines: 1 });
  });

  it('a disk that fills in the middle of a line (a real tmpfs): 503 ENOSPC, cut back, and writes again once there is room', async () => {
    const mountPoint = mkdtempSync(join(root, 'full-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mountPoint]);
    let log: AuditLog | undefined;
    try {
      const file = join(mountPoint, 'audit.jsonl');
      log = await AuditLog.open(file);
      // Leave 100 bytes in the file's last page, then fill every other page: the next line starts
      // in the room that is left and cannot be finished.
      await log.append(auditEvent(0, ''));
      const base = statSync(file).size;
      await log.append(auditEvent(1, ''));
      const lineLength = statSync(file).size - base;
      let need = 4096 - 100 - (statSync(file).size % 4096);
      if (need <= lineLength) need += 4096;
      await log.append(auditEvent(2, 'p'.repeat(need - lineLength)));
      assert.equal(statSync(file).size % 4096, 4096 - 100);
      try {
        writeFileSync(join(mountPoint, 'filler'), Buffer.alloc(128 * 1024));
      } catch {
        // ENOSPC: full, which is the point
      }
      const before = statSync(file).size;
      await rejects503(log.append(auditEvent(3)), 'ENOSPC');
      assert.equal(statSync(file).size, before, 'the part of the line that fitted was cut back');
      assert.deepEqual(verifyAuditLog(readFileSync(file, 'utf8')), { ok: true, lines: 3 });

      rmSync(join(mountPoint, 'filler'));
      await log.append(auditEvent(4));
      await log.close();
      assert.deepEqual(verifyAuditLog(readFileSync(file, 'utf8')), { ok: true, lines: 4 });
      assert.deepEqual(
        lines(file).map((l) => l['seq']),
        [0, 1, 2, 3],
      );
    } finally {
      // Also when an assertion failed: the open log holds the mount busy, so it is closed first; a
      // mount still busy is detached (lazily) rather than left behind.
      await log?.close().catch(() => undefined);
      try {
        execFileSync('umount', [mountPoint], { stdio: 'ignore' });
      } catch {
        execFileSync('umount', ['--lazy', mountPoint]);
      }
    }
  });

  it('a torn last line (power loss): moved to a side file, a line says so, the agent opens and the chain verifies', async () => {
    for (const fragment of ['{"time":"2026-11-23T08:00:00.000Z","request_id":"r', '\0'.repeat(300)]) {
      const file = freshFile();
      const log = await AuditLog.open(file);
      for (let i = 0; i < 3; i += 1) await log.append(auditEvent(i));
      await log.close();
      appendFileSync(file, fragment);

      const reopened = await AuditLog.open(file);
      await reopened.append(auditEvent(3));
      await reopened.close();
      assert.deepEqual(verifyAuditLog(readFileSync(file, 'utf8')), { ok: true, lines: 5 });
      const all = lines(file);
      assert.equal(all[3]?.['outcome'], 'repaired');
      assert.match(String(all[3]?.['reason']), /torn \(\d+ bytes/);
      const side = readdirSync(join(file, '..')).filter((f) => f.startsWith('audit.jsonl.torn-'));
      assert.equal(side.length, 1);
      assert.equal(readFileSync(join(file, '..', side[0] ?? ''), 'utf8'), fragment, 'the fragment is kept, byte for byte');
    }
  });

  it('a torn last line whose repair line cannot be written: the log still opens, and the logger is told', async () => {
    const file = freshFile();
    const log = await AuditLog.open(file);
    for (let i = 0; i < 2; i += 1) await log.append(auditEvent(i));
    await log.close();
    appendFileSync(file, '{"time":"2026-11-23T08:00:00.000Z","request_id":"r');
    const told: string[] = [];
    const reopened = await AuditLog.open(file, {
      openFile: faultyAuditFile({ failWritesAfter: 0 }),
      onUnrecorded: (message) => told.push(message),
    });
    await reopened.close();
    assert.equal(told.length, 1);
    assert.match(told[0] ?? '', /a torn last line was found; .*the repair could not be recorded \(.*EIO/);
  });

  it('a last whole line that is not an audit line is damage, not a torn write: refused', async () => {
    const file = freshFile();
    writeFileSync(file, 'this was edited by hand\n');
    await assert.rejects(AuditLog.open(file), /not an audit line/);
  });
});
