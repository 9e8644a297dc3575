import { stateRefusal } from '../errors.js';
import * as z from '../zod.js';
import { parseJsonOrNull } from './files.js';
import { type Owner, ownerMismatch, readSchemaVersion, STATE_SCHEMA } from './schema.js';

/**
 * state.json as a file: its schema, how it is read (refusing damage, another owner, a newer schema;
 * migrating an older one) and how it is written. StateStore (state.ts) holds it in memory.
 */
const lastDeploySchema = z.object({
  image: z.string(),
  outcome: z.enum(['deployed', 'failed', 'abandoned', 'interrupted']),
  reason: z.nullable(z.string()),
  at: z.string(),
  request_id: z.string(),
  image_digest: z.nullable(z.string()),
});
export type LastDeploy = z.infer<typeof lastDeploySchema>;

// A digest the agent wrote is always this; anything else is damage of the file, not the registry's doing.
export const DIGEST = /^sha256:[0-9a-f]{64}$/;
export const tagRecordSchema = z.object({
  digest: z.string().check(z.regex(DIGEST, 'is not a sha256 digest')),
  first_deployed_at: z.string(),
});
export type TagRecord = z.infer<typeof tagRecordSchema>;

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
const auditHeadSchema = z.object({
  seq: z.int().check(z.nonnegative()),
  hash: z.string().check(z.regex(/^[0-9a-f]{64}$/)),
});
export type AuditHead = z.infer<typeof auditHeadSchema>;

// `tags` is checked entry by entry below, not with z.record: a record schema builds a plain object,
// and assigning a key such as "__proto__" to one sets its prototype instead of storing the tag.
// Schema 1 (up to 93a5f22 and after it) had neither the owner nor the audit head; `deployments`
// came later within it. Every field added since is optional here and filled in by migrate().
const stateSchema = z.object({
  version: z.int().check(z.minimum(1)),
  environment: z.optional(z.nullable(z.string())),
  container_name: z.optional(z.nullable(z.string())),
  tags: z.unknown(),
  last_deploy: z.nullable(lastDeploySchema),
  last_interrupted: z.optional(z.nullable(lastDeploySchema)),
  deployments: z.optional(z.array(deploymentSchema).check(z.maxLength(DEPLOYMENTS_KEPT))),
  leftovers: z.optional(z.array(z.string().check(z.regex(/^[0-9a-f]{12,64}$/))).check(z.maxLength(1000))),
  audit_head: z.optional(z.nullable(auditHeadSchema)),
  audit_damage: z.optional(z.nullable(z.string())),
});

export interface State {
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

export const EMPTY: State = {
  tags: new Map(),
  last_deploy: null,
  last_interrupted: null,
  deployments: [],
  leftovers: [],
  owner: null,
  audit_head: null,
  audit_damage: null,
};

export function serialise(state: State): string {
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
export function parseState(file: string, text: string, expected: Owner | null): { state: State; version: number } {
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
