import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { parseJsonOrNull, readTextOrNull, writeFileAtomic } from './files.js';
import type { WriteFile } from './journal.js';

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

const tagRecordSchema = z.object({ digest: z.string(), first_deployed_at: z.string() });
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

// `tags` is checked entry by entry below, not with z.record: a record schema builds a plain object,
// and assigning a key such as "__proto__" to one sets its prototype instead of storing the tag.
const stateSchema = z.object({
  version: z.literal(1),
  tags: z.unknown(),
  last_deploy: lastDeploySchema.nullable(),
  last_interrupted: lastDeploySchema.nullable().optional(),
  deployments: z.array(deploymentSchema).max(DEPLOYMENTS_KEPT).optional(),
  leftovers: z
    .array(z.string().regex(/^[0-9a-f]{12,64}$/))
    .max(1000)
    .optional(),
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
}

const EMPTY: State = { tags: new Map(), last_deploy: null, last_interrupted: null, deployments: [], leftovers: [] };

export class StateStore {
  private constructor(
    private readonly file: string,
    private state: State,
    private readonly write: WriteFile,
  ) {}

  private queue: Promise<unknown> = Promise.resolve();

  /** `write` replaces the file whole; tests inject a full or failing disk. */
  static async open(dir: string, write: WriteFile = writeFileAtomic): Promise<StateStore> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const file = join(dir, 'state.json');
    const text = await readTextOrNull(file);
    return new StateStore(file, text === null ? EMPTY : parseState(file, text), write);
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
      const content = serialise(order === 'memory-first' ? this.state : { ...this.state, tags: next.tags });
      await this.write(this.file, content);
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
    version: 1,
    tags: Object.fromEntries(state.tags),
    last_deploy: state.last_deploy,
    last_interrupted: state.last_interrupted,
    deployments: state.deployments,
    leftovers: state.leftovers,
  };
  return `${JSON.stringify(json, null, 2)}\n`;
}

/**
 * A damaged record of tag digests must stop the agent: carrying on would silently forget which
 * digests tags were pinned to, and immutability with it.
 */
function parseState(file: string, text: string): State {
  const damaged = (why: string): Error => new Error(`${file} is damaged (${why}); restore it from a backup`);
  const json = parseJsonOrNull(text);
  if (json === null) throw damaged('not JSON');
  const parsed = stateSchema.safeParse(json);
  if (!parsed.success) throw damaged(parsed.error.issues[0]?.message ?? 'invalid');
  const rawTags = parsed.data.tags;
  if (typeof rawTags !== 'object' || rawTags === null || Array.isArray(rawTags)) throw damaged('tags is not an object');
  const tags = new Map<string, TagRecord>();
  // JSON.parse keeps "__proto__" as an own key, and Object.entries lists it.
  for (const [tag, value] of Object.entries(rawTags)) {
    const record = tagRecordSchema.safeParse(value);
    if (!record.success) throw damaged(`the record of tag ${JSON.stringify(tag.slice(0, 128))} is invalid`);
    tags.set(tag, record.data);
  }
  return {
    tags,
    last_deploy: parsed.data.last_deploy,
    last_interrupted: parsed.data.last_interrupted ?? null,
    deployments: parsed.data.deployments ?? [],
    leftovers: parsed.data.leftovers ?? [],
  };
}
