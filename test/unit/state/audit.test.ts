import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { AuditLog, verifyAuditLog } from '../../../src/state/audit.js';
import { expectedHash, seal } from '../../../src/state/audit-chain.js';
import { auditEvent } from '../../support/audit-files.js';
import { tempDir } from '../../support/temp-dir.js';

const event = (n: number) => auditEvent(n);

async function writeLog(lines: number): Promise<string> {
  const file = join(tempDir('audit-test'), 'audit.jsonl');
  const log = await AuditLog.open(file);
  for (let i = 0; i < lines; i += 1) await log.append(event(i));
  await log.close();
  return file;
}

describe('audit log', () => {
  it('chains lines, survives a reopen, and verifies', async () => {
    const file = await writeLog(3);
    const log = await AuditLog.open(file);
    await log.append(event(3));
    await log.close();
    const text = readFileSync(file, 'utf8');
    assert.deepEqual(verifyAuditLog(text), { ok: true, lines: 4 });
    const lines = text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(
      lines.map((l) => l['seq']),
      [0, 1, 2, 3],
    );
    assert.equal(lines[1]?.['prev'], lines[0]?.['hash']);
    assert.equal(lines[0]?.['prev'], '0'.repeat(64));
  });

  it('names the first line that was changed, removed or inserted', async () => {
    const lines = readFileSync(await writeLog(5), 'utf8')
      .trim()
      .split('\n');
    const check = (edited: string[]) => verifyAuditLog(`${edited.join('\n')}\n`);

    const changed = [...lines];
    changed[2] = changed[2]!.replace('"img:2"', '"img:evil"');
    assert.equal(check(changed).badLine, 3);
    assert.match(check(changed).problem ?? '', /changed/);

    // Changed, with its own hash recomputed: the next line no longer points at it.
    const { createHash } = await import('node:crypto');
    const body = changed[2]!.replace(/,"hash":"[0-9a-f]{64}"\}$/, '}');
    changed[2] = `${body.slice(0, -1)},"hash":"${createHash('sha256').update(body).digest('hex')}"}`;
    assert.equal(check(changed).badLine, 3);

    const removed = lines.filter((_, i) => i !== 1);
    assert.equal(check(removed).badLine, 2);
    assert.match(check(removed).problem ?? '', /removed/);

    const inserted = [...lines.slice(0, 2), lines[1]!, ...lines.slice(2)];
    assert.equal(check(inserted).badLine, 3);

    assert.equal(check([...lines.slice(0, 4), 'not json']).badLine, 5);
    assert.equal(check(lines.slice(0, 4)).ok, true, 'a truncated tail is not visible in the file alone');
  });

  it('reads the hash from the end of a line only, whatever the line holds before it', () => {
    // A value inside the line that looks like the hash field (a nested object ending in "hash") must
    // not be taken for it: the line's own hash is its last field.
    const nested = `{"detail":{"note":"n","hash":"${'a'.repeat(64)}"},"seq":0,"prev":"${'0'.repeat(64)}"}`;
    const { line, hash } = seal(nested);
    assert.equal(expectedHash(line), hash);
    assert.deepEqual(verifyAuditLog(`${line}\n`), { ok: true, lines: 1 });
    assert.equal(expectedHash(nested), null, 'a line without its own hash field is not sealed');
  });

  it('the audit-verify command of the built agent says which line, with its exit code', () => {
    const file = join(tempDir('audit-cli'), 'audit.jsonl');
    const run = () => spawnSync(process.execPath, ['dist/agent.js', 'audit-verify', file], { encoding: 'utf8', timeout: 10_000 });
    return writeLog(3).then((source) => {
      writeFileSync(file, readFileSync(source, 'utf8'));
      const ok = run();
      assert.equal(ok.status, 0, ok.stderr);
      assert.match(ok.stdout, /intact, 3 lines/);
      writeFileSync(file, readFileSync(source, 'utf8').replace('"img:1"', '"img:x"'));
      const bad = run();
      assert.equal(bad.status, 1);
      assert.match(bad.stdout, /line 2 of 3: changed/);
    });
  });

  it('refuses to append when the file cannot be written', async () => {
    const file = await writeLog(1);
    const log = await AuditLog.open(file);
    await log.close();
    await assert.rejects(log.append(event(1)), /audit log is closed/);
  });
});
