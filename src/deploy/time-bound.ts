import { type Config, DEPLOY_MARGIN_SECONDS } from '../config/config.js';
import { AgentError } from '../errors.js';

/**
 * The time bound of a deploy. The answer must reach the caller within DEPLOY_TIMEOUT_SECONDS, and
 * Cloudflare gives up on an origin after 100 s (524: the caller never learns the reason).
 *
 * Before the point of no return, the deploy is abandoned when the caller goes away or when the pull
 * has run so long that the stop, start and start check would no longer fit (Abandon). After it, every
 * engine call ends `answerReserveMs` before the answer is due (deadline), leaving time to write the
 * outcome and answer; the start check ends `killSlackMs` before that, leaving time to kill a new
 * container that failed it.
 */
export interface Timing {
  /** Kept free at the end of a deploy for its outcome line and its answer. */
  readonly answerReserveMs: number;
  /** Kept free at the point of no return beyond the stop and the start check: renames, start, reserve. */
  readonly marginSeconds: number;
  /** Kept free at the end of the start check to kill a new container that failed it. */
  readonly killSlackMs: number;
  /** How often the start check asks the engine. */
  readonly pollMs: number;
  /**
   * How long the emergency stop waits for what is not the stop itself: a write to the disk, the
   * removal of what it stopped, a restart-policy update. Beyond it the stop goes on (see stop-sequence.ts).
   */
  readonly stopPatienceMs: number;
  /** The emergency stop's engine stop ends this long after STOP_TIMEOUT_SECONDS; then it kills. */
  readonly stopSlackMs: number;
  /** The deadline of the emergency stop's kill, when the engine's stop failed. */
  readonly killMs: number;
}

export const TIMING: Timing = {
  answerReserveMs: 2_500,
  marginSeconds: DEPLOY_MARGIN_SECONDS,
  killSlackMs: 1_500,
  pollMs: 200,
  stopPatienceMs: 2_000,
  stopSlackMs: 3_000,
  killMs: 3_000,
};

/** One signal that abandons a deploy before its point of no return, and why. */
export class Abandon {
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout;
  private readonly onCallerGone: () => void;

  constructor(
    private readonly callerGone: AbortSignal,
    answerBy: number,
    config: Pick<Config, 'stopTimeoutSeconds' | 'startCheckSeconds' | 'deployTimeoutSeconds'>,
    marginSeconds: number,
  ) {
    const reserveSeconds = config.stopTimeoutSeconds + config.startCheckSeconds + marginSeconds;
    const pullBudgetSeconds = config.deployTimeoutSeconds - reserveSeconds;
    this.timer = setTimeout(
      () =>
        this.abort(
          new AgentError(
            504,
            `the image was not ready within ${pullBudgetSeconds} s (DEPLOY_TIMEOUT_SECONDS less the time kept for stop, start and start check); the running container was not touched`,
          ),
        ),
      answerBy - reserveSeconds * 1000 - Date.now(),
    );
    this.timer.unref();
    this.onCallerGone = () =>
      this.abort(
        new AgentError(
          499,
          'the caller disconnected before the old container was touched; deploy abandoned, the running container was not touched',
          { code: 'caller_gone' },
        ),
      );
    if (callerGone.aborted) this.onCallerGone();
    callerGone.addEventListener('abort', this.onCallerGone, { once: true });
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Why the deploy was abandoned, when it was. */
  get reason(): AgentError | null {
    const reason: unknown = this.controller.signal.aborted ? this.controller.signal.reason : null;
    return reason instanceof AgentError ? reason : null;
  }

  abort(reason: unknown): void {
    this.controller.abort(reason);
  }

  /** At the point of no return (and at the end): nothing abandons the deploy any more. */
  release(): void {
    clearTimeout(this.timer);
    this.callerGone.removeEventListener('abort', this.onCallerGone);
  }
}

/** A signal that fires at `at` (ms since the epoch) with a reason a person can act on. */
export function deadline(at: number, deployTimeoutSeconds: number): AbortSignal {
  const controller = new AbortController();
  const reason = new AgentError(
    504,
    `the engine did not finish the deploy within DEPLOY_TIMEOUT_SECONDS (${deployTimeoutSeconds} s); check the status for what is running`,
  );
  const timer = setTimeout(() => controller.abort(reason), Math.max(0, at - Date.now()));
  timer.unref();
  return controller.signal;
}

/**
 * Waits for `work` until `signal` fires, then stops waiting (the work may still finish on its own).
 * For what cannot be cancelled and must not hold the sequence past its bound: a write to a disk that
 * hangs.
 */
export function until<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    work.catch(() => undefined);
    return Promise.reject(signal.reason);
  }
  let onAbort: () => void = () => undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  return Promise.race([work, aborted]).finally(() => signal.removeEventListener('abort', onAbort));
}
