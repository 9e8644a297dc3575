/**
 * The audit log's own file, from the source: deleted or replaced while the agent runs (every later
 * line refused with 503, the damage told once), and what the start refuses (a link, a file that is
 * not regular, one owned by another user). The built agent's tests (test/integration/hostile-audit)
 * show the same from outside, but a slip in the source does not reach them until the next build.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { AgentError } from '../../../src/errors.js';
import { AuditLog } from '../../../src/state/audit.js';
import { auditEvent, faultyAuditFile } from '../../support/audit-files.js';
import { tempDir } from '../../support/temp-dir.js';

/** A log with one line, and every damage it tells. */
async function opened(): Promise<{ file: string; log: AuditLog; told: string[] }> {
  const file = join(tempDir('audit-identity'), 'audit.jsonl');
  const told: string[] = [];
  const log = await AuditLog.open(file, { onDamage: (problem) => told.push(problem) });
  await log.append(auditEvent(0));
  assert.equal(log.intact, null, 'not verified yet, no damage either');
  return { file, log, told };
}

const refusedAs = (what: RegExp) => (e: unknown) => {
  assert.ok(e instanceof AgentError, String(e));
  assert.equal(e.status, 503);
  assert.equal(e.code, 'audit_replaced');
  assert.match(e.reason, what);
  assert.match(e.reason, /nothing is done unrecorded/);
  return true;
};

describe("the audit log's file while the agent runs", () => {
  it('deleted: the next line refused (503 audit_replaced), the damage told once and kept', async () => {
    const { file, log, told } = await opened();
    unlinkSync(file);
    await assert.rejects(log.append(auditEvent(1)), refusedAs(/^the audit log was deleted; /));
    await assert.rejects(log.append(auditEvent(2)), refusedAs(/was deleted/));
    assert.equal(told.length, 1, 'told once');
    assert.match(told[0] ?? '', new RegExp(`^${file} was deleted while the agent ran; no line is written anywhere else`));
    assert.equal(log.problem, told[0]);
    assert.equal(log.intact, false);
    log.verifiedIntact();
    assert.equal(log.intact, false, 'a later verification does not hide the damage');
    await log.close();
  });

  it('replaced by another file: refused, and nothing written to either', async () => {
    const { file, log, told } = await opened();
    const before = readFileSync(file, 'utf8');
    renameSync(file, `${file}.old`);
    writeFileSync(file, '');
    await assert.rejects(log.append(auditEvent(1)), refusedAs(/^the audit log was replaced by another file; /));
    assert.equal(readFileSync(file, 'utf8'), '');
    assert.equal(readFileSync(`${file}.old`, 'utf8'), before);
    assert.match(told[0] ?? '', /was replaced by another file while the agent ran/);
    await log.close();
  });

  it('its folder replaced by a file: cannot be checked, refused with the reason code; no damage handler is needed', async () => {
    const dir = tempDir('audit-notdir');
    const file = join(dir, 'state', 'audit.jsonl');
    mkdirSync(join(dir, 'state'));
    // Opened without an onDamage handler: the damage is still kept and the refusal still a 503.
    const log = await AuditLog.open(file);
    await log.append(auditEvent(0));
    renameSync(join(dir, 'state'), join(dir, 'moved'));
    writeFileSync(join(dir, 'state'), '');
    await assert.rejects(log.append(auditEvent(1)), refusedAs(/^the audit log cannot be checked \(ENOTDIR\); /));
    assert.match(log.problem ?? '', /audit\.jsonl cannot be checked \(ENOTDIR\) while the agent ran/);
    await log.close();
  });

  it('still the same file: lines go on, and the verification says intact', async () => {
    const { file, log, told } = await opened();
    await log.append(auditEvent(1));
    log.verifiedIntact();
    assert.equal(log.intact, true);
    assert.deepEqual(log.chainHead.seq, 1);
    assert.equal(readFileSync(file, 'utf8').split('\n').length, 3);
    assert.deepEqual(told, []);
    await log.close();
    await assert.rejects(log.append(auditEvent(2)), (e: unknown) => e instanceof AgentError && e.code === 'audit_unwritable');
  });
});

describe('what the start refuses as its audit log', () => {
  it('a symbolic link in its place: refused by name, its target untouched', async () => {
    const dir = tempDir('audit-link');
    writeFileSync(join(dir, 'target'), 'not a log\n');
    symlinkSync(join(dir, 'target'), join(dir, 'audit.jsonl'));
    await assert.rejects(AuditLog.open(join(dir, 'audit.jsonl')), (e: unknown) => {
      assert.ok(e instanceof AgentError, String(e));
      assert.equal(e.code, 'state_refused');
      assert.equal(e.reason, `${join(dir, 'audit.jsonl')} is a symbolic link; the audit log must be a regular file`);
      return true;
    });
    assert.equal(readFileSync(join(dir, 'target'), 'utf8'), 'not a log\n');
  });

  it('a folder in its place: cannot be opened, with the reason code', async () => {
    const dir = tempDir('audit-folder');
    await assert.rejects(AuditLog.open(dir), (e: unknown) => {
      assert.ok(e instanceof Error && !(e instanceof AgentError), String(e));
      assert.equal(e.message, `${dir} cannot be opened (EISDIR)`);
      return true;
    });
  });

  it('a FIFO in its place: refused as not a regular file, without hanging', async () => {
    const fifo = join(tempDir('audit-fifo'), 'audit.jsonl');
    execFileSync('mkfifo', [fifo]);
    await assert.rejects(AuditLog.open(fifo), (e: unknown) => {
      assert.ok(e instanceof AgentError, String(e));
      assert.equal(e.code, 'state_refused');
      assert.equal(e.reason, `${fifo} is not a regular file`);
      return true;
    });
  });

  it("a file owned by another user: refused, naming both uids (the file's handle closed)", async () => {
    const file = join(tempDir('audit-owner'), 'audit.jsonl');
    const uid = process.getuid?.() ?? 0;
    let closed = false;
    const log = AuditLog.open(file, {
      openFile: async (path) => {
        const handle = await open(path, 'a+', 0o600);
        return {
          read: (b, o, l, p) => handle.read(b, o, l, p),
          write: (b, o, l) => handle.write(b, o, l, null),
          sync: () => handle.sync(),
          truncate: (len) => handle.truncate(len),
          close: async () => {
            closed = true;
            await handle.close();
          },
          stat: async () => ({ ...(await handle.stat()), uid: uid + 1, isFile: () => true }),
        };
      },
    });
    await assert.rejects(log, (e: unknown) => {
      assert.ok(e instanceof AgentError, String(e));
      assert.equal(e.code, 'state_refused');
      assert.equal(e.reason, `${file} is owned by uid ${uid + 1}, not by the agent's user (uid ${uid})`);
      return true;
    });
    assert.equal(closed, true);
  });
});

describe('a line the disk refuses', () => {
  it("answers 503 audit_unwritable with the error code, not the engine's code for 503; the log closes once", async () => {
    const file = join(tempDir('audit-refused'), 'audit.jsonl');
    const log = await AuditLog.open(file, { openFile: faultyAuditFile({ failWritesAfter: 0 }) });
    await assert.rejects(log.append(auditEvent(0)), (e: unknown) => {
      assert.ok(e instanceof AgentError, String(e));
      assert.equal(e.status, 503);
      assert.equal(e.code, 'audit_unwritable');
      assert.equal(e.reason, 'the audit log could not be written (EIO)');
      return true;
    });
    await log.close();
    await log.close();
  });
});
