/**
 * The streaming check of an audit file (`agent.js audit-verify` calls it) on the source itself: the
 * CLI test runs the built bundle, which a slip in the source does not reach until the next build.
 * It must say what the in-memory check says, line for line, about an intact and a tampered log.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { AuditLog, seal, verifyAuditFile, verifyAuditLog } from '../../../src/state/audit.js';
import { auditEvent } from '../../support/audit-files.js';
import { tempDir } from '../../support/temp-dir.js';

describe('verifying an audit file as a stream', () => {
  it('an intact log verifies; a changed, shortened, reordered or broken one fails as the in-memory check says', async () => {
    const file = join(tempDir('audit-file'), 'audit.jsonl');
    const log = await AuditLog.open(file);
    for (let i = 0; i < 5; i += 1) await log.append(auditEvent(i));
    await log.close();
    const text = readFileSync(file, 'utf8');
    assert.deepEqual(await verifyAuditFile(file), { ok: true, lines: 5 });
    assert.deepEqual(await verifyAuditFile(file), verifyAuditLog(text));

    const variants: [string, string][] = [
      ['a line changed', text.replace('"seq":2', '"seq":7')],
      [
        'a line removed',
        text
          .split('\n')
          .filter((_, i) => i !== 1)
          .join('\n'),
      ],
      ['lines swapped', (([a, b, ...rest]) => [b, a, ...rest])(text.split('\n')).join('\n')],
      ['not JSON', text.replace(/^\{/, 'x{')],
    ];
    for (const [what, changed] of variants) {
      writeFileSync(file, changed);
      const streamed = await verifyAuditFile(file);
      assert.equal(streamed.ok, false, what);
      assert.deepEqual(streamed, verifyAuditLog(changed), what);
      assert.equal(typeof streamed.badLine, 'number', what);
      assert.match(streamed.problem ?? '', /\w/, what);
    }
  });

  it('names each kind of tampering in its own words, in memory and as a stream alike', async () => {
    const file = join(tempDir('audit-verdicts'), 'audit.jsonl');
    const log = await AuditLog.open(file);
    for (let i = 0; i < 4; i += 1) await log.append(auditEvent(i));
    await log.close();
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    const [l0 = '', l1 = '', l2 = '', l3 = ''] = lines;
    // Line 2 changed and sealed again with a hash of its own: only the next line's prev tells.
    const resealed = seal(l1.replace(/,"hash":"[0-9a-f]{64}"\}$/, '}').replace('"r1"', '"rX"')).line;
    const verdicts: [string, string, object][] = [
      ['no final line break', lines.join('\n'), { ok: true, lines: 4 }],
      [
        'a field changed',
        [l0, l1.replace('"r1"', '"rX"'), l2, l3].join('\n'),
        { ok: false, lines: 4, badLine: 2, problem: 'changed: its content does not match its own hash' },
      ],
      [
        'a line removed',
        [l0, l2, l3].join('\n'),
        { ok: false, lines: 3, badLine: 2, problem: 'lines removed before it: its sequence number is 2, 1 was expected' },
      ],
      [
        'a line repeated',
        [l0, l0, l1, l2, l3].join('\n'),
        { ok: false, lines: 5, badLine: 2, problem: 'inserted or moved: its sequence number is 0, 1 was expected' },
      ],
      [
        'a line changed and sealed again',
        [l0, resealed, l2, l3].join('\n'),
        { ok: false, lines: 4, badLine: 2, problem: 'changed: the next line no longer points at its hash' },
      ],
    ];
    for (const [what, text, verdict] of verdicts) {
      writeFileSync(file, text);
      assert.deepEqual(verifyAuditLog(text), verdict, what);
      assert.deepEqual(await verifyAuditFile(file), verdict, what);
    }
  });
});
