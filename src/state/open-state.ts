import { lstat, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { AgentError, describe, stateRefusal } from '../errors.js';
import { AuditLog, type AuditOpenOptions } from './audit.js';
import { type AuditScan, scanAuditLog } from './audit-scan.js';
import { lockStateDir } from './dir-lock.js';
import { writeFileAtomic } from './files.js';
import { DeployJournal } from './journal.js';
import type { Owner } from './schema.js';
import { type Deployment, StateStore } from './state.js';
import { checkStateDir } from './state-dir.js';

/**
 * The agent's state at start, in this order, each failure naming its file:
 *  1. STATE_DIR: a real folder of the agent's user that no one else may write (state-dir.ts);
 *  2. its lock, before anything in it is read: one agent process per folder (dir-lock.ts);
 *  3. lost state is never a fresh start: state.json absent (lstat: a dangling link is damage) while
 *     the audit log beside it holds lines, or while the fixed name carries this agent's labels, refuses;
 *  4. state.json and the journal: of this environment and fixed name, of a schema this agent knows;
 *  5. the audit log: a regular file of the agent's, still holding the head state.json recorded; its
 *     chain verified as a stream in the background (status: audit_intact).
 */
export interface AgentState {
  readonly store: StateStore;
  readonly audit: AuditLog;
  readonly journal: DeployJournal;
  /** The start-up verification of the audit log (already logged); tests wait for it. */
  readonly verified: Promise<void>;
  /** Records the audit head, closes the log and releases the folder. */
  close(): Promise<void>;
}

export interface OpenStateOptions {
  readonly logger: Logger;
  readonly openAuditFile?: AuditOpenOptions['openFile'];
  /**
   * Whether the container at the fixed name carries this agent's labels (null: no container). Asked
   * only when state.json is absent; bounded by the signal.
   */
  readonly fixedNameIsOurs: (signal: AbortSignal) => Promise<boolean>;
}

/** How long the start may wait on the engine for the lost-state check before deferring it. */
export const FIXED_NAME_CHECK_MS = 3_000;

export async function openAgentState(dir: string, owner: Owner, options: OpenStateOptions): Promise<AgentState> {
  const { logger } = options;
  await checkStateDir(dir);
  const lock = await lockStateDir(dir);
  let audit: AuditLog | null = null;
  try {
    const stateFile = join(dir, 'state.json');
    const auditFile = join(dir, 'audit.jsonl');
    const lost = await lostStateCheck(stateFile, auditFile, owner, options);
    const store = await StateStore.open(dir, writeFileAtomic, {
      owner,
      ...(lost === null ? {} : { beforeFirstWrite: lost }),
    });
    const journal = new DeployJournal(dir, writeFileAtomic, owner);
    await journal.read(); // refuses another environment's journal, or a newer schema's, before anything acts on it
    const onDamage = (problem: string) => {
      logger.error({ file: auditFile, problem }, 'the audit log is damaged');
      store
        .noteAuditDamage(problem)
        .catch((e: unknown) => logger.error({ err: e }, 'could not record the audit damage in the state'));
    };
    const opened = await AuditLog.open(auditFile, {
      onDamage,
      onUnrecorded: (message) => logger.error({ file: auditFile }, message),
      ...(options.openAuditFile === undefined ? {} : { openFile: options.openAuditFile }),
    });
    audit = opened;
    if (store.auditDamage !== null) opened.damaged(store.auditDamage);
    const recorded = store.recordedAuditHead;
    const head = opened.chainHead;
    if (recorded !== null && head.seq < recorded.seq)
      opened.damaged(
        `${auditFile} ends at sequence number ${head.seq}, but ${stateFile} recorded line ${recorded.seq}: lines were cut from its end, or it was deleted or replaced`,
      );
    store.trackAuditHead(() => (opened.chainHead.seq < 0 ? null : opened.chainHead));
    const size = (await stat(auditFile)).size;
    const scan = scanAuditLog(auditFile, recorded, size).then((s) => judge(s, opened, auditFile, stateFile, logger));
    // A state of an older schema is migrated before anything is served: its rollback history from the log.
    if (store.migratedFrom !== null) await migrate(store, await scan, logger);
    const verified = scan.then(
      () => undefined,
      (error: unknown) => opened.damaged(`${auditFile} could not be verified (${describe(error)})`),
    );
    return {
      store,
      audit: opened,
      journal,
      verified,
      close: async () => {
        await store
          .recordAuditHead()
          .catch((e: unknown) => logger.error({ err: e }, 'could not record the audit head in the state'));
        await opened.close();
        await lock.release();
      },
    };
  } catch (error) {
    await audit?.close().catch(() => undefined);
    await lock.release();
    throw error;
  }
}

/**
 * Null when state.json exists or nothing says a state was lost. Refuses when it was; when the engine
 * cannot say now, returns the check, to be made before the state's first write (a deploy needs the
 * engine anyway).
 */
async function lostStateCheck(
  stateFile: string,
  auditFile: string,
  owner: Owner,
  options: OpenStateOptions,
): Promise<(() => Promise<void>) | null> {
  const present = await lstat(stateFile).then(
    () => true,
    (error: unknown) => {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw new Error(`${stateFile} cannot be read (${describe(error)})`);
    },
  );
  if (present) return null;
  const auditSize = await lstat(auditFile).then(
    (s) => s.size,
    () => 0,
  );
  if (auditSize > 0)
    throw stateRefusal(
      `${stateFile} is missing, but ${auditFile} beside it holds ${auditSize} bytes of records: the tag records were lost, this is not a fresh install. Restore ${stateFile} from a backup, or rebuild it from the audit log: node agent.js state-rebuild`,
    );
  const refusal = () =>
    stateRefusal(
      `${stateFile} is missing, but the container ${owner.containerName} carries this agent's labels: the state was lost (a STATE_DIR not mounted?), this is not a fresh install. Restore ${stateFile}, or rebuild it from the audit log: node agent.js state-rebuild`,
    );
  try {
    if (await options.fixedNameIsOurs(AbortSignal.timeout(FIXED_NAME_CHECK_MS))) throw refusal();
    return null;
  } catch (error) {
    if (error instanceof AgentError && error.code === 'state_refused') throw error;
    options.logger.warn(
      { err: error },
      `${stateFile} is missing and the engine could not say whether ${owner.containerName} is this agent's; checked again before the state is first written`,
    );
    return async () => {
      if (await options.fixedNameIsOurs(AbortSignal.timeout(FIXED_NAME_CHECK_MS))) throw refusal();
    };
  }
}

function judge(scan: AuditScan, audit: AuditLog, auditFile: string, stateFile: string, logger: Logger): AuditScan {
  const { verdict } = scan;
  if (!verdict.ok) audit.damaged(`${auditFile}: line ${verdict.badLine}: ${verdict.problem}`);
  else if (scan.headFound === false)
    audit.damaged(`${auditFile} no longer holds the line ${stateFile} recorded as its head: it was rewritten or replaced`);
  else {
    audit.verifiedIntact();
    logger.info({ file: auditFile, lines: verdict.lines }, 'audit log verified: its chain is intact');
  }
  return scan;
}

/** The rollback history of a state written by an older schema, from the audit log's `deployed` lines. */
async function migrate(store: StateStore, scan: AuditScan, logger: Logger): Promise<void> {
  const history: Deployment[] = [];
  for (const d of scan.deployments) {
    // Lines of older agents carry no digest: the tag's record stands in (the same image for a
    // single-platform tag; the label and retention only use it to keep the image).
    const tag = /:([\w][\w.-]{0,127})$/.exec(d.image)?.[1];
    const digest = d.digest ?? (tag === undefined ? null : store.recordedDigest(tag));
    if (digest !== null) history.push({ ...d, digest });
  }
  await store.adoptHistory(history);
  await store.flush();
  logger.info({ from: store.migratedFrom, deployments: history.length }, `${store.file}: migrated from an older schema`);
}
