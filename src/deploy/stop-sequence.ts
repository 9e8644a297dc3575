import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import type { ContainerInfo, ContainerSummary, EnginePort, StopOutcome } from '../engine/engine-port.js';
import { AgentError, describe } from '../errors.js';
import type { AuditLog } from '../state/audit.js';
import type { DeployJournal } from '../state/journal.js';
import type { RequestContext, StopResult } from './operations.js';
import type { Reconciler } from './reconciler.js';
import { isLeftoverName, LABEL, OWNER, ownedBy } from './runtime-spec.js';
import { type Timing, until } from './time-bound.js';

/**
 * POST /v1/stop, the emergency brake. It needs nothing but the engine's stop of the container at the
 * fixed name, asked by that name (the engine resolves it): no read of the engine comes before it, and
 * nothing on the disk holds it.
 *
 *  1. The stop: restart policy "no" by name (harmless for the agent's own container, and invariant 8
 *     for one it did not create), bounded and never in the way; then the engine's stop by name with
 *     STOP_TIMEOUT_SECONDS, and the engine's kill by name if the stop fails or outlasts its deadline.
 *     304 "already stopped" and 404 "no such container" are answers.
 *  2. Beside it, never before it: the write-ahead records (an interrupted operation's record, the
 *     stop's journal, the `accepted` audit line), each bounded. A disk that refuses or hangs is a
 *     warning in the answer, never a reason to wait.
 *  3. After it, each call bounded and each failure only a warning: the check of what is at the fixed
 *     name (inspect), its restart policy again if the first update failed, its removal (handed to the
 *     reconciler when the engine refuses), then every other running container of this environment's
 *     runtime that is provably this agent's (its labels, or a staging or retired name of this agent's),
 *     never one labelled for the other environment, never one known only from the disk.
 *
 * The answer is 200 whenever the runtime at the fixed name no longer runs; an error only when the
 * engine's stop and kill both failed and the runtime may still run, which the answer says.
 */
export interface StopDeps {
  readonly config: Config;
  readonly engine: EnginePort;
  readonly audit: AuditLog;
  readonly journal: DeployJournal;
  readonly logger: Logger;
  readonly reconciler: Reconciler;
  readonly timing: Pick<Timing, 'stopPatienceMs' | 'stopSlackMs' | 'killMs'>;
}

/** The longest a stop can take to answer, whatever the engine and the disk do (see the phases above). */
export function stopBoundMs(stopTimeoutSeconds: number, timing: StopDeps['timing']): number {
  const { stopPatienceMs: p, stopSlackMs, killMs } = timing;
  const stopOrKill = stopTimeoutSeconds * 1000 + stopSlackMs + killMs;
  // Update, stop, kill, and a check when both failed; the write-ahead records run beside them.
  const first = Math.max(p + stopOrKill + p, 3 * p);
  return first + afterBudgetMs(stopTimeoutSeconds, timing);
}

/** Everything after the runtime's stop shares one deadline: check, removal, list, the others, the journal. */
const afterBudgetMs = (stopTimeoutSeconds: number, timing: StopDeps['timing']): number =>
  stopTimeoutSeconds * 1000 + timing.stopSlackMs + timing.killMs + 4 * timing.stopPatienceMs;

/** A deadline whose reason says what did not answer, for the warnings. */
function patience(ms: number, outer?: AbortSignal): AbortSignal {
  const own = new AbortController();
  const timer = setTimeout(() => own.abort(new AgentError(504, `no answer within ${ms / 1000} s`)), ms);
  timer.unref();
  return outer === undefined ? own.signal : AbortSignal.any([own.signal, outer]);
}

export async function emergencyStop(deps: StopDeps, context: RequestContext): Promise<StopResult> {
  const { config, logger, timing } = deps;
  const warnings: string[] = [];
  const note = (what: string) => (error: unknown) => {
    logger.error({ err: error, requestId: context.requestId }, `stop: ${what}`);
    warnings.push(`${what} (${describe(error)})`);
  };

  // Started, not awaited: the disk never stands before the engine's stop.
  const records = writeAhead(deps, context, note);
  const halted = await haltRuntime(deps, warnings);
  const recorded = await records;

  const after = patience(afterBudgetMs(config.stopTimeoutSeconds, timing));
  const clearJournal = async () => {
    if (recorded)
      await until(deps.journal.clear(), patience(timing.stopPatienceMs, after)).catch(
        note('the stop journal could not be cleared'),
      );
  };
  if (halted.outcome === null) {
    await clearJournal();
    throw halted.failure;
  }
  const removed = await settleRuntime(deps, halted.outcome, after, warnings);
  const alsoStopped = await stopOthers(deps, after, warnings);
  await clearJournal();
  return {
    status: 'stopped',
    container_name: config.containerName,
    removed,
    ...(alsoStopped.length === 0 ? {} : { also_stopped: alsoStopped }),
    ...(warnings.length === 0 ? {} : { warnings }),
  };
}

/** The write-ahead records, each bounded; resolves with whether the stop's journal may be written over. */
async function writeAhead(deps: StopDeps, context: RequestContext, note: (what: string) => (e: unknown) => void) {
  const p = deps.timing.stopPatienceMs;
  // An interrupted operation's journal is recorded before this stop writes its own over it.
  const recorded = await until(deps.reconciler.recordInterrupted(), patience(p)).then(
    () => true,
    (error: unknown) => {
      note('the record of an interrupted operation could not be written')(error);
      return false;
    },
  );
  if (recorded) {
    const entry = { operation: 'stop', request_id: context.requestId, image: '', phase: 'stopping' } as const;
    await until(
      deps.journal.enter({ ...entry, old_container_id: null, new_container_id: null, old_image: null }),
      patience(p),
    ).catch(note('the stop could not be journaled'));
  }
  // After the journal: an agent killed between the two still leaves this request accounted for.
  await until(
    deps.audit.accepted({ requestId: context.requestId, clientId: context.clientId, endpoint: context.endpoint, image: null }),
    patience(p),
  ).catch(note('the accepted line could not be written to the audit log'));
  return recorded;
}

type Halted =
  | { readonly outcome: StopOutcome; readonly failure?: never }
  | { readonly outcome: null; readonly failure: AgentError };

/** Phase 1: restart policy "no", stop, kill if need be; all by the fixed name, none after a read. */
async function haltRuntime(deps: StopDeps, warnings: string[]): Promise<Halted> {
  const { config, engine, logger, timing } = deps;
  const name = config.containerName;
  // Bounded by the patience, never waited on longer: a failure is retried after the stop (phase 2a).
  const policy = await engine.disableRestart(name, undefined, timing.stopPatienceMs).catch((error: unknown) => error);
  if (policy === 'gone') return { outcome: 'gone' }; // the engine's answer: nothing at the fixed name
  let outcome: StopOutcome | null = null;
  let stopError: unknown = null;
  let killError: unknown = null;
  try {
    outcome = await engine.stop(name, config.stopTimeoutSeconds, undefined, timing.stopSlackMs);
  } catch (error) {
    stopError = error;
    try {
      outcome = await engine.kill(name, undefined, timing.killMs);
      warnings.push(`the engine's stop of ${name} failed (${describe(error)}); it was killed instead`);
    } catch (e) {
      killError = e;
    }
  }
  if (outcome !== null) {
    if (policy !== 'updated' && outcome !== 'gone')
      warnings.push(`the restart policy of ${name} could not be set to "no" before its stop (${describe(policy)})`);
    return { outcome };
  }
  logger.error({ stopError, killError }, 'stop: the engine refused both the stop and the kill of the runtime');
  // Both failed: the runtime may still run, unless the engine now says otherwise.
  const info = await engine.inspectContainer(name, patience(timing.stopPatienceMs)).catch(() => undefined);
  if (info === null || info?.running === false) {
    warnings.push(
      `the engine's stop and kill of ${name} failed (${describe(stopError)}; ${describe(killError)}), but it no longer runs`,
    );
    return { outcome: info === null ? 'gone' : 'not-running' };
  }
  const status = killError instanceof AgentError && killError.status === 504 ? 504 : 502;
  const failure = new AgentError(
    status,
    `the engine's stop and kill of ${name} both failed (stop: ${describe(stopError)}; kill: ${describe(killError)}); the runtime may still be running: POST /v1/stop again, or stop it on the host (docker kill ${name})`,
    { cause: killError },
  );
  return { outcome: null, failure };
}

/**
 * Phase 2a: what is at the fixed name now. Checked, its restart policy made "no" if the first update
 * failed, and removed. Returns whether a container was there to stop and remove.
 */
async function settleRuntime(deps: StopDeps, outcome: StopOutcome, after: AbortSignal, warnings: string[]): Promise<boolean> {
  const { config, engine, reconciler, timing } = deps;
  const name = config.containerName;
  if (outcome === 'gone') return false;
  const p = () => patience(timing.stopPatienceMs, after);
  let info: ContainerInfo | null;
  try {
    info = await engine.inspectContainer(name, p());
  } catch (error) {
    warnings.push(`${name} could not be checked after the engine stopped it (${describe(error)}); it was removed by its name`);
    await engine.remove(name, p()).catch((e: unknown) => {
      warnings.push(`${name} is stopped but could not be removed (${describe(e)}); POST /v1/stop again to remove it`);
    });
    return true;
  }
  if (info === null) return true;
  if (info.running) {
    // Started again between the stop and now (by someone on the host): the brake still holds.
    const again = await engine.kill(info.id, p(), timing.killMs).catch((error: unknown) => error);
    if (typeof again !== 'string') {
      throw new AgentError(
        502,
        `${name} runs again after its stop and could not be killed (${describe(again)}); POST /v1/stop again`,
      );
    }
  }
  const other = info.labels[LABEL.environment];
  if (other !== undefined && other !== config.environment) {
    warnings.push(`${name} carries the labels of the ${other} environment: stopped by its name, but not removed`);
    return true;
  }
  if (info.restartPolicy !== 'no' && info.restartPolicy !== '') {
    await engine.disableRestart(info.id, p(), timing.stopPatienceMs).catch((error: unknown) => {
      warnings.push(`the restart policy of ${name} could not be set to "no" (${describe(error)})`);
    });
  }
  await engine.remove(info.id, p()).catch((error: unknown) => {
    reconciler.hand(info.id, name, error);
    warnings.push(
      `${name} is stopped but could not be removed yet (${describe(error)}); it is removed in the background (status: leftovers)`,
    );
  });
  return true;
}

/** Phase 2b: any other running container of this runtime that is provably this agent's. */
async function stopOthers(deps: StopDeps, after: AbortSignal, warnings: string[]): Promise<string[]> {
  const { config, engine, reconciler, timing } = deps;
  const p = () => patience(timing.stopPatienceMs, after);
  let others: ContainerSummary[];
  try {
    const [byLabel, byName] = await Promise.all([
      engine.listByLabels(ownedBy(config), p()),
      engine.listByName(config.containerName, p()),
    ]);
    others = provablyOurs(config, [...byLabel, ...byName]).filter((c) => c.state === 'running');
  } catch (error) {
    warnings.push(
      `the other containers of this environment could not be listed (${describe(error)}); only ${config.containerName} was stopped: GET /v1/status, or POST /v1/stop again, to be sure none runs`,
    );
    return [];
  }
  const stopped = await Promise.all(
    others.map(async (c) => {
      // Harmless for the agent's own; for one it did not create, the engine must not start it again.
      await engine.disableRestart(c.id, p(), timing.stopPatienceMs).catch((error: unknown) => {
        warnings.push(`the restart policy of ${c.name} could not be set to "no" (${describe(error)})`);
      });
      const halted = await engine
        .stop(c.id, config.stopTimeoutSeconds, after, timing.stopSlackMs)
        .catch(() => engine.kill(c.id, after, timing.killMs))
        .catch((error: unknown) => error);
      if (typeof halted !== 'string') {
        warnings.push(
          `${c.name}, running although it is not the runtime, could not be stopped (${describe(halted)}); POST /v1/stop again`,
        );
        return null;
      }
      await engine.remove(c.id, p()).catch((error: unknown) => {
        reconciler.hand(c.id, c.name, error);
        warnings.push(`${c.name} is stopped but could not be removed yet (${describe(error)}); it is removed in the background`);
      });
      return c.name;
    }),
  );
  return stopped.filter((n): n is string => n !== null);
}

/**
 * Security: the containers the stop may touch besides the fixed name. Only what carries this agent's
 * labels (owner, environment, fixed name) or a staging or retired name of this agent's, and never
 * one labelled for another environment: the other agent's runtime is never this brake's business.
 */
export function provablyOurs(config: Config, found: readonly ContainerSummary[]): ContainerSummary[] {
  const ours = new Map<string, ContainerSummary>();
  for (const c of found) {
    if (c.name === config.containerName) continue;
    const environment = c.labels[LABEL.environment];
    if (environment !== undefined && environment !== config.environment) continue;
    const labelled =
      c.labels[LABEL.owner] === OWNER &&
      environment === config.environment &&
      c.labels[LABEL.containerName] === config.containerName;
    if (labelled || isLeftoverName(config.containerName, c.name)) ours.set(c.id, c);
  }
  return [...ours.values()];
}
