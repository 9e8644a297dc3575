/**
 * The one pass over the audit log behind `state rebuild` and the start-up check of the recorded head
 * (audit-scan.ts), from the source: which lines count as deploys, the first digest of each tag, the
 * history kept, the last deploy, the head found or not, and a scan that stops at a given size. A slip
 * here rebuilds a state that names the wrong image as the way back, or trusts a log cut short.
 */
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { GENESIS, seal } from '../../../src/state/audit.js';
import { scanAuditLog } from '../../../src/state/audit-scan.js';
import { DEPLOYMENTS_KEPT } from '../../../src/state/state-file.js';
import { tempDir } from '../../support/temp-dir.js';

const REPO = 'registry.example:5000/dreichor/runtime';
const digest = (c: string) => `sha256:${c.repeat(64)}`;
const at = (i: number) => new Date(Date.UTC(2026, 11, 1) + i * 60_000).toISOString();

/** A chained log of these events (time i minutes after 1 December), as the agent writes it; its hashes. */
function writeLog(events: readonly Record<string, unknown>[]): { file: string; hashes: string[] } {
  let prev = GENESIS;
  const hashes: string[] = [];
  const lines = events.map((event, seq) => {
    const { line, hash } = seal(JSON.stringify({ time: at(seq), ...event, seq, prev }));
    prev = hash;
    hashes.push(hash);
    return `${line}\n`;
  });
  const file = join(tempDir('audit-scan'), 'audit.jsonl');
  writeFileSync(file, lines.join(''));
  return { file, hashes };
}

const deploy = (i: number, image: string | null, outcome: string, extra: Record<string, unknown> = {}) => ({
  request_id: `r${i}`,
  client_id: 'client.access',
  endpoint: '/v1/deploy',
  image,
  outcome,
  status: outcome === 'deployed' ? 200 : 502,
  reason: outcome === 'deployed' ? null : `reason ${i}`,
  duration_ms: 1,
  ...extra,
});
const digests = (tag: string, image: string) => ({ tag_digest: digest(tag), image_digest: digest(image) });

describe('the scan of the audit log', () => {
  const events = [
    deploy(0, `${REPO}:v1.2.3-rc_1`, 'deployed', digests('a', 'b')),
    deploy(1, `${REPO}:v1.2.3-rc_1`, 'deployed', digests('c', 'd')), // a later digest of the same tag
    deploy(2, `${REPO}:v2`, 'deployed'), // written before the tag's digest was recorded
    { ...deploy(3, `${REPO}:v9`, 'stopped'), endpoint: '/v1/stop' }, // not a deploy
    deploy(4, `${REPO}:v3`, 'accepted'), // not an outcome
    deploy(5, null, 'refused'), // no image
    deploy(6, `${REPO}:v2`, 'deployed', digests('e', 'f')), // now with its digest
    deploy(7, `${REPO}:v4`, 'failed', { image_digest: digest('9') }),
  ];

  it('the first digest of each tag, the deploys that answered, the last deploy of any outcome', async () => {
    const { file, hashes } = writeLog(events);
    const scan = await scanAuditLog(file, { seq: 6, hash: hashes[6] ?? '' });
    assert.deepEqual(scan.verdict, { ok: true, lines: 8 });
    assert.equal(scan.headFound, true);
    assert.deepEqual(
      [...scan.tags],
      [
        ['v1.2.3-rc_1', { digest: digest('a'), first_deployed_at: at(0) }],
        ['v2', { digest: digest('e'), first_deployed_at: at(6) }],
      ],
    );
    assert.deepEqual([...scan.tagsWithoutDigest], []);
    assert.deepEqual(scan.deployments, [
      { image: `${REPO}:v1.2.3-rc_1`, digest: digest('b'), at: at(0), request_id: 'r0' },
      { image: `${REPO}:v1.2.3-rc_1`, digest: digest('d'), at: at(1), request_id: 'r1' },
      { image: `${REPO}:v2`, digest: null, at: at(2), request_id: 'r2' },
      { image: `${REPO}:v2`, digest: digest('f'), at: at(6), request_id: 'r6' },
    ]);
    assert.deepEqual(scan.lastDeploy, {
      image: `${REPO}:v4`,
      outcome: 'failed',
      reason: 'reason 7',
      at: at(7),
      request_id: 'r7',
      image_digest: digest('9'),
    });
  });

  it('a tag deployed only without its digest is named as such; a deploy without a reason or digest reads null', async () => {
    const { reason: _reason, ...withoutReason } = deploy(1, `${REPO}:v2`, 'deployed');
    const { file } = writeLog([deploy(0, `${REPO}:v1`, 'deployed', digests('a', 'b')), withoutReason]);
    const scan = await scanAuditLog(file, null);
    assert.equal(scan.headFound, null, 'no head recorded: nothing to find');
    assert.deepEqual([...scan.tagsWithoutDigest], ['v2']);
    assert.deepEqual([...scan.tags.keys()], ['v1']);
    assert.deepEqual(scan.lastDeploy, {
      image: `${REPO}:v2`,
      outcome: 'deployed',
      reason: null,
      at: at(1),
      request_id: 'r1',
      image_digest: null,
    });
  });

  it('the recorded head: not found when its hash differs or its line is not there', async () => {
    const { file, hashes } = writeLog(events.slice(0, 3));
    assert.equal((await scanAuditLog(file, { seq: 1, hash: hashes[0] ?? '' })).headFound, false);
    assert.equal((await scanAuditLog(file, { seq: 5, hash: hashes[2] ?? '' })).headFound, false);
    assert.equal((await scanAuditLog(file, { seq: 0, hash: hashes[0] ?? '' })).headFound, true);
  });

  it('a broken chain is the verdict; the deploys are still read', async () => {
    const { file } = writeLog(events.slice(0, 2));
    writeFileSync(file, `x${readFileSync(file, 'utf8')}`);
    const scan = await scanAuditLog(file, null);
    assert.deepEqual(scan.verdict, { ok: false, lines: 2, badLine: 1, problem: 'not an audit line' });
    assert.equal(scan.deployments.length, 1, 'the second line still reads as a deploy');
  });

  it('stops at the given size: only the lines written before the scan began', async () => {
    const { file, hashes } = writeLog(events.slice(0, 3));
    const whole = statSync(file).size;
    const all = await scanAuditLog(file, null, whole);
    assert.equal(all.verdict.lines, 3);
    // The size after the first two lines: the third (appended since) is not read.
    const { file: two } = writeLog(events.slice(0, 2));
    const scan = await scanAuditLog(file, { seq: 2, hash: hashes[2] ?? '' }, statSync(two).size);
    assert.deepEqual(scan.verdict, { ok: true, lines: 2 });
    assert.equal(scan.headFound, false);
    assert.equal(scan.deployments.length, 2);
    const none = await scanAuditLog(file, null, 0);
    assert.deepEqual(none.verdict, { ok: true, lines: 0 });
    assert.equal(none.lastDeploy, null);
  });

  it(`keeps the last ${DEPLOYMENTS_KEPT} deploys of a long history, oldest first`, async () => {
    const many = Array.from({ length: 2 * DEPLOYMENTS_KEPT + 5 }, (_, i) =>
      deploy(i, `${REPO}:t${i}`, 'deployed', digests('a', 'b')),
    );
    const { file } = writeLog(many);
    const scan = await scanAuditLog(file, null);
    assert.equal(scan.deployments.length, DEPLOYMENTS_KEPT);
    assert.equal(scan.deployments[0]?.request_id, `r${DEPLOYMENTS_KEPT + 5}`);
    assert.equal(scan.deployments.at(-1)?.request_id, `r${2 * DEPLOYMENTS_KEPT + 4}`);
    assert.equal(scan.tags.size, 2 * DEPLOYMENTS_KEPT + 5, 'every tag keeps its record');
  });

  it('lines that are no deploy of a tag: an abandoned or interrupted deploy is the last, an image without a tag no record', async () => {
    const lines = [
      deploy(0, 'registry.example:5000/dreichor/runtime', 'deployed'), // no tag: no record, no crash
      deploy(1, null, 'failed'), // refused before an image was known: not a deploy of anything
      deploy(2, `${REPO}:v5`, 'abandoned'),
    ];
    const abandoned = await scanAuditLog(writeLog(lines).file, null);
    assert.deepEqual([...abandoned.tags], []);
    assert.deepEqual([...abandoned.tagsWithoutDigest], []);
    assert.deepEqual(
      abandoned.deployments.map((d) => d.request_id),
      ['r0'],
    );
    assert.equal(abandoned.lastDeploy?.outcome, 'abandoned');
    const beforeNull = await scanAuditLog(writeLog(lines.slice(0, 2)).file, null);
    assert.equal(beforeNull.lastDeploy?.request_id, 'r0', 'a failed line without an image is no last deploy');
    const interrupted = await scanAuditLog(writeLog([...lines, deploy(3, `${REPO}:v6`, 'interrupted')]).file, null);
    assert.equal(interrupted.lastDeploy?.outcome, 'interrupted');
    assert.equal(interrupted.lastDeploy?.image, `${REPO}:v6`);
  });

  it('a line that is JSON but no object (a number, null) is a broken chain, not a crash', async () => {
    const { file, hashes } = writeLog(events.slice(0, 1));
    for (const junk of ['42', 'null']) {
      writeFileSync(file, `${readFileSync(file, 'utf8').split('\n')[0]}\n${junk}\n`);
      const scan = await scanAuditLog(file, { seq: 0, hash: hashes[0] ?? '' });
      assert.deepEqual(scan.verdict, { ok: false, lines: 2, badLine: 2, problem: 'not an audit line' }, junk);
      assert.equal(scan.headFound, true, junk);
    }
  });
});
