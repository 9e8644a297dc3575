import type { Logger } from 'pino';
import type { AuditLog } from '../state/audit.js';
import type { DeployJournal, DeployPhase, JournalRecord } from '../state/journal.js';
import type { StateStore } from '../state/state.js';

/**
 * The record of an operation the agent was killed in: its journal is turned into its record (status,
 * audit line) and its container ids are kept in the state for the clean-up (reconciler.ts). Disk
 * only, no engine: it runs at start, before anything listens, and again before each deploy or stop.
 */

const PHASES: Readonly<Record<DeployPhase, string>> = {
  pulling: 'pulling the image (nothing was touched)',
  created: 'the new container was created beside the old one (the old one was not touched)',
  stopping: 'stopping the old container',
  starting: 'starting the new container (the old one was already stopped and moved aside)',
  checking: 'checking the new container after its start',
};

export interface InterruptedDeps {
  readonly journal: DeployJournal;
  readonly store: StateStore;
  readonly audit: AuditLog;
  readonly logger: Logger;
}

/**
 * State, then audit line, then the journal is cleared (a crash in between does it again). Throws when
 * the disk refuses. True when an interrupted operation was recorded: its containers are leftovers now.
 */
export async function recordInterruptedJournal(deps: InterruptedDeps): Promise<boolean> {
  const { journal, store, audit, logger } = deps;
  const interrupted = await journal.read();
  if (interrupted === null) return false;
  const last = store.lastDeploy;
  if (last !== null && last.request_id === interrupted.request_id && last.outcome !== 'interrupted') {
    // It ended and was recorded; only the journal's removal failed. Nothing was interrupted.
    await journal.clear();
    return false;
  }
  const ids = [interrupted.old_container_id, interrupted.new_container_id].filter((id): id is string => id !== null);
  const reason = describeInterrupted(interrupted);
  logger.warn({ interrupted }, 'an operation was interrupted (the agent stopped in the middle of it)');
  await store.setLeftovers([...store.leftovers, ...ids]);
  if (interrupted.operation === 'deploy') {
    const record = {
      image: interrupted.image,
      outcome: 'interrupted',
      reason,
      at: new Date().toISOString(),
      request_id: interrupted.request_id,
      image_digest: null,
    } as const;
    await store.setInterrupted(record, interrupted.since);
  }
  await audit.recovered({
    requestId: interrupted.request_id,
    image: interrupted.operation === 'deploy' ? interrupted.image : null,
    reason,
  });
  await journal.clear();
  return true;
}

/** The record of an interrupted operation, in words, with the way back when there is one. */
function describeInterrupted(r: JournalRecord): string {
  if (r.operation === 'stop') {
    return `stop ${r.request_id} was interrupted (the agent stopped in the middle of it); GET /v1/status shows what runs, POST /v1/stop again to be sure`;
  }
  const back = r.old_image === null ? '' : `; the last image deployed successfully before it was ${r.old_image}`;
  return `deploy ${r.request_id} of ${r.image} was interrupted while ${PHASES[r.phase]}; the runtime container is left as it is (GET /v1/status shows it), leftovers are removed in the background${back}`;
}
