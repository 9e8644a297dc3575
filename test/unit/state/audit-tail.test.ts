/**
 * The end of the audit log as the open reads it (audit-tail.ts): where the last whole line ends and
 * what it says, read backwards in growing windows, whatever the reads return at a time. A slip here
 * continues the chain from the wrong line, cuts whole lines away as "torn", or reads a whole log.
 */
import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { AuditFile } from '../../../src/state/audit.js';
import { moveTornTail, readTail } from '../../../src/state/audit-tail.js';
import { tempDir } from '../../support/temp-dir.js';

const MIB = 1024 * 1024;
const brief = (line: string) => `${line.slice(0, 3)}…(${line.length})…${line.slice(-3)}`;

/** readTail on a file holding `content`, each read returning at most `chunk` bytes. */
async function tailOf(content: string, chunk = Number.POSITIVE_INFINITY, extra = 0) {
  const path = join(tempDir('audit-tail'), 'audit.jsonl');
  writeFileSync(path, content);
  const handle = await open(path, 'r');
  // readTail only reads.
  const file: Pick<AuditFile, 'read'> = {
    read: (b, o, l, p) => handle.read(b, o, Math.min(l, chunk), p),
  };
  try {
    const { goodLength, lastLine } = await readTail(file as AuditFile, Buffer.byteLength(content) + extra, path);
    // A long line is compared by its length and ends (a failed comparison prints no megabyte).
    return { goodLength, lastLine: lastLine !== null && lastLine.length > 100 ? brief(lastLine) : lastLine };
  } finally {
    await handle.close();
  }
}

describe("the audit log's tail", () => {
  it('the last whole line and where it ends; a torn write after it is not part of it', async () => {
    assert.deepEqual(await tailOf(''), { goodLength: 0, lastLine: null });
    assert.deepEqual(await tailOf('torn'), { goodLength: 0, lastLine: null });
    assert.deepEqual(await tailOf('first\n'), { goodLength: 6, lastLine: 'first' });
    assert.deepEqual(await tailOf('a\nbb\n'), { goodLength: 5, lastLine: 'bb' });
    assert.deepEqual(await tailOf('a\nbb\ntorn'), { goodLength: 5, lastLine: 'bb' });
    assert.deepEqual(await tailOf('a\n\n'), { goodLength: 3, lastLine: '' });
  });

  it('the same when each read returns a few bytes', async () => {
    assert.deepEqual(await tailOf('a\nbb\ntorn', 2), { goodLength: 5, lastLine: 'bb' });
    const long = 'y'.repeat(70_000);
    assert.deepEqual(await tailOf(`x\n${long}\n`, 1000), { goodLength: 70_003, lastLine: brief(long) });
    // A file shorter than its size said (cut meanwhile): the reads that return nothing end the loop.
    assert.deepEqual(await tailOf('a\nbb\n', Number.POSITIVE_INFINITY, 5), { goodLength: 5, lastLine: 'bb' });
  });

  it('a last line or a torn write longer than the first window: read in wider ones', async () => {
    const long = 'y'.repeat(100_000);
    assert.deepEqual(await tailOf(`x\n${long}\n`), { goodLength: 100_003, lastLine: brief(long) });
    assert.deepEqual(await tailOf(`${long}\n`), { goodLength: 100_001, lastLine: brief(long) });
    assert.deepEqual(await tailOf(`a\n${'z'.repeat(300_000)}`), { goodLength: 2, lastLine: 'a' });
    // The first window begins exactly at the newline that ends the last whole line.
    assert.deepEqual(await tailOf(`abc\n${'z'.repeat(64 * 1024 - 1)}`), { goodLength: 4, lastLine: 'abc' });
  });

  it('no whole line within 1 MiB of the end: refused, not read further', async () => {
    await assert.rejects(
      tailOf(`a\n${'q'.repeat(MIB + 10)}\n`),
      /the end of .*audit\.jsonl has no whole line within 1048576 bytes; run the audit verification/,
    );
    // A log larger than the bound whose last line is short: found in the first window.
    const many = 'ab\n'.repeat(400_000);
    assert.deepEqual(await tailOf(`${many}torn`), { goodLength: many.length, lastLine: 'ab' });
    // A line just under the bound is still one.
    const under = 'q'.repeat(MIB - 10);
    assert.deepEqual(await tailOf(`a\n${under}\n`), { goodLength: MIB - 7, lastLine: brief(under) });
  });

  it('a torn tail is moved to a side file named by the time, without colons or dots in its stamp', async () => {
    const dir = tempDir('audit-torn');
    const path = join(dir, 'audit.jsonl');
    writeFileSync(path, 'whole\ntorn');
    const handle = await open(path, 'r+');
    try {
      const side = await moveTornTail(handle, path, 6, 10);
      assert.match(side, /\/audit\.jsonl\.torn-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z$/);
      assert.deepEqual(readdirSync(dir).sort(), ['audit.jsonl', side.slice(dir.length + 1)].sort());
      assert.equal((await handle.stat()).size, 6);
    } finally {
      await handle.close();
    }
  });
});
