import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { verifyAuditLog } from '../../src/state/audit.js';
import { type Faults, faultyAuditFile } from '../support/audit-files.js';
import { engine, eventually, image, startTestAgent } from '../support/harness.js';

/** A refused request as a flood sends it: a wrong token, no waiting on anything else. */
function wrongToken(url: string, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const body = JSON.stringify({ image: 'x' });
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        method: 'POST',
        path,
        timeout: 20_000,
        headers: {
          'content-type': 'application/json',
          'cf-access-client-id': 'intruder',
          'cf-access-client-secret': 'wrong-secret-0123456789',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('the audit log under a flood of refusals', () => {
  it('2,000 wrong-token requests add a few dozen lines at most, every one is accounted for, a deploy meanwhile goes through, the chain verifies', async () => {
    const t = await startTestAgent();
    try {
      const before = t.auditLines().length;
      const statuses: number[] = [];
      let deploy: Promise<{ status: number }> | null = null;
      for (let batch = 0; batch < 20; batch += 1) {
        if (batch === 10) deploy = t.api.deploy(image('v1'));
        statuses.push(
          ...(await Promise.all(
            Array.from({ length: 100 }, (_, i) => wrongToken(t.agent.url, i % 2 === 0 ? '/v1/deploy' : '/v1/stop')),
          )),
        );
      }
      assert.equal(statuses.length, 2000);
      assert.ok(statuses.every((s) => s === 401));
      assert.equal((await deploy)?.status, 200, 'the deploy sent during the flood went through');
      assert.equal((await engine.inspect(t.config.containerName))?.State.Running, true);

      // The summary comes at most 5 s after the last counted refusal.
      await eventually('the summary line', 8_000, () => t.auditLines().some((l) => l['outcome'] === 'refusals-counted'));
      const added = t.auditLines().slice(before);
      const alone = added.filter((l) => l['status'] === 401);
      const summaries = added.filter((l) => l['outcome'] === 'refusals-counted');
      const counted = summaries.reduce((sum, l) => sum + Number(l['count']), 0);
      process.stdout.write(
        `# observed: 2000 refusals -> ${alone.length} lines alone, ${summaries.length} summary line(s) counting ${counted}; ${added.length} lines in all\n`,
      );
      assert.ok(added.length <= 40, `${added.length} lines added`);
      assert.equal(alone.length + counted, 2000, 'every refusal is accounted for, alone or in a count');
      for (const s of summaries) {
        const byStatus = Object.values(s['statuses'] as Record<string, number>).reduce((a, b) => a + b, 0);
        const byEndpoint = s['endpoints'] as Record<string, number>;
        assert.equal(byStatus, s['count']);
        assert.equal((byEndpoint['/v1/deploy'] ?? 0) + (byEndpoint['/v1/stop'] ?? 0), s['count']);
      }
      // Authenticated requests are always audited one by one.
      assert.equal(
        added.filter((l) => l['client_id'] !== null && l['endpoint'] === '/v1/deploy').length,
        2,
        'accepted and deployed',
      );
      assert.deepEqual(verifyAuditLog(readFileSync(join(t.config.stateDir, 'audit.jsonl'), 'utf8')).ok, true);
    } finally {
      await t.cleanup();
    }
  });
});

describe('a deploy that succeeded but whose outcome line could not be written', () => {
  it('answers 500 with the truth: deployed, unrecorded; the runtime runs; no torn line is left', async () => {
    // At the start check, the device starts failing: part of each line reaches the disk, then EIO.
    const faults: Faults = {};
    const t = await startTestAgent(
      {},
      {
        openAuditFile: faultyAuditFile(faults),
        onPhase: async (phase) => {
          if (phase === 'checking') faults.failWritesAfter = 40;
        },
      },
    );
    try {
      const res = await t.api.deploy(image('v2'));
      assert.equal(res.status, 500, res.text);
      assert.match(
        String(res.body['reason']),
        /^the request succeeded \(.*"status":"deployed".*\) but its audit line could not be written: the audit log could not be written \(EIO\)/,
      );
      const running = await engine.inspect(t.config.containerName);
      assert.equal(running?.State.Running, true);
      assert.equal(running?.Config.Labels['io.dreichor.image'], image('v2'));
      faults.failWritesAfter = null;
      const text = readFileSync(join(t.config.stateDir, 'audit.jsonl'), 'utf8');
      assert.deepEqual(verifyAuditLog(text), { ok: true, lines: 1 }, 'the accepted line, whole; no part of the outcome line');
      assert.equal((await t.api.status()).body['running'], true);
    } finally {
      await t.cleanup();
    }
  });
});
