/**
 * Each kind of audit line, field by field, as its writer puts it on disk. The log is the operator's
 * proof of who asked for what and how it ended: a field renamed, emptied or dropped, or one written
 * when it has no value (a claimed client id, a provenance), must fail here, not only in the deploy,
 * HTTP and state tests that write these lines on their way.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { AuditLog, GENESIS, REFUSALS_AUDITED_PER_MINUTE, verifyAuditLog } from '../../../src/state/audit.js';
import { tempDir } from '../../support/temp-dir.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const DIGEST_A = `sha256:${'a'.repeat(64)}`;
const DIGEST_B = `sha256:${'b'.repeat(64)}`;

/** Writes with `write` on a fresh log and returns its lines, parsed, once the log is closed. */
async function linesOf(write: (log: AuditLog) => Promise<void>): Promise<Record<string, unknown>[]> {
  const file = join(tempDir('audit-lines'), 'audit.jsonl');
  const log = await AuditLog.open(file);
  try {
    await write(log);
  } finally {
    await log.close();
  }
  const text = readFileSync(file, 'utf8');
  assert.deepEqual(verifyAuditLog(text).ok, true);
  return text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** A line without its chain fields and time (checked once, below), and a random request id checked. */
function content(line: Record<string, unknown> | undefined, randomId = false): Record<string, unknown> {
  assert.ok(line !== undefined);
  const { time, seq, prev, hash, ...rest } = line;
  assert.equal(typeof time, 'string');
  assert.equal(typeof seq, 'number');
  assert.equal(typeof prev, 'string');
  assert.equal(typeof hash, 'string');
  if (!randomId) return rest;
  assert.match(String(rest['request_id']), UUID);
  const { request_id: _id, ...others } = rest;
  return others;
}

describe('the audit lines, field by field', () => {
  it('accepted: who asked for what, before anything is done', async () => {
    const [line] = await linesOf((log) =>
      log.accepted({ requestId: 'req-1', clientId: 'client.access', endpoint: '/v1/deploy', image: 'repo:v1' }),
    );
    assert.deepEqual(content(line), {
      request_id: 'req-1',
      client_id: 'client.access',
      endpoint: '/v1/deploy',
      image: 'repo:v1',
      outcome: 'accepted',
      reason: null,
    });
  });

  it('outcome: every field; the claimed client id, the digests and the provenance only when there are some', async () => {
    const base = {
      requestId: 'req-2',
      clientId: null,
      endpoint: '/v1/stop',
      image: null,
      outcome: 'refused',
      status: 401,
      reason: 'no token',
      durationMs: 12,
    } as const;
    const provenance = { builder: 'https://github.com/actions/runner', source: 'git+https://example/repo@refs/tags/v1' };
    const lines = await linesOf(async (log) => {
      await log.outcome(base);
      await log.outcome({ ...base, claimedClientId: null });
      await log.outcome({
        ...base,
        requestId: 'req-3',
        clientId: 'client.access',
        endpoint: '/v1/deploy',
        image: 'repo:v2',
        outcome: 'deployed',
        status: 200,
        reason: null,
        durationMs: 3456,
        claimedClientId: 'someone.else',
        digests: { tag: DIGEST_A, image: DIGEST_B },
        provenance,
      });
    });
    const bare = {
      request_id: 'req-2',
      client_id: null,
      endpoint: '/v1/stop',
      image: null,
      outcome: 'refused',
      status: 401,
      reason: 'no token',
      duration_ms: 12,
    };
    assert.deepEqual(content(lines[0]), bare);
    assert.deepEqual(content(lines[1]), bare, 'a claimed client id of null is not written');
    assert.deepEqual(content(lines[2]), {
      request_id: 'req-3',
      client_id: 'client.access',
      claimed_client_id: 'someone.else',
      endpoint: '/v1/deploy',
      image: 'repo:v2',
      outcome: 'deployed',
      status: 200,
      reason: null,
      duration_ms: 3456,
      tag_digest: DIGEST_A,
      image_digest: DIGEST_B,
      provenance,
    });
  });

  it("recovered: start-up recovery's line, under the interrupted request's id or a new one", async () => {
    const lines = await linesOf(async (log) => {
      await log.recovered({ requestId: 'req-4', image: 'repo:v3', reason: 'a deploy was interrupted' });
      await log.recovered({ requestId: null, image: null, reason: 'an unreadable journal' });
    });
    assert.deepEqual(content(lines[0]), {
      request_id: 'req-4',
      client_id: null,
      endpoint: 'startup-recovery',
      image: 'repo:v3',
      outcome: 'recovered',
      reason: 'a deploy was interrupted',
    });
    assert.deepEqual(content(lines[1], true), {
      client_id: null,
      endpoint: 'startup-recovery',
      image: null,
      outcome: 'recovered',
      reason: 'an unreadable journal',
    });
  });

  it("cleaned and pruned: the reconciler's and image retention's lines", async () => {
    const lines = await linesOf(async (log) => {
      await log.cleaned('removed leftover containers: a, b');
      await log.pruned({ image: 'repo:v0', digest: DIGEST_A, reason: 'older than the last 3 deployed' });
    });
    assert.deepEqual(content(lines[0], true), {
      client_id: null,
      endpoint: 'reconciler',
      image: null,
      outcome: 'cleaned',
      reason: 'removed leftover containers: a, b',
    });
    assert.deepEqual(content(lines[1], true), {
      client_id: null,
      endpoint: 'image-retention',
      image: 'repo:v0',
      digest: DIGEST_A,
      outcome: 'pruned',
      reason: 'older than the last 3 deployed',
    });
  });

  it('refusals before authentication: the line that starts the counting, and the summary', async () => {
    const summary = {
      count: 42,
      first: '2026-12-06T03:00:00.000Z',
      last: '2026-12-06T03:00:59.000Z',
      statuses: { '401': 40, '403': 2 },
      endpoints: { '/v1/deploy': 42 },
    };
    const lines = await linesOf(async (log) => {
      await log.refusalsCounting('2026-12-06T03:00:00.000Z', '/v1/deploy', 401);
      await log.refusalsCounted(summary, '42 refusals counted in a minute');
    });
    assert.deepEqual(content(lines[0], true), {
      client_id: null,
      endpoint: 'refusals',
      image: null,
      outcome: 'refusals-counting',
      reason: `more than ${REFUSALS_AUDITED_PER_MINUTE} refusals before authentication in a minute: from 2026-12-06T03:00:00.000Z on they are counted, and a summary line with their count follows`,
      first: '2026-12-06T03:00:00.000Z',
      first_endpoint: '/v1/deploy',
      first_status: 401,
    });
    assert.deepEqual(content(lines[1], true), {
      client_id: null,
      endpoint: 'refusals',
      image: null,
      outcome: 'refusals-counted',
      reason: '42 refusals counted in a minute',
      ...summary,
    });
  });

  it('the frame of every line: the time first, then the event, then seq, prev and hash chained', async () => {
    const before = Date.now();
    const lines = await linesOf(async (log) => {
      await log.cleaned('one');
      await log.cleaned('two');
    });
    for (const [i, line] of lines.entries()) {
      const keys = Object.keys(line);
      assert.equal(keys[0], 'time');
      assert.deepEqual(keys.slice(-3), ['seq', 'prev', 'hash']);
      const time = Date.parse(String(line['time']));
      assert.ok(time >= before - 1000 && time <= Date.now() + 1000, String(line['time']));
      assert.equal(line['seq'], i);
    }
    assert.equal(lines[0]?.['prev'], GENESIS);
    assert.equal(lines[1]?.['prev'], lines[0]?.['hash']);
  });
});
