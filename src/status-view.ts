import type { AuditLog } from './audit.js';
import type { Config } from './config.js';
import type { ContainerInfo, EnginePort } from './engine-port.js';
import type { DeployPhase } from './journal.js';
import type { Operation } from './lock.js';
import { imageOf, LABEL } from './runtime-spec.js';
import type { LastDeploy, StateStore } from './state.js';

/**
 * GET /v1/status: what runs, from the engine's own inspection, and what the agent is doing. Read-only.
 *
 * Status is polled (CI, monitoring, operators). Concurrent callers share one engine inspection, and
 * an inspection is reused for STATUS_FRESH_MS, so the engine sees at most ten a second however many
 * callers there are. Every deploy and stop of this agent invalidates it, so its own changes show at once.
 */
export interface StatusBody {
  readonly container_name: string;
  readonly environment: string;
  readonly running: boolean;
  readonly image?: string;
  readonly image_digest?: string | null;
  readonly started_at?: string;
  /** The engine's state of the container: running, exited, created, ... or "absent". */
  readonly state: string;
  readonly operation_in_progress: Operation | null;
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

/** What the agent is doing, as the deploy sequence reports it. */
export interface Activity {
  readonly operation: Operation | null;
  readonly phase: DeployPhase | null;
  readonly phaseSince: string | null;
}

export interface StatusViewDeps {
  readonly config: Config;
  readonly engine: EnginePort;
  readonly store: StateStore;
  readonly audit: AuditLog;
  readonly activity: () => Activity;
}

const STATUS_FRESH_MS = 100;

export class StatusView {
  private shared: Promise<ContainerInfo | null> | null = null;
  private last: { readonly at: number; readonly container: ContainerInfo | null } | null = null;
  private generation = 0;

  constructor(private readonly deps: StatusViewDeps) {}

  async status(): Promise<StatusBody> {
    const { config, store, audit } = this.deps;
    const c = await this.inspect();
    const running = c?.running === true;
    const activity = this.deps.activity();
    return {
      container_name: config.containerName,
      environment: config.environment,
      running,
      ...(c !== null && running
        ? { image: imageOf(c), image_digest: c.labels[LABEL.digest] ?? null, started_at: iso(c.startedAt) ?? undefined }
        : {}),
      state: c?.status ?? 'absent',
      operation_in_progress: activity.operation,
      deploy_in_progress: activity.operation === 'deploy',
      phase: activity.phase,
      phase_since: activity.phaseSince,
      last_deploy: store.lastDeploy,
      last_interrupted: store.lastInterrupted,
      previous_image: c?.labels[LABEL.previousImage] ?? null,
      audit_head: audit.lastHash,
    };
  }

  /** Forgets the last inspection: called whenever this agent changes the runtime. */
  invalidate(): void {
    this.generation += 1;
    this.last = null;
    this.shared = null;
  }

  private inspect(): Promise<ContainerInfo | null> {
    const last = this.last;
    if (last !== null && Date.now() - last.at < STATUS_FRESH_MS) return Promise.resolve(last.container);
    if (this.shared === null) {
      const generation = this.generation;
      const startedAt = Date.now();
      const inspection = this.deps.engine.inspectContainer(this.deps.config.containerName);
      this.shared = inspection;
      inspection.then(
        (container) => {
          // An inspection that started before a deploy or stop ended must not outlive it.
          if (generation === this.generation) this.last = { at: startedAt, container };
        },
        () => undefined,
      );
      void inspection
        .finally(() => {
          if (this.shared === inspection) this.shared = null;
        })
        .catch(() => undefined);
    }
    return this.shared;
  }
}

/** An engine timestamp as ISO 8601 (the engine gives nanoseconds). */
export function iso(timestamp: string | null): string | null {
  if (timestamp === null) return null;
  const date = new Date(timestamp);
  return Number.isNaN(date.getTime()) ? timestamp : date.toISOString();
}
