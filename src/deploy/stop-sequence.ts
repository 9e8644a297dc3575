import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import type { ContainerInfo, ContainerSummary, EnginePort } from '../engine/engine-port.js';
import { AgentError, describe } from '../errors.js';
import type { AuditLog } from '../state/audit.js';
import type { DeployJournal } from '../state/journal.js';
import type { RequestContext, StopResult } from './operations.js';
import type { Reconciler } from './reconciler.js';
import { isLeftoverName, LABEL, OWNER, ownedBy } from './runtime-spec.js';
import { type Timing, until } from './time-bound.js';

/**
 * POST /v1/stop, the emergency brake. It depends on nothing but the engine's stop of what runs:
 *  - not on the disk: a record, journal or audit line the disk refuses is a warning in the answer
 *    (and the HTTP layer answers 500 "stopped but unrecorded" if even the outcome line fails);
 *  - not on the clean-up of leftovers: a removal that fails is handed to the reconciler;
 *  - not on a deploy's own bookkeeping.
 * It stops the container at the fixed name, and then any other running container of this
 * environment's runtime whatever its name, so that afterwards none runs.
 */
export interface StopDeps {
  readonly config: Config;
  readonly engine: EnginePort;
  readonly audit: AuditLog;
  readonly journal: DeployJournal;
  readonly logger: Logger;
  readonly reconciler: Reconciler;
  readonly timing: Pick<Timing, 'stopPatienceMs'>;
}

export async function emergencyStop(deps: StopDeps, context: RequestContext): Promise<StopResult> {
  const { config, engine, logger, reconciler, journal } = deps;
  const warnings: string[] = [];
  const note = (what: string) => (error: unknown) => {
    logger.error({ err: error, requestId: context.requestId }, `stop: ${what}`);
    warnings.push(`${what} (${describe(error)}); the runtime was stopped all the same`);
  };
  const patience = () => AbortSignal.timeout(deps.timing.stopPatienceMs);

  // An interrupted operation's journal is recorded before this stop writes its own over it.
  const recorded = await until(reconciler.recordInterrupted(), patience()).then(
    () => true,
    (error: unknown) => {
      note('the record of an interrupted operation could not be written')(error);
      return false;
    },
  );
  if (recorded) {
    await until(
      journal.enter({
        operation: 'stop',
        request_id: context.requestId,
        image: '',
        phase: 'stopping',
        old_container_id: null,
        new_container_id: null,
        old_image: null,
      }),
      patience(),
    ).catch(note('the stop could not be journaled'));
  }
  // After the journal: an agent killed between the two still leaves this request accounted for.
  await until(
    deps.audit.accepted({ requestId: context.requestId, clientId: context.clientId, endpoint: context.endpoint, image: null }),
    patience(),
  ).catch(note('the accepted line could not be written to the audit log'));

  const current = await engine.inspectContainer(config.containerName);
  if (current !== null) await halt(deps, current, warnings);

  // Then whatever else of this runtime runs: a leftover that an operator or the engine started.
  let others: ContainerSummary[];
  try {
    others = await runningOthers(deps);
  } catch (error) {
    const what = current === null ? 'there was no container at the fixed name' : `${config.containerName} was stopped`;
    throw new AgentError(
      502,
      `${what}, but the engine could not list the other containers of this environment (${describe(error)}); POST /v1/stop again`,
      { cause: error },
    );
  }
  const alsoStopped: string[] = [];
  for (const c of others) {
    const info = await engine.inspectContainer(c.id);
    if (info?.running !== true) continue;
    await halt(deps, info, warnings);
    alsoStopped.push(c.name);
  }
  if (recorded) await until(journal.clear(), patience()).catch(note('the stop journal could not be cleared'));
  return {
    status: 'stopped',
    container_name: config.containerName,
    removed: current !== null,
    ...(alsoStopped.length === 0 ? {} : { also_stopped: alsoStopped }),
    ...(warnings.length === 0 ? {} : { warnings }),
  };
}

/**
 * Stops one container for good, and removes it. Invariant 8: a container the agent did not create
 * gets restart policy "no" first, or the engine could start it again on its own. A removal that fails
 * is left to the reconciler: the container is stopped, which is what the brake is for.
 */
async function halt(deps: StopDeps, c: ContainerInfo, warnings: string[]): Promise<void> {
  const { config, engine, logger, reconciler } = deps;
  const patience = () => AbortSignal.timeout(deps.timing.stopPatienceMs);
  if (c.restartPolicy !== 'no' && c.restartPolicy !== '') {
    await engine.disableRestart(c.id, patience()).catch((error: unknown) => {
      logger.error({ err: error, container: c.name }, 'could not set the restart policy to "no"');
      warnings.push(`the restart policy of ${c.name} could not be set to "no" (${describe(error)})`);
    });
  }
  await engine.stop(c.id, config.stopTimeoutSeconds);
  await engine.remove(c.id, patience()).catch((error: unknown) => {
    logger.error({ err: error, container: c.name }, 'could not remove a stopped container; retrying in the background');
    reconciler.hand(c.id, c.name, error);
    warnings.push(
      `${c.name} is stopped but could not be removed yet (${describe(error)}); it is removed in the background (status: leftovers)`,
    );
  });
}

/** Running containers of this environment's runtime other than the fixed name: by label and by name. */
async function runningOthers(deps: StopDeps): Promise<ContainerSummary[]> {
  const { config, engine } = deps;
  const [byLabel, byName] = await Promise.all([engine.listByLabels(ownedBy(config)), engine.listByName(config.containerName)]);
  const ours = (c: ContainerSummary) =>
    (c.labels[LABEL.owner] === OWNER && c.labels[LABEL.environment] === config.environment) ||
    isLeftoverName(config.containerName, c.name);
  const found = new Map<string, ContainerSummary>();
  for (const c of [...byLabel, ...byName]) {
    if (c.state === 'running' && c.name !== config.containerName && ours(c)) found.set(c.id, c);
  }
  // A leftover the reconciler saw running, found by the id a journal gave it (an unlabelled runtime
  // moved aside and then renamed by hand has nothing else that marks it as ours).
  for (const l of deps.reconciler.leftovers) {
    if (l.state === 'running' && !found.has(l.id))
      found.set(l.id, { id: l.id, name: l.name ?? l.id.slice(0, 12), state: 'running', labels: {} });
  }
  return [...found.values()];
}
