import type { Config } from '../config/config.js';
import type { ContainerInfo, EnginePort } from '../engine/engine-port.js';
import type { AuditLog } from '../state/audit.js';
import type { DeployPhase } from '../state/journal.js';
import type { LastDeploy, StateStore } from '../state/state.js';
import { type Provenance, provenanceFromLabel } from '../supply-chain/provenance.js';
import type { Operation } from './lock.js';
import type { Leftover, NotOurs } from './reconciler.js';
import { imageOf, LABEL } from './runtime-spec.js';

/**
 * GET /v1/status: what runs, from the engine's own inspection, and what the agent is doing. Read-only.
 *
 * Status is polled (CI, monitoring, operators), and it must not wait on a slow or busy engine (a pull
 * in progress, a stalled inspection) while the agent holds an answer that is recent enough:
 *   - an inspection younger than FRESH_MS is served as it is;
 *   - one younger than MAX_AGE_MS is served at once while a single refresh runs in the background;
 *   - otherwise callers wait for a new inspection, and all of them share that one.
 * So the engine sees at most about ten inspections a second however many callers there are. Every
 * deploy and stop of this agent discards the last inspection, so a caller never sees a state older
 * than the last change the agent made. The answer says when its inspection was taken.
 */
export interface StatusBody {
  readonly container_name: string;
  readonly environment: string;
  readonly running: boolean;
  readonly image?: string;
  /** The manifest the container runs. */
  readonly image_digest?: string | null;
  /** What its tag resolved to when deployed: the same digest, or the image index it was chosen from. */
  readonly tag_digest?: string | null;
  readonly started_at?: string;
  /** What built the running image, as verified when it was deployed (IMAGE_VERIFICATION); null if not. */
  readonly provenance?: Provenance | null;
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
  /** The last image deployed successfully before the current one: deploy it to roll back. */
  readonly previous_image: string | null;
  /** Containers that will never run again and are not removed yet: the reconciler retries them. */
  readonly leftovers: readonly Leftover[];
  /** Containers that look like leftovers but are not provably this agent's: never touched. */
  readonly not_ours: readonly NotOurs[];
  readonly audit_head: string;
  /**
   * Whether the audit log is whole: its chain verified at start (null while that runs), still the file
   * the agent opened, and still holding the head state.json recorded. False names the problem below.
   */
  readonly audit_intact: boolean | null;
  readonly audit_problem: string | null;
  /** How many of the images it deployed the agent keeps on the host (IMAGE_RETENTION; 0: all). */
  readonly image_retention: number;
  /** When the engine was asked (ISO 8601), and how long ago that was when this answer was built. */
  readonly inspected_at: string;
  readonly inspection_age_ms: number;
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
  readonly leftovers?: () => readonly Leftover[];
  readonly notOurs?: () => readonly NotOurs[];
  /**
   * A monotonic clock (ms) for the age of an inspection: a wall clock stepped back would keep a stale
   * answer fresh for as long as it was stepped. Tests move it.
   */
  readonly now?: () => number;
}

export const FRESH_MS = 100;
export const MAX_AGE_MS = 1_000;

/** What status says about the container, worked out once per inspection, not once per request. */
type ContainerFields = Pick<
  StatusBody,
  'running' | 'image' | 'image_digest' | 'tag_digest' | 'started_at' | 'provenance' | 'state' | 'previous_image'
>;

interface Inspection {
  /** When the engine was asked (monotonic ms): an inspection is as old as its question. */
  readonly at: number;
  readonly atIso: string;
  readonly fields: ContainerFields;
}

function fieldsOf(c: ContainerInfo | null): ContainerFields {
  const running = c?.running === true;
  return {
    running,
    ...(c !== null && running
      ? {
          image: imageOf(c),
          image_digest: c.labels[LABEL.digest] ?? null,
          tag_digest: c.labels[LABEL.tagDigest] ?? c.labels[LABEL.digest] ?? null,
          started_at: iso(c.startedAt) ?? undefined,
        }
      : {}),
    // Supply chain: what built the running image, as verified at its deploy (its label).
    ...(c !== null && running ? { provenance: provenanceFromLabel(c.labels[LABEL.provenance]) } : {}),
    state: c?.status ?? 'absent',
    previous_image: c?.labels[LABEL.previousImage] ?? null,
  };
}

export class StatusView {
  private inflight: Promise<Inspection> | null = null;
  private last: Inspection | null = null;
  private generation = 0;
  private readonly now: () => number;

  constructor(private readonly deps: StatusViewDeps) {
    this.now = deps.now ?? (() => performance.now());
  }

  async status(): Promise<StatusBody> {
    const { config, store, audit } = this.deps;
    const inspection = await this.current();
    const activity = this.deps.activity();
    return {
      container_name: config.containerName,
      environment: config.environment,
      ...inspection.fields,
      operation_in_progress: activity.operation,
      deploy_in_progress: activity.operation === 'deploy',
      phase: activity.phase,
      phase_since: activity.phaseSince,
      last_deploy: store.lastDeploy,
      last_interrupted: store.lastInterrupted,
      leftovers: this.deps.leftovers?.() ?? [],
      not_ours: this.deps.notOurs?.() ?? [],
      audit_head: audit.lastHash,
      audit_intact: audit.intact,
      audit_problem: audit.problem,
      image_retention: config.imageRetention,
      inspected_at: inspection.atIso,
      inspection_age_ms: Math.max(0, this.now() - inspection.at),
    };
  }

  /** Forgets the last inspection: called whenever this agent changes the runtime. */
  invalidate(): void {
    this.generation += 1;
    this.last = null;
    this.inflight = null;
  }

  private current(): Promise<Inspection> {
    const last = this.last;
    const age = last === null ? Number.POSITIVE_INFINITY : this.now() - last.at;
    if (last !== null && age < FRESH_MS) return Promise.resolve(last);
    if (last !== null && age < MAX_AGE_MS) {
      // Recent enough: answer now; the engine's answer serves the next callers.
      this.refresh().catch(() => undefined);
      return Promise.resolve(last);
    }
    return this.refresh();
  }

  /** One inspection at a time; every caller that needs one shares it. */
  private refresh(): Promise<Inspection> {
    if (this.inflight !== null) return this.inflight;
    const generation = this.generation;
    const at = this.now();
    const atIso = new Date().toISOString();
    const inspection = this.deps.engine.inspectContainer(this.deps.config.containerName).then((container) => {
      const result = { at, atIso, fields: fieldsOf(container) };
      // An inspection that started before a deploy or stop changed the runtime must not outlive it.
      if (generation === this.generation) this.last = result;
      return result;
    });
    this.inflight = inspection;
    void inspection
      .finally(() => {
        if (this.inflight === inspection) this.inflight = null;
      })
      .catch(() => undefined);
    return inspection;
  }
}

/** An engine timestamp as ISO 8601 (the engine gives nanoseconds). */
export function iso(timestamp: string | null): string | null {
  if (timestamp === null) return null;
  const date = new Date(timestamp);
  return Number.isNaN(date.getTime()) ? timestamp : date.toISOString();
}
