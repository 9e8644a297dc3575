import type { Logger } from 'pino';
import { describe } from '../errors.js';
import type { ImageReference } from '../policy/image.js';
import type { DeployJournal, DeployPhase, JournalRecord } from '../state/journal.js';
import { diskRefusal } from './deploy-records.js';
import type { DeployContext } from './operations.js';
import { until } from './time-bound.js';

/**
 * The phase a deploy is in: journaled before the deploy acts on it (recovery reads it after a crash,
 * interrupted.ts), logged, and shown by status while the deploy runs. The sequence is in deployer.ts.
 */

/** The container ids and the image the journal carries, for recovery and the clean-up of leftovers. */
export type Ids = Pick<JournalRecord, 'old_container_id' | 'new_container_id' | 'old_image'>;

export interface DeployProgressDeps {
  readonly journal: DeployJournal;
  readonly logger: Logger;
  /** Called after each phase is journaled. Fault-injection tests pause here; production has none. */
  readonly onPhase?: ((phase: DeployPhase) => Promise<void>) | undefined;
}

export class DeployProgress {
  private readonly onPhase: (phase: DeployPhase) => Promise<void>;
  /** The phase of the deploy in progress, for status. */
  private progress: { readonly phase: DeployPhase; readonly since: string } | null = null;

  constructor(private readonly deps: DeployProgressDeps) {
    this.onPhase = deps.onPhase ?? (() => Promise.resolve());
  }

  get current(): { readonly phase: DeployPhase; readonly since: string } | null {
    return this.progress;
  }

  /** The operation has ended: no phase to show. */
  clear(): void {
    this.progress = null;
  }

  /**
   * Journals the phase the deploy is entering, before it acts on it; status and the log show it.
   * Before the point of no return (`warnings` null) a write the disk refuses ends the deploy, with
   * nothing touched. After it, it is a warning: recovery copes with a journal one phase behind.
   */
  async enter(
    phase: DeployPhase,
    image: ImageReference,
    context: DeployContext,
    ids: Ids,
    warnings: string[] | null,
    bound: AbortSignal,
  ): Promise<void> {
    this.progress = { phase, since: new Date().toISOString() };
    this.deps.logger.info(
      { requestId: context.requestId, phase, image: image.reference, elapsed_ms: Date.now() - context.receivedAt },
      `deploy: ${phase}`,
    );
    const write = this.deps.journal.enter({
      operation: 'deploy',
      request_id: context.requestId,
      image: image.reference,
      phase,
      ...ids,
    });
    if (warnings === null) {
      await write.catch((error: unknown) => {
        throw diskRefusal('the deploy journal', error);
      });
    } else {
      await until(write, bound).catch((error: unknown) => {
        this.deps.logger.error({ err: error, phase }, 'could not write the deploy journal; the deploy goes on');
        warnings.push(`the deploy journal could not be written at "${phase}" (${describe(error)}); the deploy went on`);
      });
    }
    await this.onPhase(phase);
  }
}
