import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { AuditLog } from './audit.js';
import type { Config } from './config.js';
import type { EnginePort } from './engine-port.js';
import { AgentError, describe } from './errors.js';
import type { ImageReference } from './image.js';
import { fetchImage } from './image-fetch.js';
import type { DeployJournal, DeployPhase } from './journal.js';
import { type Operation, OperationLock } from './lock.js';
import type { DeployContext, DeployResult, RequestContext, StopResult } from './operations.js';
import { Recovery } from './recovery.js';
import { containerSpec, imageOf, retiredName } from './runtime-spec.js';
import { startCheck } from './start-check.js';
import type { LastDeploy, StateStore } from './state.js';
import { iso, type StatusBody, StatusView } from './status-view.js';
import type { ImageVerifier } from './supply-chain/verifier.js';
import { Abandon, ANSWER_RESERVE_MS, deadline } from './time-bound.js';

/**
 * The deploy and stop sequences. This is where atomicity is decided; read `runDeploy` top to bottom.
 * What serves them lives beside this file: the lock (lock.ts), the status (status-view.ts), start-up
 * recovery (recovery.ts) and the runtime container's shape (runtime-spec.ts).
 *
 * The point of no return is the stop of the old container. Everything before it (tag look-up, pull,
 * create) can fail or be abandoned and leaves the old container running, untouched. Everything after
 * it runs to its end even if the caller goes away, and ends before DEPLOY_TIMEOUT_SECONDS.
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
}

export class Deployer {
  private readonly deps: DeployerDeps;
  private readonly onPhase: (phase: DeployPhase) => Promise<void>;
  private readonly lock: OperationLock;
  private readonly view: StatusView;
  private readonly recovery: Recovery;
  /** The phase of the deploy in progress, for status. */
  private progress: { readonly phase: DeployPhase; readonly since: string } | null = null;
  /** Whether the deploy in progress has written the journal (and so owns what is in it). */
  private journaled = false;

  constructor(deps: DeployerDeps) {
    this.deps = deps;
    this.onPhase = deps.onPhase ?? (() => Promise.resolve());
    // Whenever an operation starts or ends, what status shows changes: the last inspection is stale.
    this.lock = new OperationLock(() => {
      this.view.invalidate();
      if (this.lock.busy === null) this.progress = null;
    });
    this.view = new StatusView({
      ...deps,
      activity: () => ({
        operation: this.lock.busy,
        phase: this.progress?.phase ?? null,
        phaseSince: this.progress?.since ?? null,
      }),
    });
    this.recovery = new Recovery({ ...deps, lock: this.lock });
  }

  // ---------------------------------------------------------------- deploy

  async deploy(image: ImageReference, context: DeployContext): Promise<DeployResult> {
    const release = this.lock.acquire('deploy');
    this.journaled = false;
    try {
      await this.recordAccepted(context, image.reference);
      const result = await this.runDeploy(image, context);
      await this.remember(image, context, 'deployed', null, result.image_digest);
      return result;
    } catch (error) {
      const outcome = error instanceof AgentError && error.code === 'caller_gone' ? 'abandoned' : 'failed';
      await this.remember(image, context, outcome, describe(error), null);
      throw error;
    } finally {
      // Only this deploy's own record: a deploy that failed before its first phase (recovery could
      // not run yet, the engine being down) must leave an interrupted deploy's record for recovery.
      if (this.journaled) {
        await this.deps.journal
          .clear()
          .catch((error: unknown) => this.deps.logger.error({ err: error }, 'could not clear the deploy journal'));
      }
      release();
    }
  }

  private async runDeploy(image: ImageReference, context: DeployContext): Promise<DeployResult> {
    const { config, engine } = this.deps;
    await this.recovery.ensure();
    const answerBy = context.receivedAt + config.deployTimeoutSeconds * 1000;

    // Before the point of no return, one signal abandons the deploy: the caller went away, or the
    // pull ran so long that the stop, start and start check would no longer fit in the deploy timeout.
    const before = new Abandon(context.callerGone, answerBy, config);
    let staged: string | null = null;
    // The replaced container, stopped and moved out of the fixed name, until it is removed.
    let retired: string | null = null;
    try {
      // 1. What the tag is now, asked of the registry; then pull exactly that, by digest. What only
      //    reads (the runtime network, the current container) is looked up meanwhile: the lock is
      //    held, so neither can change.
      await this.enter('pulling', image, context, null, null);
      const abortOnFailure = <T>(lookup: Promise<T>): Promise<T> =>
        lookup.catch((error: unknown) => {
          before.abort(error); // a failed look-up ends the pull too, rather than leaving it running unobserved
          throw error;
        });
      const lookups = Promise.all([
        abortOnFailure(engine.networkExists(config.runtimeNetwork)),
        abortOnFailure(engine.inspectContainer(config.containerName)),
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
      staged = await engine.create(containerSpec(config, image, fetched.digest, randomUUID(), current, fetched.provenance));
      await this.enter('created', image, context, current?.id ?? null, staged);
      before.signal.throwIfAborted();
      await this.deps.store.recordTag(image.tag, fetched.tagDigest);
      before.signal.throwIfAborted();

      // ---- point of no return: from here on the deploy ends on its own, whatever the caller does,
      //      and every engine call ends before the answer is due.
      before.release();
      const newId = staged;
      const bound = deadline(answerBy - ANSWER_RESERVE_MS, config.deployTimeoutSeconds);

      // 3. Stop the old container, and move it out of the fixed name. Never two running at once: the
      //    new one starts after. Downtime: a rename is metadata only, where a removal deletes the
      //    container's files, so the old container is removed only once the new one runs.
      await this.enter('stopping', image, context, current?.id ?? null, newId);
      if (current !== null) {
        await engine.stop(current.id, config.stopTimeoutSeconds, bound);
        await engine.rename(current.id, retiredName(config.containerName, current.id), bound);
        retired = current.id;
      }

      // 4. Give the new container the fixed name and start it; then remove the old one.
      await this.enter('starting', image, context, current?.id ?? null, newId);
      await engine.rename(newId, config.containerName, bound);
      staged = null;
      await engine.start(newId, bound);
      if (retired !== null) await this.discard(retired);
      retired = null;
      await this.enter('checking', image, context, current?.id ?? null, newId);

      // 5. Start check: it must stay running (or become healthy) before we say "deployed".
      const running = await startCheck(this.deps, {
        id: newId,
        hasHealthcheck: fetched.info.hasHealthcheck,
        previous: current,
        answerBy,
        bound,
      });
      return {
        status: 'deployed',
        container_name: config.containerName,
        image: image.reference,
        environment: config.environment,
        image_digest: fetched.digest,
        container_id: newId,
        started_at: iso(running.startedAt),
        previous_image: current === null ? null : imageOf(current),
        ...(fetched.provenance === null ? {} : { provenance: fetched.provenance }),
      };
    } catch (error) {
      if (staged !== null) await this.discard(staged);
      // It was stopped and will not run again: nothing of a failed deploy is left but the runtime.
      if (retired !== null) await this.discard(retired);
      throw before.reason ?? error;
    } finally {
      before.release();
    }
  }

  /** Journals the phase the deploy is entering, before it acts on it; status and the log show it. */
  private async enter(
    phase: DeployPhase,
    image: ImageReference,
    context: DeployContext,
    oldId: string | null,
    newId: string | null,
  ): Promise<void> {
    this.progress = { phase, since: new Date().toISOString() };
    this.deps.logger.info(
      { requestId: context.requestId, phase, image: image.reference, elapsed_ms: Date.now() - context.receivedAt },
      `deploy: ${phase}`,
    );
    this.journaled = true;
    await this.deps.journal.enter({
      request_id: context.requestId,
      image: image.reference,
      phase,
      old_container_id: oldId,
      new_container_id: newId,
    });
    await this.onPhase(phase);
  }

  /**
   * Removes a container that will never run again: a staging one, or the replaced one. Failing here
   * must not hide the first error; recovery removes it in the background once the engine answers.
   */
  private async discard(id: string): Promise<void> {
    await this.deps.engine.remove(id).catch((error: unknown) => {
      this.deps.logger.error(
        { err: error, container: id },
        'could not remove a container that will not run again; retrying in the background',
      );
      this.recovery.retry();
    });
  }

  /**
   * Written once the lock is held and before anything else: no deploy or stop ever happens
   * unrecorded. If this line cannot be written the request is refused, and an interrupted operation
   * (agent killed mid-deploy) still shows in the log. The HTTP layer appends the outcome line.
   */
  private async recordAccepted(context: RequestContext, image: string | null): Promise<void> {
    try {
      await this.deps.audit.accepted({
        requestId: context.requestId,
        clientId: context.clientId,
        endpoint: context.endpoint,
        image,
      });
    } catch (error) {
      throw new AgentError(503, `refused: ${describe(error)}; nothing is deployed or stopped unrecorded`, {
        code: 'audit_unwritable',
        cause: error,
      });
    }
  }

  private async remember(
    image: ImageReference,
    context: DeployContext,
    outcome: LastDeploy['outcome'],
    reason: string | null,
    digest: string | null,
  ): Promise<void> {
    await this.deps.store
      .setLastDeploy({
        image: image.reference,
        outcome,
        reason,
        at: new Date().toISOString(),
        request_id: context.requestId,
        image_digest: digest,
      })
      .catch((error: unknown) => this.deps.logger.error({ err: error }, 'could not record the last deploy'));
  }

  // ---------------------------------------------------------------- stop

  async stop(context: RequestContext): Promise<StopResult> {
    const release = this.lock.acquire('stop');
    try {
      await this.recordAccepted(context, null);
      await this.recovery.ensure();
      const current = await this.deps.engine.inspectContainer(this.deps.config.containerName);
      if (current !== null) {
        await this.deps.engine.stop(current.id, this.deps.config.stopTimeoutSeconds);
        await this.deps.engine.remove(current.id);
      }
      return { status: 'stopped', container_name: this.deps.config.containerName, removed: current !== null };
    } finally {
      release();
    }
  }

  // ---------------------------------------------------------------- what serves the HTTP layer

  status(): Promise<StatusBody> {
    return this.view.status();
  }

  /** At start-up: clean up after an interrupted deploy, in the background. */
  startRecovery(): void {
    this.recovery.start();
  }

  get busy(): Operation | null {
    return this.lock.busy;
  }

  /** Refuses new deploys and stops from now on; resolves when the one in progress has ended. */
  shutdown(): Promise<void> {
    this.recovery.stop();
    return this.lock.shutdown();
  }
}
