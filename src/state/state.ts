import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { stateRefusal } from '../errors.js';
import { MAX_STATE_FILE_BYTES, parseJsonOrNull, readTextOrNull, writeFileAtomic } from './files.js';
import type { WriteFile } from './journal.js';
import { type Owner, ownerMismatch, readSchemaVersion, STATE_SCHEMA } from './schema.js';

/**
 * The agent's own persistent state under STATE_DIR: the digest each tag resolved to on its first
 * deploy (immutable tags), and the outcome of the last deploy. The file is replaced atomically, so a
 * crash leaves the old or the new file, never half.
 */
const lastDeploySchema = z.object({
  image: z.string(),
  outcome: z.enum(['deployed', 'failed', 'abandoned', 'interrupted']),
  reason: z.string().nullable(),
  at: z.string(),
  request_id: z.string(),
  image_digest: z.string().nullable(),
});
export type LastDeploy = z.infer<typeof lastDeploySchema>;

// A digest the agent wrote is always this; anything else is damage of the file, not the registry's doing.
export const DIGEST = /^sha256:[0-9a-f]{64}$/;
const tagRecordSchema = z.object({ digest: z.string().regex(DIGEST, 'is not a sha256 digest'), first_deployed_at: z.string() });
type TagRecord = z.infer<typeof tagRecordSchema>;

/** A deploy that answered 200: what it ran. The history behind `previous_image` and image retention. */
const deploymentSchema = z.object({
  image: z.string(),
  digest: z.string(),
  at: z.string(),
  request_id: z.string(),
});
export type Deployment = z.infer<typeof deploymentSchema>;

/** How many successful deploys the state keeps: far more than any retention or rollback needs. */
export const DEPLOYMENTS_KEPT = 100;

/** The audit log's chain head when the state was last written: the log must still hold it. */
const auditHeadSchema = z.object({ seq: z.number().int().nonnegative(), hash: z.string().regex(/^[0-9a-f]{64}$/) });
export type AuditHead = z.infer<typeof auditHeadSchema>;

// `tags` is checked entry by entry below, not with z.record: a record schema builds a plain object,
// and assigning a key such as "__proto__" to one sets its prototype instead of storing the tag.
// Schema 1 (up to 93a5f22 and after it) had neither the owner nor the audit head; `deployments`
// came later within it. Every field added since is optional here and filled in by migrate().
const stateSchema = z.object({
  version: z.number().int().min(1),
  environment: z.string().nullable().optional(),
  container_name: z.string().nullable().optional(),
  tags: z.unknown(),
  last_deploy: lastDeploySchema.nullable(),
  last_interrupted: lastDeploySchema.nullable().optional(),
  deployments: z.array(deploymentSchema).max(DEPLOYMENTS_KEPT).optional(),
  leftovers: z
    .array(z.string().regex(/^[0-9a-f]{12,64}$/))
    .max(1000)
    .optional(),
  audit_head: auditHeadSchema.nullable().optional(),
  audit_damage: z.string().nullable().optional(),
});

interface State {
  /**
   * Tag name to the digest of its first deploy. A Map, so that every valid tag name is a key like
   * any other: "constructor", "toString" or "__proto__" must be as immutable as "v1".
   */
  readonly tags: ReadonlyMap<string, TagRecord>;
  readonly last_deploy: LastDeploy | null;
  /** The last deploy that start-up recovery found interrupted (agent killed mid-deploy). */
  readonly last_interrupted: LastDeploy | null;
  /** Successful deploys, oldest first. */
  readonly deployments: readonly Deployment[];
  /**
   * Containers an interrupted operation named in its journal, kept until the reconciler has seen
   * them gone: an unlabelled container moved aside has nothing else that marks it as ours.
   */
  readonly leftovers: readonly string[];
  /** Which agent the state belongs to: null only until the first write of a state of schema 1. */
  readonly owner: Owner | null;
  readonly audit_head: AuditHead | null;
  /**
   * What was found wrong with the audit log (truncated, replaced, deleted): kept until an operator
   * removes it from the file, so that a new chain started after the damage never hides it.
   */
  readonly audit_damage: string | null;
}

const EMPTY: State = {
  tags: new Map(),
  last_deploy: null,
  last_interrupted: null,
  deployments: [],
  leftovers: [],
  owner: null,
  audit_head: null,
  audit_damage: null,
};

export interface StateOpenOptions {
  /** The agent's environment and fixed name: a state of another one refuses to start. */
  readonly owner?: Owner;
  /**
   * Called once before the first write of a state that did not exist: the check that the state was
   * not lost (see open-state.ts), when it could not be made at start. A rejection refuses the write.
   */
  readonly beforeFirstWrite?: () => Promise<void>;
}

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

function serialise(state: State): string {
  // Object.fromEntries defines each key as an own property, "__proto__" included.
  const json = {
    version: STATE_SCHEMA,
    environment: state.owner?.environment ?? null,
    container_name: state.owner?.containerName ?? null,
    tags: Object.fromEntries(state.tags),
    last_deploy: state.last_deploy,
    last_interrupted: state.last_interrupted,
    deployments: state.deployments,
    leftovers: state.leftovers,
    audit_head: state.audit_head,
    audit_damage: state.audit_damage,
  };
  return `${JSON.stringify(json, null, 2)}\n`;
}

/**
 * A damaged record of tag digests must stop the agent: carrying on would silently forget which
 * digests tags were pinned to, and immutability with it. A newer schema than this agent knows (a
 * downgrade) refuses too, rather than guess; an older one is migrated (see migrate).
 */
function parseState(file: string, text: string, expected: Owner | null): { state: State; version: number } {
  const damaged = (why: string): Error =>
    stateRefusal(
      `${file} is damaged (${why}); restore it from a backup, or move it aside and rebuild it from the audit log: node agent.js state-rebuild`,
    );
  const json = parseJsonOrNull(text);
  if (json === null) throw damaged('not JSON');
  const version = readSchemaVersion(file, json, 'state');
  const parsed = stateSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw damaged(issue === undefined ? 'invalid' : `${issue.path.join('.') || 'the file'}: ${issue.message}`);
  }
  const data = parsed.data;
  const owner =
    typeof data.environment === 'string' && typeof data.container_name === 'string'
      ? { environment: data.environment, containerName: data.container_name }
      : null;
  const mismatch = ownerMismatch(file, owner, expected);
  if (mismatch !== null) throw stateRefusal(mismatch);
  const rawTags = data.tags;
  if (typeof rawTags !== 'object' || rawTags === null || Array.isArray(rawTags)) throw damaged('tags is not an object');
  const tags = new Map<string, TagRecord>();
  // JSON.parse keeps "__proto__" as an own key, and Object.entries lists it.
  for (const [tag, value] of Object.entries(rawTags)) {
    const record = tagRecordSchema.safeParse(value);
    if (!record.success)
      throw damaged(
        `the record of tag ${JSON.stringify(tag.slice(0, 128))} is invalid: ${record.error.issues[0]?.message ?? ''}`,
      );
    tags.set(tag, record.data);
  }
  const state: State = {
    tags,
    last_deploy: data.last_deploy,
    last_interrupted: data.last_interrupted ?? null,
    deployments: data.deployments ?? [],
    leftovers: data.leftovers ?? [],
    owner: owner ?? expected,
    audit_head: data.audit_head ?? null,
    audit_damage: data.audit_damage ?? null,
  };
  return { state: migrate(state), version };
}

/**
 * Schema 1 as 93a5f22 wrote it kept no history of deploys: the rollback history begins with its last
 * deploy when that one succeeded (open-state.ts adds older ones from the audit log).
 */
function migrate(state: State): State {
  const last = state.last_deploy;
  if (state.deployments.length > 0 || last === null || last.outcome !== 'deployed' || last.image_digest === null) return state;
  if (!DIGEST.test(last.image_digest)) return state;
  return { ...state, deployments: [{ image: last.image, digest: last.image_digest, at: last.at, request_id: last.request_id }] };
}
