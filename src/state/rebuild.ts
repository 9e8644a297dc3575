import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { stateRefusal } from '../errors.js';
import { AuditLog } from './audit.js';
import { scanAuditLog } from './audit-scan.js';
import { lockStateDir } from './dir-lock.js';
import { writeFileAtomic } from './files.js';
import { type Owner, STATE_SCHEMA } from './schema.js';
import { StateStore } from './state.js';
import { checkStateDir } from './state-dir.js';

/**
 * `node agent.js state-rebuild`: a lost state.json rebuilt from the audit log beside it. Only from a
 * log whose chain verifies; never over an existing state.json. Each `deployed` line carries the
 * tag's digest, so each tag's record is restored as its first deploy wrote it, and the rollback
 * history from the lines' image digests. A tag deployed only by an agent that did not yet write the
 * tag's digest cannot be restored: it is named in the report, never silently forgotten.
 */
export interface RebuildReport {
  readonly file: string;
  readonly lines: number;
  readonly tags: number;
  readonly deployments: number;
  readonly tagsNotRestored: readonly string[];
}

export async function rebuildState(dir: string, owner: Owner): Promise<RebuildReport> {
  await checkStateDir(dir);
  const lock = await lockStateDir(dir);
  try {
    const file = join(dir, 'state.json');
    const auditFile = join(dir, 'audit.jsonl');
    const exists = await lstat(file).then(
      () => true,
      () => false,
    );
    if (exists) throw stateRefusal(`${file} exists; state-rebuild only replaces a lost one (move it aside first)`);
    const scan = await scanAuditLog(auditFile, null);
    if (!scan.verdict.ok)
      throw stateRefusal(
        `${auditFile} does not verify (line ${scan.verdict.badLine}: ${scan.verdict.problem}); the state is rebuilt only from an intact log`,
      );
    const deployments = scan.deployments.flatMap((d) => (d.digest === null ? [] : [{ ...d, digest: d.digest }]));
    const lastHash = await lastLineHash(auditFile, scan.verdict.lines);
    const json = {
      version: STATE_SCHEMA,
      environment: owner.environment,
      container_name: owner.containerName,
      tags: Object.fromEntries(scan.tags),
      last_deploy: scan.lastDeploy,
      last_interrupted: null,
      deployments,
      leftovers: [],
      audit_head: lastHash,
      audit_damage: null,
    };
    await writeFileAtomic(file, `${JSON.stringify(json, null, 2)}\n`);
    // What was written must be what the agent reads.
    await StateStore.open(dir, writeFileAtomic, { owner });
    return {
      file,
      lines: scan.verdict.lines,
      tags: scan.tags.size,
      deployments: deployments.length,
      tagsNotRestored: [...scan.tagsWithoutDigest].sort(),
    };
  } finally {
    await lock.release();
  }
}

async function lastLineHash(auditFile: string, lines: number): Promise<{ seq: number; hash: string } | null> {
  if (lines === 0) return null;
  const log = await AuditLog.open(auditFile);
  const head = log.chainHead;
  await log.close();
  return head.seq < 0 ? null : head;
}
