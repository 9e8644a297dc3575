import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import type { ContainerInfo, ContainerSummary, EnginePort } from '../engine/engine-port.js';
import { describe } from '../errors.js';
import type { AuditLog } from '../state/audit.js';
import type { DeployJournal } from '../state/journal.js';
import type { StateStore } from '../state/state.js';
import { recordInterruptedJournal } from './interrupted.js';
import type { OperationLock } from './lock.js';
import { notOursBecause } from './ownership.js';
import { isLeftoverName, ownedBy } from './runtime-spec.js';

/**
 * What an interrupted or failed operation left behind, and its clean-up. Two jobs, kept apart on
 * purpose so that neither can ever stand in the way of a deploy or, above all, of an emergency stop:
 *
 *  - `recordInterrupted`: the journal of an operation the agent was killed in is turned into its
 *    record (status, audit line) and its container ids are kept in the state (interrupted.ts). Disk
 *    only, no engine: it runs at start, before anything listens, and again before each deploy or stop.
 *  - the clean-up of leftovers (staged containers never started, replaced containers moved aside):
 *    per container, best effort, bounded, in the background, retried with backoff while anything is
 *    left, each failure logged and shown in the status. Nothing waits for it. Leftovers are found by
 *    labels, by the ids the journal named, and by the names the agent gives them, because a runtime
 *    container the agent did not create (the first cut-over from a hand-made one) has no labels.
 *    Security: whatever found it, a container is touched only if it is provably this agent's now
 *    (ownership.ts); one that looks like a leftover but is not is shown in status, never touched.
 *    Removals are never forced: a container that runs is left alone.
 *
 * It never starts or stops anything, and never touches the container at the fixed name: the runtime
 * is an operator's decision. A leftover that runs (which the agent never does) is shown for an
 * operator; POST /v1/stop stops it.
 */

export interface ReconcilerTiming {
  /** First retry after a failed pass; doubled on each failure up to `maxBackoffMs`. */
  readonly backoffMs: number;
  readonly maxBackoffMs: number;
  /** While a deploy runs, the next pass waits this long. */
  readonly busyRetryMs: number;
}

export const RECONCILER_TIMING: ReconcilerTiming = { backoffMs: 2_000, maxBackoffMs: 5 * 60_000, busyRetryMs: 1_000 };

export interface ReconcilerDeps {
  readonly config: Config;
  readonly engine: EnginePort;
  readonly store: StateStore;
  readonly audit: AuditLog;
  readonly journal: DeployJournal;
  readonly lock: OperationLock;
  readonly logger: Logger;
  readonly timing?: Partial<ReconcilerTiming>;
}

/** A container that looked like a leftover but is not provably this agent's: shown, never touched. */
export interface NotOurs {
  readonly id: string;
  readonly name: string;
  readonly state: string;
  readonly why: string;
}

/** A container to clean up, as status shows it. */
export interface Leftover {
  readonly id: string;
  readonly name: string | null;
  readonly state: string | null;
  readonly attempts: number;
  readonly last_error: string | null;
  readonly next_attempt_at: string | null;
}

export class Reconciler {
  private readonly timing: ReconcilerTiming;
  private readonly known = new Map<string, Leftover>();
  private readonly foreign = new Map<string, NotOurs>();
  private timer: NodeJS.Timeout | null = null;
  private backoff: number;
  private pass: Promise<void> | null = null;
  private recording: Promise<void> | null = null;
  private stopped = false;

  constructor(private readonly deps: ReconcilerDeps) {
    this.timing = { ...RECONCILER_TIMING, ...deps.timing };
    this.backoff = this.timing.backoffMs;
  }

  /** What is left to clean up, for status. */
  get leftovers(): Leftover[] {
    return [...this.known.values()];
  }

  /** What looked like a leftover but is not provably this agent's, for status: never touched. */
  get notOurs(): NotOurs[] {
    return [...this.foreign.values()];
  }

  /**
   * Turns the journal of an interrupted operation into its record: state, then audit line, then the
   * journal is cleared (a crash in between does it again). Throws when the disk refuses.
   */
  recordInterrupted(): Promise<void> {
    // One at a time: a request arriving during start-up must not record the same journal twice.
    this.recording ??= this.record().finally(() => {
      this.recording = null;
    });
    return this.recording;
  }

  private async record(): Promise<void> {
    if (await recordInterruptedJournal(this.deps)) this.soon();
  }

  /** At start-up: record what was interrupted (if the disk lets us) and clean up in the background. */
  start(): void {
    this.recordInterrupted().catch((error: unknown) =>
      this.deps.logger.error({ err: error }, 'could not record the interrupted operation; tried again before the next one'),
    );
    this.soon();
  }

  /** A container that will never run again and could not be removed in time: cleaned up later. */
  hand(id: string, name: string | null, error: unknown): void {
    const before = this.known.get(id);
    this.known.set(id, {
      id,
      name: name ?? before?.name ?? null,
      state: before?.state ?? null,
      attempts: (before?.attempts ?? 0) + 1,
      last_error: describe(error),
      next_attempt_at: null,
    });
    this.deps.store
      .setLeftovers([...this.deps.store.leftovers, id])
      .catch((e: unknown) => this.deps.logger.error({ err: e }, 'could not record a leftover container in the state'));
    this.soon();
  }

  /** Runs a pass soon (after the operation in progress, if any). */
  soon(): void {
    this.schedule(0);
  }

  /** One pass now, for tests and for the end of an operation; resolves when it is done. */
  runOnce(): Promise<void> {
    this.pass ??= this.cleanUp().finally(() => {
      this.pass = null;
    });
    return this.pass;
  }

  /** At shutdown: no more passes. */
  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    if (this.timer !== null) {
      if (delayMs > 0) return; // one is planned already
      clearTimeout(this.timer);
    }
    this.timer = setTimeout(() => {
      this.timer = null;
      // A deploy's own staging container must never be taken for a leftover: no pass while one runs.
      if (this.deps.lock.busy === 'deploy') {
        this.schedule(this.timing.busyRetryMs);
        return;
      }
      this.runOnce().then(
        () => this.afterPass(null),
        (error: unknown) => this.afterPass(error),
      );
    }, delayMs);
    this.timer.unref();
  }

  private afterPass(error: unknown): void {
    if (error !== null) this.deps.logger.warn({ err: error }, 'clean-up of leftover containers failed; retrying');
    if (error === null && this.known.size === 0) {
      this.backoff = this.timing.backoffMs;
      return;
    }
    const delay = this.backoff;
    this.backoff = Math.min(this.backoff * 2, this.timing.maxBackoffMs);
    const at = new Date(Date.now() + delay).toISOString();
    for (const [id, l] of this.known) if (l.state !== 'running') this.known.set(id, { ...l, next_attempt_at: at });
    this.schedule(delay);
  }

  /** One pass: find every candidate, remove each that is provably ours, not running and not the runtime. */
  private async cleanUp(): Promise<void> {
    const { config, engine, store, logger } = this.deps;
    const [byLabel, byName] = await Promise.all([engine.listByLabels(ownedBy(config)), engine.listByName(config.containerName)]);
    const everything = new Map([...byLabel, ...byName].map((c) => [c.id, c]));
    const candidates = new Map<string, ContainerSummary>();
    const consider = (c: ContainerSummary, source: string): void => {
      const why = notOursBecause(config, c);
      if (why === null) {
        candidates.set(c.id, c);
        return;
      }
      if (!this.foreign.has(c.id))
        logger.warn(
          { container: c.name, id: c.id, why },
          `${source} names a container that is not provably this agent's; not touched`,
        );
      this.foreign.set(c.id, { id: c.id, name: c.name, state: c.state, why: `${source}: ${why}` });
      this.known.delete(c.id);
    };
    for (const c of everything.values()) {
      if (c.name === config.containerName) continue;
      if (byLabel.includes(c) || isLeftoverName(config.containerName, c.name)) consider(c, 'found by its name or labels');
    }
    // Ids from journals and hand-overs are hints, never proof: each is looked up, and touched only if
    // the engine says it is ours now.
    for (const id of [...store.leftovers, ...this.known.keys()]) {
      if (candidates.has(id) || this.foreign.has(id)) continue;
      const c = everything.get(id) ?? toSummary(await engine.inspectContainer(id));
      if (c === null || c.name === config.containerName) this.known.delete(id);
      else consider(c, 'the journal or state');
    }
    const removed: string[] = [];
    const failed: string[] = [];
    for (const [id, c] of candidates) {
      if (this.stopped) return;
      // A deploy that began during this pass creates only containers that are not in this list.
      if (c.state === 'running') {
        this.known.set(id, {
          ...this.entry(id, c),
          last_error: 'running although it is not the runtime container; POST /v1/stop stops it',
          next_attempt_at: null,
        });
        continue;
      }
      try {
        const outcome = await engine.remove(id);
        this.known.delete(id);
        if (outcome === 'removed') removed.push(c.name);
      } catch (error) {
        const before = this.entry(id, c);
        this.known.set(id, { ...before, attempts: before.attempts + 1, last_error: describe(error) });
        failed.push(c.name);
      }
    }
    // Ids that are gone, the runtime now, or not ours need no more looking after.
    await store.setLeftovers(store.leftovers.filter((id) => this.known.has(id) && !this.foreign.has(id)));
    if (removed.length > 0) {
      logger.info({ removed }, 'removed leftover containers');
      await this.deps.audit.cleaned(
        `removed leftover containers (staged or replaced, never to run again): ${removed.join(', ')}`,
      );
    }
    if (failed.length > 0) logger.warn({ failed, leftovers: this.leftovers }, 'leftover containers could not be removed yet');
  }

  private entry(id: string, c: ContainerSummary): Leftover {
    const before = this.known.get(id);
    return {
      id,
      name: c.name,
      state: c.state,
      attempts: before?.attempts ?? 0,
      last_error: before?.last_error ?? null,
      next_attempt_at: before?.next_attempt_at ?? null,
    };
  }
}

const toSummary = (c: ContainerInfo | null): ContainerSummary | null =>
  c === null ? null : { id: c.id, name: c.name, state: c.status, labels: c.labels };
