import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import type { ContainerInfo, EnginePort } from './engine-port.js';
import { AgentError, describe } from './errors.js';
import { tail } from './redact.js';
import { imageOf } from './runtime-spec.js';
import { ANSWER_RESERVE_MS } from './time-bound.js';

/** Step 5 of a deploy: the new container must keep running, or become healthy, before "deployed". */
const KILL_SLACK_MS = 1_500;
const POLL_MS = 200;
const LOG_LINES_IN_REASON = 20;
const LOG_CHARS_IN_REASON = 2000;

export interface StartCheckDeps {
  readonly config: Pick<Config, 'startCheckSeconds' | 'stopTimeoutSeconds'>;
  readonly engine: EnginePort;
  readonly logger: Logger;
}

export interface StartCheckRun {
  readonly id: string;
  readonly hasHealthcheck: boolean;
  /** The container it replaced, to name the image to roll back to. */
  readonly previous: ContainerInfo | null;
  /** When the answer is due (ms since the epoch). */
  readonly answerBy: number;
  /** Fires when the deploy's time is up. */
  readonly bound: AbortSignal;
}

/**
 * Watches the new container for START_CHECK_SECONDS: it must keep running, or, when its image has a
 * HEALTHCHECK, report healthy within that time. A failure stops it (the deploy failed, so the
 * runtime must not keep running half-checked) and reports its last log lines.
 */
export async function startCheck(deps: StartCheckDeps, run: StartCheckRun): Promise<ContainerInfo> {
  const seconds = deps.config.startCheckSeconds;
  const until = Date.now() + seconds * 1000;
  const fail = (what: string) => startFailure(deps, run, what);
  for (;;) {
    const c = await deps.engine.inspectContainer(run.id, run.bound);
    if (c === null) throw await fail('disappeared during the start check');
    if (!c.running) throw await fail(`exited with code ${c.exitCode} during the start check`);
    if (run.hasHealthcheck && c.health === 'healthy') return c;
    if (run.hasHealthcheck && c.health === 'unhealthy') throw await fail('reported unhealthy');
    const left = until - Date.now();
    if (left <= 0) {
      if (run.hasHealthcheck) throw await fail(`did not become healthy within ${seconds} s`);
      return c;
    }
    await sleep(Math.min(POLL_MS, left));
  }
}

/**
 * Stops a container that failed its start check, then reads its last log lines (masked by the engine
 * wrapper). Its stop grace is what is left before the answer is due: a container that ignores
 * SIGTERM is killed rather than let the answer come after Cloudflare has given up.
 */
async function startFailure(deps: StartCheckDeps, run: StartCheckRun, what: string): Promise<AgentError> {
  const { engine, logger } = deps;
  const grace = deps.config.stopTimeoutSeconds;
  const left = run.answerBy - ANSWER_RESERVE_MS - KILL_SLACK_MS - Date.now();
  const seconds = Math.max(0, Math.min(grace, Math.floor(left / 1000)));
  const stopped = await engine.stop(run.id, seconds, undefined, KILL_SLACK_MS).catch((error: unknown) => {
    logger.error({ err: error }, 'could not stop the failed container');
    return 'failed';
  });
  const logs = await engine
    .logsTail(run.id, LOG_LINES_IN_REASON, KILL_SLACK_MS)
    .catch((error: unknown) => `(logs unavailable: ${describe(error)})`);
  const after =
    stopped === 'failed' ? null : await engine.inspectContainer(run.id, AbortSignal.timeout(KILL_SLACK_MS)).catch(() => null);
  const killed = after?.exitCode === 137 && seconds < grace;
  const rollback = run.previous === null ? '' : ` The image before it was ${imageOf(run.previous)}: deploy it to roll back.`;
  const state =
    stopped === 'failed'
      ? ' It could not be stopped and is kept for inspection.'
      : killed
        ? ` It did not stop within the ${seconds} s left of DEPLOY_TIMEOUT_SECONDS (its grace is ${grace} s) and was killed; it is kept for inspection.`
        : ' It was stopped and kept for inspection.';
  const logsText = tail(logs, LOG_CHARS_IN_REASON) || '(none)';
  return new AgentError(502, `the new container ${what}.${state}${rollback} Last log lines:\n${logsText}`, {
    code: 'start_check_failed',
  });
}
