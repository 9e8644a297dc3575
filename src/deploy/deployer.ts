import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import type { EnginePort } from '../engine/engine-port.js';
import { AgentError, describe } from '../errors.js';
import type { ImageReference } from '../policy/image.js';
import type { AuditLog } from '../state/audit.js';
import type { DeployJournal, DeployPhase } from '../state/journal.js';
import type { StateStore } from '../state/state.js';
import type { ImageVerifier } from '../supply-chain/verifier.js';
import { DeployProgress, type Ids } from './deploy-progress.js';
import { diskRefusal, recordAccepted, remember, withWarnings } from './deploy-records.js';
import { checkCreatedImage, fetchImage } from './image-fetch.js';
import { type Operation, OperationLock } from './lock.js';
import type { DeployContext, DeployResult, RequestContext, StopResult } from './operations.js';
import { type Leftover, Reconciler, type ReconcilerTiming } from './reconciler.js';
import { containerSpec, retiredName } from './runtime-spec.js';
import { startCheck } from './start-check.js';
import { iso, type StatusBody, StatusView } from './status-view.js';
import { emergencyStop } from './stop-sequence.js';
import { Abandon, deadline, TIMING, type Timing } from './time-bound.js';

/**
 * The deploy and stop sequences. This is where atomicity is decided; read `runDeploy` top to bottom.
 * What serves them lives beside this file: the lock (lock.ts), the status (status-view.ts), the
 * record and clean-up of what an interrupted or failed operation left (reconciler.ts), the phase
 * journaled before each step (deploy-progress.ts), the runtime container's shape (runtime-spec.ts)
 * and the stop itself (stop-sequence.ts).
 *
 * The point of no return is the stop of the old container. Everything before it (tag look-up, pull,
 * create) can fail or be abandoned and leaves the old container running, untouched. After it, only
 * the engine can fail the deploy: a journal or state write the disk refuses is logged, the sequence
 * goes on, and the answer says so in `warnings`; every engine call ends before the answer is due, and
 * a removal that does not finish in time is left to the reconciler.
 */

export type { DeployContext, DeployResult, RequestContext, StopResult } from './operations.js';

export interface DeployerDeps {
  readonly config: Config;
  readonly engine: EnginePort;
  readonly store: StateStore;
  readonly audit: AuditLog;
  readonly journal: DeployJournal;
  readonly logger: Logger;
  /** The supply-chain check (IMAGE_VERIFICATION); null or absent with `none`. See image-fetch.ts. */
  readonly verifier?: ImageVerifier | null;
  /** Called after each phase is journaled. Fault-injection tests pause here; production has none. */
  readonly onPhase?: (phase: DeployPhase) => Promise<void>;
  /** The time bound's reserves; tests shrink them with the configured times. */
  readonly timing?: Partial<Timing>;
  readonly reconcilerTiming?: Partial<ReconcilerTiming>;
}

export class Deployer {
  private readonly deps: DeployerDeps;
  private readonly timing: Timing;
  private readonly lock: OperationLock;
  private readonly view: StatusView;
  private readonly reconciler: Reconciler;
  private readonly progress: DeployProgress;

  constructor(deps: DeployerDeps) {
    this.deps = deps;
    this.timing = { ...TIMING, ...deps.timing };
    this.progress = new DeployProgress(deps);
    // Whenever an operation starts or ends, what status shows changes: the last inspection is stale.
    this.lock = new OperationLock(() => {
      this.view.invalidate();
      if (this.lock.busy === null) this.progress.clear();
    });
    const { config, engine, store, audit, journal, logger } = deps;
    this.reconciler = new Reconciler({
      config,
      engine,
      store,
      audit,
      journal,
      logger,
      lock: this.lock,
      ...(deps.reconcilerTiming === undefined ? {} : { timing: deps.reconcilerTiming }),
    });
    this.view = new StatusView({
      ...deps,
      activity: () => ({
        operation: this.lock.busy,
        phase: this.progress.current?.phase ?? null,
        phaseSince: this.progress.current?.since ?? null,
      }),
      leftovers: () => this.reconciler.leftovers,
      notOurs: () => this.reconciler.notOurs,
    });
  }

  // ---------------------------------------------------------------- deploy

  async deploy(image: ImageReference, context: DeployContext): Promise<DeployResult> {
    const release = this.lock.acquire('deploy');
    const warnings: string[] = [];
    try {
      await this.reconciler.recordInterrupted().catch((error: unknown) => {
        throw new AgentError(503, `refused: the record of an interrupted operation could not be written (${describe(error)})`, {
          code: 'audit_unwritable',
          cause: error,
        });
      });
      try {
        const result = await this.runDeploy(image, context, warnings);
        await remember(this.deps, image, context, { outcome: 'deployed', reason: null, digest: result.image_digest }, warnings);
        return warnings.length === 0 ? result : { ...result, warnings };
      } catch (error) {
        const outcome = error instanceof AgentError && error.code === 'caller_gone' ? 'abandoned' : 'failed';
        await remember(this.deps, image, context, { outcome, reason: describe(error), digest: null }, warnings);
        throw withWarnings(error, warnings);
      } finally {
        await this.deps.journal
          .clear()
          .catch((error: unknown) => this.deps.logger.error({ err: error }, 'could not clear the deploy journal'));
      }
    } finally {
      release();
      this.reconcileIfLeft();
    }
  }

  /** The end of an operation is a good time to retry a clean-up that is waiting on its backoff. */
  private reconcileIfLeft(): void {
    if (this.reconciler.leftovers.length > 0) this.reconciler.soon();
  }

  private async runDeploy(image: ImageReference, context: DeployContext, warnings: string[]): Promise<DeployResult> {
    const { config, engine, store } = this.deps;
    const answerBy = context.receivedAt + config.deployTimeoutSeconds * 1000;
    // Before the point of no return, one signal abandons the deploy: the caller went away, or the
    // pull ran so long that the stop, start and start check would no longer fit in the deploy timeout.
    const before = new Abandon(context.callerGone, answerBy, config, this.timing.marginSeconds);
    // After it, and for any clean-up after a failure, every engine call ends before the answer is due.
    const boundAt = answerBy - this.timing.answerReserveMs;
    const bound = deadline(boundAt, config.deployTimeoutSeconds);
    const previous = store.previousDeployment(image.reference);
    const ids: Ids = { old_container_id: null, new_container_id: null, old_image: previous?.image ?? null };
    let staged: string | null = null;
    // The replaced container, stopped and moved out of the fixed name, until it is removed.
    let retired: { readonly id: string; readonly name: string } | null = null;
    try {
      // 1. What the tag is now, asked of the registry; then pull exactly that, by digest. What only
      //    reads (the runtime network, the current container) is looked up meanwhile: the lock is
      //    held, so neither can change.
      await this.progress.enter('pulling', image, context, ids, null, bound);
      // After the journal: an agent killed between the two still leaves this request accounted for.
      await recordAccepted(this.deps.audit, context, image.reference);
      const abortOnFailure = <T>(lookup: Promise<T>): Promise<T> =>
        lookup.catch((error: unknown) => {
          before.abort(error); // a failed look-up ends the pull too, rather than leaving it running unobserved
          throw error;
        });
      const lookups = Promise.all([
        abortOnFailure(engine.networkExists(config.runtimeNetwork, before.signal)),
        abortOnFailure(engine.inspectContainer(config.containerName, before.signal)),
      ]);
      lookups.catch(() => undefined); // observed below; a rejection before then must not go unhandled
      const fetched = await fetchImage(this.deps, image, before.signal);
      const [networkExists, current] = await lookups;

      // 2. Create the new container beside the old one, under a staging name. The engine checks
      //    bind sources at create but the network only at start, which is after the stop: check it
      //    now, or a wrong RUNTIME_NETWORK would take the running runtime down.
      if (!networkExists) {
        throw new AgentError(
          502,
          `the runtime network "${config.runtimeNetwork}" does not exist on the engine (RUNTIME_NETWORK); the running container was not touched`,
        );
      }
      const digests = { run: fetched.digest, tag: fetched.tagDigest };
      const spec = containerSpec(config, image, digests, randomUUID(), previous, fetched.provenance);
      staged = await engine.create(spec, before.signal);
      await checkCreatedImage(engine, staged, fetched, before.signal);
      const created = { ...ids, old_container_id: current?.id ?? null, new_container_id: staged };
      await this.progress.enter('created', image, context, created, null, bound);
      before.signal.throwIfAborted();
      await store.recordTag(image.tag, fetched.tagDigest).catch((error: unknown) => {
        throw diskRefusal("the tag's record", error);
      });
      // A container the agent did not create (the first cut-over from a hand-made runtime) may have
      // a restart policy: stopped by the agent, the engine would start it again on its next restart,
      // beside the new runtime. It gets "no" now, while a failure still leaves it running untouched.
      if (current !== null && current.restartPolicy !== 'no' && current.restartPolicy !== '') {
        await engine.disableRestart(current.id, before.signal);
      }
      before.signal.throwIfAborted();

      // ---- point of no return: from here on the deploy ends on its own, whatever the caller does,
      //      only the engine can fail it, and every engine call ends before the answer is due.
      before.release();
      const newId = staged;

      // 3. Stop the old container, and move it out of the fixed name. Never two running at once: the
      //    new one starts after. Downtime: a rename is metadata only, where a removal deletes the
      //    container's files, so the old container is removed only once the new one runs.
      await this.progress.enter('stopping', image, context, created, warnings, bound);
      if (current !== null) {
        await engine.stop(current.id, config.stopTimeoutSeconds, bound);
        const aside = retiredName(config.containerName, current.id);
        await engine.rename(current.id, aside, bound);
        retired = { id: current.id, name: aside };
      }

      // 4. Give the new container the fixed name and start it; the old one is removed meanwhile.
      await this.progress.enter('starting', image, context, created, warnings, bound);
      await engine.rename(newId, config.containerName, bound);
      staged = null;
      await engine.start(newId, bound);
      const removal = retired === null ? Promise.resolve() : this.discard(retired, bound, warnings);
      retired = null;
      await this.progress.enter('checking', image, context, created, warnings, bound);

      // 5. Start check: it must stay running (or become healthy) before we say "deployed".
      const running = await startCheck(
        { ...this.deps, timing: this.timing },
        { id: newId, hasHealthcheck: fetched.info.hasHealthcheck, rollback: previous?.image ?? null, bound, boundAt },
      ).finally(() => removal);
      return {
        status: 'deployed',
        container_name: config.containerName,
        image: image.reference,
        environment: config.environment,
        image_digest: fetched.digest,
        tag_digest: fetched.tagDigest,
        container_id: newId,
        started_at: iso(running.startedAt),
        previous_image: previous?.image ?? null,
        ...(fetched.provenance === null ? {} : { provenance: fetched.provenance }),
      };
    } catch (error) {
      // Nothing of a failed deploy is left but the runtime: what never ran, and what will not run
      // again, is removed now, or by the reconciler once the answer is due.
      await Promise.all([
        staged === null ? null : this.discard({ id: staged, name: null }, bound, warnings),
        retired === null ? null : this.discard(retired, bound, warnings),
      ]);
      throw before.reason ?? error;
    } finally {
      before.release();
    }
  }

  /**
   * Removes a container that will never run again: a staging one, or the replaced one. Failing here
   * must not hide the first error, nor fail a deploy: the reconciler removes it in the background.
   */
  private async discard(c: { readonly id: string; readonly name: string | null }, bound: AbortSignal, warnings: string[]) {
    await this.deps.engine.remove(c.id, bound).catch((error: unknown) => {
      this.deps.logger.error({ err: error, container: c.id }, 'could not remove a container that will not run again');
      this.reconciler.hand(c.id, c.name, error);
      warnings.push(
        `container ${c.name ?? c.id.slice(0, 12)} (never to run again) could not be removed yet (${describe(error)}); it is removed in the background (status: leftovers)`,
      );
    });
  }

  // ---------------------------------------------------------------- stop

  /** The emergency brake: see stop-sequence.ts. It never waits on the clean-up of leftovers. */
  async stop(context: RequestContext): Promise<StopResult> {
    const release = this.lock.acquire('stop');
    try {
      return await emergencyStop({ ...this.deps, reconciler: this.reconciler, timing: this.timing }, context);
    } finally {
      release();
      this.reconcileIfLeft();
    }
  }

  // ---------------------------------------------------------------- what serves the HTTP layer

  status(): Promise<StatusBody> {
    return this.view.status();
  }

  /** At start-up: record an interrupted operation and clean up its leftovers, in the background. */
  startReconciler(): void {
    this.reconciler.start();
  }

  /** Tests: record an interrupted operation, then one clean-up pass, now. */
  async reconcileNow(): Promise<void> {
    await this.reconciler.recordInterrupted();
    await this.reconciler.runOnce();
  }

  get leftovers(): Leftover[] {
    return this.reconciler.leftovers;
  }

  get busy(): Operation | null {
    return this.lock.busy;
  }

  /** Refuses new deploys and stops from now on; resolves when the one in progress has ended. */
  shutdown(): Promise<void> {
    this.reconciler.stop();
    return this.lock.shutdown();
  }
}
