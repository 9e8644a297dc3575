import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import type { ContainerInfo, EnginePort } from '../engine/engine-port.js';
import { AgentError, describe } from '../errors.js';
import { tail } from '../policy/redact.js';
import type { Timing } from './time-bound.js';

/** Step 5 of a deploy: the new container must keep running, or become healthy, before "deployed". */
const LOG_CHARS_IN_REASON = 2000;

export interface StartCheckDeps {
  readonly config: Pick<Config, 'startCheckSeconds' | 'stopTimeoutSeconds' | 'failureLogLines'>;
  readonly engine: EnginePort;
  readonly logger: Logger;
  readonly timing: Timing;
}

export interface StartCheckRun {
  readonly id: string;
  readonly hasHealthcheck: boolean;
  /** The image to roll back to: the last one deployed successfully before. */
  readonly rollback: string | null;
  /** Fires when the engine calls of the deploy must end (`answerReserveMs` before the answer is due). */
  readonly bound: AbortSignal;
  /** When `bound` fires (ms since the epoch). */
  readonly boundAt: number;
}

/**
 * Watches the new container for START_CHECK_SECONDS: it must keep running, or, when its image has a
 * HEALTHCHECK, report healthy within that time. A failure stops it (the deploy failed, so the
 * runtime must not keep running half-checked) and reports its last log lines. A container that
 * cannot be checked (the engine does not answer in time) has failed the check too.
 */
export async function startCheck(deps: StartCheckDeps, run: StartCheckRun): Promise<ContainerInfo> {
  const seconds = deps.config.startCheckSeconds;
  const until = Date.now() + seconds * 1000;
  // The check ends early enough to kill a container that failed it before the bound.
  const checkBy = AbortSignal.any([
    run.bound,
    AbortSignal.timeout(Math.max(0, run.boundAt - deps.timing.killSlackMs - Date.now())),
  ]);
  const fail = (what: string) => startFailure(deps, run, what);
  for (;;) {
    // Only a look that began after START_CHECK_SECONDS is the last one: a look begun just before the
    // end and answered just after it would let an exit at that very moment count as "started".
    const lookedAt = Date.now();
    let c: ContainerInfo | null;
    try {
      c = await deps.engine.inspectContainer(run.id, checkBy);
    } catch (error) {
      throw await fail(`could not be checked (${describe(error)})`);
    }
    if (c === null) throw await fail('disappeared during the start check');
    if (!c.running) throw await fail(`exited with code ${c.exitCode} during the start check`);
    if (run.hasHealthcheck && c.health === 'healthy') return c;
    if (run.hasHealthcheck && c.health === 'unhealthy') throw await fail('reported unhealthy');
    if (lookedAt > until) {
      if (run.hasHealthcheck) throw await fail(`did not become healthy within ${seconds} s`);
      return c;
    }
    await sleep(Math.min(deps.timing.pollMs, Math.max(0, until - Date.now()) + 1));
  }
}

/**
 * Stops a container that failed its start check, then reads its last log lines (masked by the engine
 * wrapper). Its stop grace is what is left before the bound: a container that ignores SIGTERM is
 * killed rather than let the answer come after Cloudflare has given up. Every call ends by the bound.
 */
async function startFailure(deps: StartCheckDeps, run: StartCheckRun, what: string): Promise<AgentError> {
  const { engine, logger, timing } = deps;
  const grace = deps.config.stopTimeoutSeconds;
  const left = run.boundAt - timing.killSlackMs - Date.now();
  const seconds = Math.max(0, Math.min(grace, Math.floor(left / 1000)));
  const stopped = await engine.stop(run.id, seconds, run.bound, timing.killSlackMs).catch((error: unknown) => {
    logger.error({ err: error }, 'could not stop the failed container');
    return 'failed';
  });
  const lines = deps.config.failureLogLines;
  const logs =
    lines === 0
      ? null
      : await engine.logsTail(run.id, lines, run.bound).catch((error: unknown) => `(logs unavailable: ${describe(error)})`);
  const after = stopped === 'failed' ? null : await engine.inspectContainer(run.id, run.bound).catch(() => null);
  const killed = after?.exitCode === 137 && seconds < grace;
  const rollback = run.rollback === null ? '' : ` The image before it was ${run.rollback}: deploy it to roll back.`;
  const state =
    stopped === 'failed'
      ? ' It could not be stopped (POST /v1/stop stops it) and is kept for inspection.'
      : killed
        ? ` It did not stop within the ${seconds} s left of DEPLOY_TIMEOUT_SECONDS (its grace is ${grace} s) and was killed; it is kept for inspection.`
        : ' It was stopped and kept for inspection.';
  const logsText =
    logs === null
      ? ' Its log lines are not included (FAILURE_LOG_LINES=0).'
      : ` Last log lines:\n${tail(logs, LOG_CHARS_IN_REASON) || '(none)'}`;
  return new AgentError(502, `the new container ${what}.${state}${rollback}${logsText}`, { code: 'start_check_failed' });
}
