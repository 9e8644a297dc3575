import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { MAX_STATE_FILE_BYTES, readTextOrNull, writeFileAtomic } from './files.js';
import type { WriteFile } from './journal.js';
import { type Owner, STATE_SCHEMA } from './schema.js';
import {
  type AuditHead,
  DEPLOYMENTS_KEPT,
  type Deployment,
  EMPTY,
  type LastDeploy,
  parseState,
  type State,
  serialise,
} from './state-file.js';

export { type AuditHead, DEPLOYMENTS_KEPT, type Deployment, DIGEST, type LastDeploy } from './state-file.js';

export interface StateOpenOptions {
  /** The agent's environment and fixed name: a state of another one refuses to start. */
  readonly owner?: Owner;
  /**
   * Called once before the first write of a state that did not exist: the check that the state was
   * not lost (see open-state.ts), when it could not be made at start. A rejection refuses the write.
   */
  readonly beforeFirstWrite?: () => Promise<void>;
}

/**
 * The agent's own persistent state under STATE_DIR: the digest each tag resolved to on its first
 * deploy (immutable tags), and the outcome of the last deploy. The file is replaced atomically, so a
 * crash leaves the old or the new file, never half. Its format on disk: state-file.ts.
 */
export class StateStore {
  private constructor(
    readonly file: string,
    private state: State,
    private readonly write: WriteFile,
    /** The schema the file was written in, when older than this agent's; null if current or new. */
    readonly migratedFrom: number | null,
    private beforeFirstWrite: (() => Promise<void>) | null,
  ) {}

  private queue: Promise<unknown> = Promise.resolve();
  private auditHead: () => AuditHead | null = () => this.state.audit_head;

  /** `write` replaces the file whole; tests inject a full or failing disk. */
  static async open(dir: string, write: WriteFile = writeFileAtomic, options: StateOpenOptions = {}): Promise<StateStore> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const file = join(dir, 'state.json');
    const text = await readTextOrNull(file);
    if (text === null) {
      const empty = { ...EMPTY, owner: options.owner ?? null };
      return new StateStore(file, empty, write, null, options.beforeFirstWrite ?? null);
    }
    const { state, version } = parseState(file, text, options.owner ?? null);
    return new StateStore(file, state, write, version < STATE_SCHEMA ? version : null, null);
  }

  /** From now on each write records the audit log's head as it is then. */
  trackAuditHead(head: () => AuditHead | null): void {
    this.auditHead = head;
  }

  /** The audit head recorded when the state was last written; null before any was recorded. */
  get recordedAuditHead(): AuditHead | null {
    return this.state.audit_head;
  }

  get auditDamage(): string | null {
    return this.state.audit_damage;
  }

  /** Records damage found in the audit log; the first one found is kept. */
  async noteAuditDamage(problem: string): Promise<void> {
    if (this.state.audit_damage !== null) return;
    await this.save({ ...this.state, audit_damage: problem });
  }

  /** Migration: the history of successful deploys, when the state written by an older agent has none. */
  async adoptHistory(deployments: readonly Deployment[]): Promise<void> {
    if (deployments.length <= this.state.deployments.length) return;
    await this.save({ ...this.state, deployments: deployments.slice(-DEPLOYMENTS_KEPT) });
  }

  /** Writes the state now (the migration of an older schema). */
  async flush(): Promise<void> {
    await this.save(this.state);
  }

  /** Writes the audit log's head if it moved since the state was last written (at shutdown). */
  async recordAuditHead(): Promise<void> {
    const head = this.auditHead();
    const was = this.state.audit_head;
    if (head === null || (was !== null && was.seq === head.seq && was.hash === head.hash)) return;
    await this.save(this.state);
  }

  get tagCount(): number {
    return this.state.tags.size;
  }

  /** The digest recorded for `tag`, or null when the tag was never deployed here. */
  recordedDigest(tag: string): string | null {
    return this.state.tags.get(tag)?.digest ?? null;
  }

  async recordTag(tag: string, digest: string): Promise<void> {
    if (this.state.tags.has(tag)) return;
    const tags = new Map(this.state.tags).set(tag, { digest, first_deployed_at: new Date().toISOString() });
    // Written before it is believed: a tag record that never reached the disk must not pin the tag.
    await this.save({ ...this.state, tags }, 'disk-first');
  }

  get lastDeploy(): LastDeploy | null {
    return this.state.last_deploy;
  }

  get lastInterrupted(): LastDeploy | null {
    return this.state.last_interrupted;
  }

  async setLastDeploy(last: LastDeploy): Promise<void> {
    await this.save({ ...this.state, last_deploy: last });
  }

  /** Successful deploys, oldest first. */
  get deployments(): readonly Deployment[] {
    return this.state.deployments;
  }

  /**
   * The image to roll back to from a deploy of `image`: the most recent successful deploy of another
   * image. Only deploys that answered 200 count, so an image that failed its start check is never
   * offered as the way back.
   */
  previousDeployment(image: string): Deployment | null {
    for (let i = this.state.deployments.length - 1; i >= 0; i -= 1) {
      const d = this.state.deployments[i];
      if (d !== undefined && d.image !== image) return d;
    }
    return null;
  }

  /** Records a deploy that succeeded, and its outcome as the last deploy, in one write. */
  async recordDeployed(deployment: Deployment, last: LastDeploy): Promise<void> {
    const deployments = [...this.state.deployments, deployment].slice(-DEPLOYMENTS_KEPT);
    await this.save({ ...this.state, deployments, last_deploy: last });
  }

  get leftovers(): readonly string[] {
    return this.state.leftovers;
  }

  /** Sets the containers to look after; a write that changes nothing is skipped. */
  async setLeftovers(ids: readonly string[]): Promise<void> {
    const next = [...new Set(ids)].sort();
    if (next.length === this.state.leftovers.length && next.every((id, i) => id === this.state.leftovers[i])) return;
    await this.save({ ...this.state, leftovers: next });
  }

  /**
   * Records a deploy that recovery found interrupted. It also becomes the last deploy unless a later
   * one was recorded meanwhile (a deploy tried while the engine was still down after a reboot).
   */
  async setInterrupted(interrupted: LastDeploy, since: string): Promise<void> {
    const last = this.state.last_deploy;
    const newer = last !== null && last.request_id !== interrupted.request_id && last.at > since;
    await this.save({ ...this.state, last_interrupted: interrupted, last_deploy: newer ? last : interrupted });
  }

  /**
   * Records of what happened (the last deploy, the history, the leftovers) are believed at once and
   * then written: if the disk refuses, the status still tells the truth until a restart, and the
   * caller logs the failed write. A tag record is written before it is believed (see recordTag).
   * Writes go one at a time, each of the whole state as it is when the write begins, so a slow
   * write can never put an older state on disk after a newer one.
   */
  private save(next: State, order: 'memory-first' | 'disk-first' = 'memory-first'): Promise<void> {
    if (order === 'memory-first') this.state = next;
    const run = async () => {
      if (this.beforeFirstWrite !== null) {
        await this.beforeFirstWrite();
        this.beforeFirstWrite = null;
      }
      const state = order === 'memory-first' ? this.state : { ...this.state, tags: next.tags };
      const head = this.auditHead();
      const content = serialise({ ...state, audit_head: head });
      // Security: bounded, so that no record can grow the file until every deploy waits on its write.
      if (content.length > MAX_STATE_FILE_BYTES)
        throw new Error(
          `${this.file} would grow past ${MAX_STATE_FILE_BYTES} bytes (${state.tags.size} tag records); not written`,
        );
      await this.write(this.file, content);
      this.state = { ...this.state, audit_head: head };
      if (order === 'disk-first') this.state = { ...this.state, tags: next.tags };
    };
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }
}
