import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { AuditLog } from './audit.js';
import { type Config, DEPLOY_MARGIN_SECONDS } from './config.js';
import type { ContainerInfo, CreateSpec, Engine, TagResolution } from './docker.js';
import { AgentError, describe } from './errors.js';
import type { ImageReference } from './image.js';
import type { DeployJournal, DeployPhase, JournalRecord } from './journal.js';
import { tail } from './redact.js';
import type { LastDeploy, StateStore } from './state.js';

/**
 * The deploy and stop sequences, the lock that allows one of them at a time, and the clean-up of an
 * unfinished deploy at start. This is where atomicity is decided; read `deploy` top to bottom.
 *
 * The point of no return is the stop of the old container. Everything before it (pull, digest check,
 * create) can fail or be abandoned and leaves the old container running, untouched. Everything after
 * it runs to its end even if the caller goes away, and every step has a deadline.
 */

export const LABEL = {
  owner: 'io.dreichor.owner',
  environment: 'io.dreichor.environment',
  containerName: 'io.dreichor.container-name',
  deployId: 'io.dreichor.deploy-id',
  image: 'io.dreichor.image',
  digest: 'io.dreichor.image-digest',
  previousImage: 'io.dreichor.previous-image',
} as const;
export const OWNER = 'dreichor-deploy-agent';

const LOG_LINES_IN_REASON = 20;
const LOG_CHARS_IN_REASON = 2000;
// The answer must reach the caller within DEPLOY_TIMEOUT_SECONDS, and Cloudflare gives up on an origin
// after 100 s (524, and the caller never learns the reason). Engine work after the point of no return
// ends this long before that bound, leaving time to write the outcome and answer.
const ANSWER_RESERVE_MS = 2_500;
// What the engine needs beyond a stop's grace to kill a container and answer.
const KILL_SLACK_MS = 1_500;
// Status answers from an inspection at most this old. Status is polled (CI, monitoring, operators);
// with this, the engine sees at most ten inspections a second however many callers there are. Every
// deploy and stop of this agent invalidates it, so its own changes show at once.
const STATUS_FRESH_MS = 100;
const START_CHECK_POLL_MS = 200;

export interface RequestContext {
  readonly requestId: string;
  readonly clientId: string;
}

export interface DeployContext extends RequestContext {
  /** Fires when the caller disconnects. Honoured only before the old container is touched. */
  readonly callerGone: AbortSignal;
  /** When the request arrived (ms since the epoch): DEPLOY_TIMEOUT_SECONDS counts from here. */
  readonly receivedAt: number;
}

export interface DeployResult {
  readonly status: 'deployed';
  readonly container_name: string;
  readonly image: string;
  readonly environment: string;
  readonly image_digest: string;
  readonly container_id: string;
  readonly started_at: string | null;
  readonly previous_image: string | null;
}

export interface StopResult {
  readonly status: 'stopped';
  readonly container_name: string;
  /** Whether there was a container to stop and remove; false means the stop was a no-op. */
  readonly removed: boolean;
}

export interface StatusBody {
  readonly container_name: string;
  readonly environment: string;
  readonly running: boolean;
  readonly image?: string;
  readonly image_digest?: string | null;
  readonly started_at?: string;
  /** The engine's state of the container: running, exited, created, ... or "absent". */
  readonly state: string;
  readonly operation_in_progress: 'deploy' | 'stop' | 'recovery' | null;
  readonly deploy_in_progress: boolean;
  /** What the deploy in progress is doing (pulling, created, stopping, starting, checking), and since when. */
  readonly phase: DeployPhase | null;
  readonly phase_since: string | null;
  readonly last_deploy: LastDeploy | null;
  /** The last deploy that the agent found interrupted at start (killed mid-deploy). */
  readonly last_interrupted: LastDeploy | null;
  /** The image that ran before the current one: deploy it to roll back. */
  readonly previous_image: string | null;
  readonly audit_head: string;
}

export interface DeployerDeps {
  readonly config: Config;
  readonly engine: Engine;
  readonly store: StateStore;
  readonly audit: AuditLog;
  readonly journal: DeployJournal;
  readonly logger: Logger;
  /** Called after each phase is journaled. Fault-injection tests pause here; production has none. */
  readonly onPhase?: (phase: DeployPhase) => Promise<void>;
}

type Operation = 'deploy' | 'stop' | 'recovery';

// When a staging container could not be removed (engine down), clean-up is retried this often, for
// at most this long; a deploy or stop also does it first.
const RECOVERY_RETRY_MS = 2_000;
const RECOVERY_RETRY_FOR_MS = 10 * 60_000;

export class Deployer {
  private readonly config: Config;
  private readonly engine: Engine;
  private readonly store: StateStore;
  private readonly audit: AuditLog;
  private readonly journal: DeployJournal;
  private readonly logger: Logger;
  private readonly onPhase: (phase: DeployPhase) => Promise<void>;

  private operation: Operation | null = null;
  private closing = false;
  private recovery: Promise<void> | null = null;
  private recoveryRetry: NodeJS.Timeout | null = null;
  private idleWaiters: (() => void)[] = [];
  private sharedInspection: Promise<ContainerInfo | null> | null = null;
  private lastInspection: { readonly at: number; readonly container: ContainerInfo | null } | null = null;
  private inspectionGeneration = 0;
  /** The phase of the deploy in progress, for status. */
  private progress: { readonly phase: DeployPhase; readonly since: string } | null = null;
  /** Whether the deploy in progress has written the journal (and so owns what is in it). */
  private journaled = false;

  constructor(deps: DeployerDeps) {
    this.config = deps.config;
    this.engine = deps.engine;
    this.store = deps.store;
    this.audit = deps.audit;
    this.journal = deps.journal;
    this.logger = deps.logger;
    this.onPhase = deps.onPhase ?? (() => Promise.resolve());
  }

  // ---------------------------------------------------------------- deploy

  async deploy(image: ImageReference, context: DeployContext): Promise<DeployResult> {
    const release = this.acquire('deploy');
    this.journaled = false;
    try {
      await this.recordAccepted('/v1/deploy', context, image.reference);
      const result = await this.runDeploy(image, context);
      await this.remember(image, context, 'deployed', null, result.image_digest);
      return result;
    } catch (error) {
      const outcome = error instanceof AgentError && error.status === 499 ? 'abandoned' : 'failed';
      await this.remember(image, context, outcome, describe(error), null);
      throw error;
    } finally {
      // Only this deploy's own record: a deploy that failed before its first phase (recovery could
      // not run yet, the engine being down) must leave an interrupted deploy's record for recovery.
      if (this.journaled) {
        await this.journal.clear().catch((error: unknown) => this.logger.error({ err: error }, 'could not clear the deploy journal'));
      }
      release();
    }
  }

  /** Journals the phase the deploy is entering, before it acts on it; status and the log show it. */
  private async enter(phase: DeployPhase, image: ImageReference, context: DeployContext, oldId: string | null, newId: string | null): Promise<void> {
    this.progress = { phase, since: new Date().toISOString() };
    this.logger.info({ requestId: context.requestId, phase, image: image.reference, elapsed_ms: Date.now() - context.receivedAt }, `deploy: ${phase}`);
    this.journaled = true;
    await this.journal.enter({ request_id: context.requestId, image: image.reference, phase, old_container_id: oldId, new_container_id: newId });
    await this.onPhase(phase);
  }

  private async runDeploy(image: ImageReference, context: DeployContext): Promise<DeployResult> {
    const { config, engine } = this;
    await this.ensureRecovered();
    const answerBy = context.receivedAt + config.deployTimeoutSeconds * 1000;

    // Before the point of no return, one signal abandons the deploy: the caller went away, or the
    // pull ran so long that the stop, start and start check would no longer fit in the deploy timeout.
    const reserveSeconds = config.stopTimeoutSeconds + config.startCheckSeconds + DEPLOY_MARGIN_SECONDS;
    const pullBudgetSeconds = config.deployTimeoutSeconds - reserveSeconds;
    const before = new AbortController();
    const timer = setTimeout(() => {
      before.abort(new AgentError(504, `the image was not ready within ${pullBudgetSeconds} s (DEPLOY_TIMEOUT_SECONDS less the time kept for stop, start and start check); the running container was not touched`));
    }, answerBy - reserveSeconds * 1000 - Date.now());
    const onCallerGone = () => before.abort(new AgentError(499, 'the caller disconnected before the old container was touched; deploy abandoned, the running container was not touched'));
    if (context.callerGone.aborted) onCallerGone();
    context.callerGone.addEventListener('abort', onCallerGone, { once: true });
    let staged: string | null = null;
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
      const lookups = Promise.all([abortOnFailure(engine.networkExists(config.runtimeNetwork)), abortOnFailure(engine.inspectContainer(config.containerName))]);
      lookups.catch(() => undefined); // observed below; a rejection before then must not go unhandled
      const tagDigest = await this.resolveTag(image, before.signal);
      const digest = image.digest ?? tagDigest.digest;
      await this.pullExactly(image.repository, digest, before.signal);
      if (image.digest !== null && image.digest !== tagDigest.digest) {
        await this.checkPinInIndex(image, tagDigest.digest, before.signal);
      }
      const [networkExists, current] = await lookups;
      const local = `${image.repository}@${digest}`;
      const imageInfo = await engine.inspectImage(local, before.signal);
      if (imageInfo === null) throw new AgentError(502, `the pulled image ${local} is not in the engine's image store`);

      // 2. Create the new container beside the old one, under a staging name. The engine checks
      //    bind sources at create but the network only at start, which is after the stop: check it
      //    now, or a wrong RUNTIME_NETWORK would take the running runtime down.
      if (!networkExists) {
        throw new AgentError(502, `the runtime network "${config.runtimeNetwork}" does not exist on the engine (RUNTIME_NETWORK); the running container was not touched`);
      }
      const deployId = randomUUID();
      staged = await engine.create(this.containerSpec(image, digest, deployId, current));
      await this.enter('created', image, context, current?.id ?? null, staged);
      before.signal.throwIfAborted();
      await this.store.recordTag(image.tag, tagDigest.digest);
      before.signal.throwIfAborted();

      // ---- point of no return: from here on the deploy ends on its own, whatever the caller does,
      //      and every engine call ends before the answer is due.
      clearTimeout(timer);
      context.callerGone.removeEventListener('abort', onCallerGone);
      const newId = staged;
      const bound = deadline(answerBy - ANSWER_RESERVE_MS, config.deployTimeoutSeconds);

      // 3. Stop and remove the old container. Never two running at once: the new one starts after.
      await this.enter('stopping', image, context, current?.id ?? null, newId);
      if (current !== null) {
        await engine.stop(current.id, config.stopTimeoutSeconds, bound);
        await engine.remove(current.id, bound);
      }

      // 4. Give the new container the fixed name and start it.
      await this.enter('starting', image, context, current?.id ?? null, newId);
      await engine.rename(newId, config.containerName, bound);
      staged = null;
      await engine.start(newId, bound);
      await this.enter('checking', image, context, current?.id ?? null, newId);

      // 5. Start check: it must stay running (or become healthy) before we say "deployed".
      const running = await this.startCheck(newId, imageInfo.hasHealthcheck, current, answerBy, bound);
      return {
        status: 'deployed',
        container_name: config.containerName,
        image: image.reference,
        environment: config.environment,
        image_digest: digest,
        container_id: newId,
        started_at: iso(running.startedAt),
        previous_image: current === null ? null : imageOf(current),
      };
    } catch (error) {
      if (staged !== null) await this.discard(staged);
      throw before.signal.aborted && before.signal.reason instanceof AgentError ? before.signal.reason : error;
    } finally {
      clearTimeout(timer);
      context.callerGone.removeEventListener('abort', onCallerGone);
    }
  }

  /**
   * Resolves the tag in its registry and holds it to its record: a tag keeps the digest of its first
   * deploy in this environment. Refused before anything is pulled.
   */
  private async resolveTag(image: ImageReference, signal: AbortSignal): Promise<TagResolution> {
    const resolved = await this.engine.resolveTag(image.repository, image.tag, this.config.registryAuth, signal);
    const recorded = this.store.recordedDigest(image.tag);
    if (recorded !== null && recorded !== resolved.digest) {
      throw new AgentError(409, `tag ${image.tag} was first deployed here as ${recorded} but now resolves to ${resolved.digest}; tags are immutable, push a new tag (the running container was not touched)`);
    }
    if (image.digest !== null && image.digest !== resolved.digest && !resolved.index) {
      throw pinMismatch(image, resolved.digest);
    }
    return resolved;
  }

  /** Pulls `repository@digest` and makes sure the engine pulled that very manifest. */
  private async pullExactly(repository: string, digest: string, signal: AbortSignal): Promise<void> {
    const pulled = await this.engine.pull(repository, digest, this.config.registryAuth, signal);
    if (pulled.digest !== null && pulled.digest !== digest) {
      throw new AgentError(502, `the engine pulled ${pulled.digest} when asked for ${repository}@${digest}; refusing to deploy it`);
    }
  }

  /**
   * A pin that is not the tag's own digest is accepted only as the manifest the engine would run from
   * the tag's image index: its image (the config digest, which covers every layer's content) must be
   * the one the engine pulls for the index on its platform. Both are pulled into the image store;
   * nothing runs from them unless they match.
   */
  private async checkPinInIndex(image: ImageReference, indexDigest: string, signal: AbortSignal): Promise<void> {
    await this.pullExactly(image.repository, indexDigest, signal);
    const [pinned, fromIndex] = await Promise.all([
      this.engine.inspectImage(`${image.repository}@${image.digest ?? ''}`, signal),
      this.engine.inspectImage(`${image.repository}@${indexDigest}`, signal),
    ]);
    if (pinned === null || fromIndex === null || pinned.id !== fromIndex.id) throw pinMismatch(image, indexDigest);
  }

  private containerSpec(image: ImageReference, digest: string, deployId: string, current: ContainerInfo | null): CreateSpec {
    const { config } = this;
    const env = {
      ...config.runtimeEnv,
      ENVIRONMENT: config.environment,
      AUDIT_EVENTS_PATH: config.auditEventsPath,
      SNAPSHOTS_PATH: config.snapshotsPath,
      ALLOW_EXECUTION_PLANE: String(config.allowExecutionPlane),
    };
    const labels: Record<string, string> = {
      [LABEL.owner]: OWNER,
      [LABEL.environment]: config.environment,
      [LABEL.containerName]: config.containerName,
      [LABEL.deployId]: deployId,
      [LABEL.image]: image.reference,
      [LABEL.digest]: digest,
    };
    if (current !== null) labels[LABEL.previousImage] = imageOf(current);
    return {
      name: `${config.containerName}-staging-${deployId.slice(0, 8)}`,
      image: `${image.repository}@${digest}`,
      env: Object.entries(env)
        .map(([k, v]) => `${k}=${v}`)
        .sort(),
      labels,
      binds: [
        { source: config.auditEventsPath, target: config.auditEventsPath },
        { source: config.snapshotsPath, target: config.snapshotsPath },
      ],
      networkMode: config.runtimeNetwork,
      stopTimeoutSeconds: config.stopTimeoutSeconds,
    };
  }

  /**
   * Watches the new container for START_CHECK_SECONDS: it must keep running, or, when its image has
   * a HEALTHCHECK, report healthy within that time. A failure stops it (the deploy failed, so the
   * runtime must not keep running half-checked) and reports its last log lines.
   */
  private async startCheck(id: string, hasHealthcheck: boolean, previous: ContainerInfo | null, answerBy: number, bound: AbortSignal): Promise<ContainerInfo> {
    const seconds = this.config.startCheckSeconds;
    const until = Date.now() + seconds * 1000;
    const fail = (what: string) => this.startFailure(id, what, previous, answerBy);
    for (;;) {
      const c = await this.engine.inspectContainer(id, bound);
      if (c === null) throw await fail('disappeared during the start check');
      if (!c.running) throw await fail(`exited with code ${c.exitCode} during the start check`);
      if (hasHealthcheck && c.health === 'healthy') return c;
      if (hasHealthcheck && c.health === 'unhealthy') throw await fail('reported unhealthy');
      const left = until - Date.now();
      if (left <= 0) {
        if (hasHealthcheck) throw await fail(`did not become healthy within ${seconds} s`);
        return c;
      }
      await sleep(Math.min(START_CHECK_POLL_MS, left));
    }
  }

  /**
   * Stops a container that failed its start check, then reads its last log lines (masked by the
   * engine wrapper). Its stop grace is what is left before the answer is due: a container that
   * ignores SIGTERM is killed rather than let the answer come after Cloudflare has given up.
   */
  private async startFailure(id: string, what: string, previous: ContainerInfo | null, answerBy: number): Promise<AgentError> {
    const grace = this.config.stopTimeoutSeconds;
    const left = answerBy - ANSWER_RESERVE_MS - KILL_SLACK_MS - Date.now();
    const seconds = Math.max(0, Math.min(grace, Math.floor(left / 1000)));
    const stopped = await this.engine.stop(id, seconds, undefined, KILL_SLACK_MS).catch((error: unknown) => {
      this.logger.error({ err: error }, 'could not stop the failed container');
      return 'failed';
    });
    const logs = await this.engine.logsTail(id, LOG_LINES_IN_REASON, KILL_SLACK_MS).catch((error: unknown) => `(logs unavailable: ${describe(error)})`);
    const after = stopped === 'failed' ? null : await this.engine.inspectContainer(id, AbortSignal.timeout(KILL_SLACK_MS)).catch(() => null);
    const killed = after?.exitCode === 137 && seconds < grace;
    const rollback = previous === null ? '' : ` The image before it was ${imageOf(previous)}: deploy it to roll back.`;
    const state =
      stopped === 'failed'
        ? ' It could not be stopped and is kept for inspection.'
        : killed
          ? ` It did not stop within the ${seconds} s left of DEPLOY_TIMEOUT_SECONDS (its grace is ${grace} s) and was killed; it is kept for inspection.`
          : ' It was stopped and kept for inspection.';
    return new AgentError(502, `the new container ${what}.${state}${rollback} Last log lines:\n${tail(logs, LOG_CHARS_IN_REASON) || '(none)'}`);
  }

  /** Removes a staging container that will never run. Failing here must not hide the first error. */
  private async discard(id: string): Promise<void> {
    await this.engine.remove(id).catch((error: unknown) => {
      this.logger.error({ err: error, container: id }, 'could not remove the staging container; retrying in the background');
      this.recovery = null;
      this.retryRecovery(Date.now() + RECOVERY_RETRY_FOR_MS);
    });
  }

  /**
   * Retries the clean-up of staging leftovers until the engine answers. It holds the lock while it
   * runs, because a deploy's own staging container must never be taken for a leftover.
   */
  private retryRecovery(until: number): void {
    if (this.recoveryRetry !== null || Date.now() > until) return;
    this.recoveryRetry = setTimeout(() => {
      this.recoveryRetry = null;
      if (this.recovery !== null || this.closing) return;
      if (this.operation !== null) {
        this.retryRecovery(until);
        return;
      }
      const release = this.acquire('recovery');
      this.ensureRecovered()
        .catch(() => this.retryRecovery(until))
        .finally(release);
    }, RECOVERY_RETRY_MS);
    this.recoveryRetry.unref();
  }

  /**
   * Written once the lock is held and before anything else: no deploy or stop ever happens
   * unrecorded. If this line cannot be written the request is refused, and an interrupted operation
   * (agent killed mid-deploy) still shows in the log. The HTTP layer appends the outcome line.
   */
  private async recordAccepted(endpoint: string, context: RequestContext, image: string | null): Promise<void> {
    try {
      await this.audit.append({ request_id: context.requestId, client_id: context.clientId, endpoint, image, outcome: 'accepted', status: 0, reason: null, duration_ms: 0 });
    } catch (error) {
      throw new AgentError(503, `refused: ${describe(error)}; nothing is deployed or stopped unrecorded`, { cause: error });
    }
  }

  private async remember(image: ImageReference, context: DeployContext, outcome: LastDeploy['outcome'], reason: string | null, digest: string | null): Promise<void> {
    await this.store
      .setLastDeploy({ image: image.reference, outcome, reason, at: new Date().toISOString(), request_id: context.requestId, image_digest: digest })
      .catch((error: unknown) => this.logger.error({ err: error }, 'could not record the last deploy'));
  }

  // ---------------------------------------------------------------- stop

  async stop(context: RequestContext): Promise<StopResult> {
    const release = this.acquire('stop');
    try {
      await this.recordAccepted('/v1/stop', context, null);
      await this.ensureRecovered();
      const current = await this.engine.inspectContainer(this.config.containerName);
      if (current !== null) {
        await this.engine.stop(current.id, this.config.stopTimeoutSeconds);
        await this.engine.remove(current.id);
      }
      return { status: 'stopped', container_name: this.config.containerName, removed: current !== null };
    } finally {
      release();
    }
  }

  // ---------------------------------------------------------------- status

  /** Read-only. Concurrent callers share one engine inspection, and reuse it for STATUS_FRESH_MS. */
  async status(): Promise<StatusBody> {
    const c = await this.inspectForStatus();
    const running = c?.running === true;
    return {
      container_name: this.config.containerName,
      environment: this.config.environment,
      running,
      ...(c !== null && running ? { image: imageOf(c), image_digest: c.labels[LABEL.digest] ?? null, started_at: iso(c.startedAt) ?? undefined } : {}),
      state: c?.status ?? 'absent',
      operation_in_progress: this.operation,
      deploy_in_progress: this.operation === 'deploy',
      phase: this.progress?.phase ?? null,
      phase_since: this.progress?.since ?? null,
      last_deploy: this.store.lastDeploy,
      last_interrupted: this.store.lastInterrupted,
      previous_image: c?.labels[LABEL.previousImage] ?? null,
      audit_head: this.audit.lastHash,
    };
  }

  private inspectForStatus(): Promise<ContainerInfo | null> {
    const last = this.lastInspection;
    if (last !== null && Date.now() - last.at < STATUS_FRESH_MS) return Promise.resolve(last.container);
    if (this.sharedInspection === null) {
      const generation = this.inspectionGeneration;
      const startedAt = Date.now();
      const inspection = this.engine.inspectContainer(this.config.containerName);
      this.sharedInspection = inspection;
      inspection.then(
        (container) => {
          // An inspection that started before a deploy or stop ended must not outlive it.
          if (generation === this.inspectionGeneration) this.lastInspection = { at: startedAt, container };
        },
        () => undefined,
      );
      void inspection.finally(() => {
        if (this.sharedInspection === inspection) this.sharedInspection = null;
      }).catch(() => undefined);
    }
    return this.sharedInspection;
  }

  /** Forgets the last inspection: called whenever this agent changes the runtime. */
  private invalidateStatus(): void {
    this.inspectionGeneration += 1;
    this.lastInspection = null;
    this.sharedInspection = null;
  }

  // ---------------------------------------------------------------- recovery

  /**
   * Removes what an interrupted deploy left behind: staging containers of this environment and
   * container name, which were created but never started. The runtime container itself is never
   * started or stopped here. What was done goes to the audit log.
   */
  private async recover(): Promise<void> {
    const { config } = this;
    const interrupted = await this.journal.read();
    const owned = await this.engine.listByLabels({ [LABEL.owner]: OWNER, [LABEL.environment]: config.environment, [LABEL.containerName]: config.containerName });
    const leftovers = owned.filter((c) => c.name !== config.containerName);
    const removed: string[] = [];
    const leftRunning: string[] = [];
    for (const c of leftovers) {
      if (c.state === 'running') {
        // Staging containers are never started, so this is not ours to decide; say so loudly.
        leftRunning.push(c.name);
        continue;
      }
      if ((await this.engine.remove(c.id)) === 'removed') removed.push(c.name);
    }
    if (interrupted === null && removed.length === 0 && leftRunning.length === 0) return;

    const runtime = owned.find((c) => c.name === config.containerName);
    const found = runtime === undefined ? 'no runtime container' : `runtime container ${runtime.state}${runtime.id === interrupted?.new_container_id ? ' (the new one)' : runtime.id === interrupted?.old_container_id ? ' (the old one)' : ''}`;
    const reason = [
      interrupted === null ? '' : `deploy ${interrupted.request_id} of ${interrupted.image} was interrupted while ${describePhase(interrupted.phase)}; found ${found}, left as it is`,
      removed.length > 0 ? `removed staging leftovers: ${removed.join(', ')}` : '',
      leftRunning.length > 0 ? `left running, needs an operator: ${leftRunning.join(', ')}` : '',
    ]
      .filter((part) => part !== '')
      .join('; ');
    this.logger.warn({ interrupted, removed, leftRunning }, 'start-up recovery');
    // Status first, then the audit line, then the journal: once the line is there, status already
    // tells the truth; and a crash in between leaves the journal, so the next start does it again.
    if (interrupted !== null) {
      const record = { image: interrupted.image, outcome: 'interrupted', reason, at: new Date().toISOString(), request_id: interrupted.request_id, image_digest: null } as const;
      await this.store.setInterrupted(record, interrupted.since);
    }
    await this.audit.append({ request_id: interrupted?.request_id ?? randomUUID(), client_id: null, endpoint: 'startup-recovery', image: interrupted?.image ?? null, outcome: 'recovered', status: 0, reason, duration_ms: 0 });
    if (interrupted !== null) await this.journal.clear();
  }

  /** At start-up: recover now, or, if the engine is not there yet, keep trying in the background. */
  startRecovery(): void {
    this.ensureRecovered().catch((error: unknown) => {
      this.logger.warn({ err: error }, 'start-up recovery postponed until the engine answers');
      this.retryRecovery(Date.now() + RECOVERY_RETRY_FOR_MS);
    });
  }

  /**
   * Recovery needs the engine. It starts in the background at start-up, so the agent listens at
   * once even when the engine is down; a deploy or stop waits for it, and retries it if it failed.
   */
  ensureRecovered(): Promise<void> {
    if (this.recovery === null) {
      const attempt = this.recover();
      this.recovery = attempt;
      attempt.catch(() => {
        if (this.recovery === attempt) this.recovery = null;
      });
    }
    return this.recovery;
  }

  // ---------------------------------------------------------------- lock and shutdown

  private acquire(operation: Operation): () => void {
    if (this.closing) throw new AgentError(503, 'the agent is shutting down; try again when it is back');
    if (this.operation !== null) {
      throw new AgentError(409, `a ${this.operation} is in progress; only one deploy or stop runs at a time`);
    }
    this.operation = operation;
    this.invalidateStatus();
    return () => {
      this.invalidateStatus();
      this.operation = null;
      this.progress = null;
      for (const wake of this.idleWaiters.splice(0)) wake();
    };
  }

  get busy(): Operation | null {
    return this.operation;
  }

  /** Refuses new deploys and stops from now on; resolves when the one in progress has ended. */
  shutdown(): Promise<void> {
    this.closing = true;
    if (this.recoveryRetry !== null) clearTimeout(this.recoveryRetry);
    if (this.operation === null) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}

const imageOf = (c: ContainerInfo): string => c.labels[LABEL.image] ?? c.image;

const pinMismatch = (image: ImageReference, tagDigest: string): AgentError =>
  new AgentError(
    409,
    `the pinned digest ${image.digest ?? ''} is not what tag ${image.tag} is: the tag resolves to ${tagDigest} (nor is the pin its manifest for this engine's platform); nothing was deployed or recorded, the running container was not touched`,
  );

/** A signal that fires at `at` (ms since the epoch) with a reason a person can act on. */
function deadline(at: number, deployTimeoutSeconds: number): AbortSignal {
  const controller = new AbortController();
  const reason = new AgentError(504, `the engine did not finish the deploy within DEPLOY_TIMEOUT_SECONDS (${deployTimeoutSeconds} s); check the status for what is running`);
  const timer = setTimeout(() => controller.abort(reason), Math.max(0, at - Date.now()));
  timer.unref();
  return controller.signal;
}

const PHASES: Record<JournalRecord['phase'], string> = {
  pulling: 'pulling the image (nothing was touched)',
  created: 'the new container was created beside the old one',
  stopping: 'stopping the old container',
  starting: 'starting the new container (the old one was already removed)',
  checking: 'checking the new container after its start',
};
const describePhase = (phase: JournalRecord['phase']): string => PHASES[phase];

function iso(timestamp: string | null): string | null {
  if (timestamp === null) return null;
  const date = new Date(timestamp);
  return Number.isNaN(date.getTime()) ? timestamp : date.toISOString();
}
