import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { stateRefusal } from '../errors.js';
import * as z from '../zod.js';
import { parseJsonOrNull, readTextOrNull, writeFileAtomic } from './files.js';
import { JOURNAL_SCHEMA, type Owner, ownerMismatch, readSchemaVersion } from './schema.js';

/**
 * The operation in flight, on disk: a deploy or a stop, which request, which image, which phase,
 * which containers. Written atomically at each phase and removed when the operation ends, so that an
 * agent killed in the middle (SIGKILL, power loss) finds on restart exactly what it was doing,
 * records the interrupted operation truthfully, and knows which containers to look after.
 */
export const DEPLOY_PHASES = ['pulling', 'created', 'stopping', 'starting', 'checking'] as const;
export type DeployPhase = (typeof DEPLOY_PHASES)[number];

/**
 * Security: a container id the engine gave (64 hex digits), never a name or a short id: a journal
 * left in STATE_DIR could otherwise point the reconciler at any container on the host. And an id is
 * only a hint: the reconciler acts on a container only if it is provably this agent's (ownership.ts).
 */
export const CONTAINER_ID = /^[0-9a-f]{64}$/;
const containerId = z.string().check(z.regex(CONTAINER_ID, 'is not a 64-hex container id'));

const recordSchema = z.object({
  version: z.optional(z.int().check(z.minimum(1))),
  environment: z.optional(z.string()),
  container_name: z.optional(z.string()),
  // Records written before stops were journaled have no operation: they are deploys.
  operation: z._default(z.enum(['deploy', 'stop']), 'deploy'),
  request_id: z.string(),
  image: z.string(),
  phase: z.enum(DEPLOY_PHASES),
  since: z.string(),
  old_container_id: z.nullable(containerId),
  new_container_id: z.nullable(containerId),
  /** The image of the last successful deploy before this one: the way back, should this one fail. */
  old_image: z._default(z.nullable(z.string()), null),
});
export type JournalRecord = Omit<z.infer<typeof recordSchema>, 'version' | 'environment' | 'container_name'>;

/** Writes a file whole (temporary file, fsync, rename); tests inject a full or failing disk. */
export type WriteFile = (file: string, content: string) => Promise<void>;

export class DeployJournal {
  private readonly file: string;
  private readonly write: WriteFile;

  /** `owner`: the agent's environment and fixed name, written into each record and checked on read. */
  constructor(
    stateDir: string,
    write: WriteFile = writeFileAtomic,
    private readonly owner: Owner | null = null,
  ) {
    this.file = join(stateDir, 'deploy-journal.json');
    this.write = write;
  }

  get path(): string {
    return this.file;
  }

  async enter(record: Omit<JournalRecord, 'since'>): Promise<void> {
    const own = this.owner === null ? {} : { environment: this.owner.environment, container_name: this.owner.containerName };
    const json = { version: JOURNAL_SCHEMA, ...own, ...record, since: new Date().toISOString() };
    await this.write(this.file, `${JSON.stringify(json)}\n`);
  }

  /**
   * The unfinished operation, if the agent stopped in the middle of one. A journal of another
   * environment or fixed name, or of a newer schema, refuses (the agent must not act on it).
   */
  async read(): Promise<JournalRecord | null> {
    const text = await readTextOrNull(this.file);
    if (text === null) return null;
    const json = parseJsonOrNull(text);
    readSchemaVersion(this.file, json, 'journal');
    // The owner first, from whatever the file holds: another agent's journal refuses even when the
    // rest of it does not parse.
    const mismatch = ownerMismatch(this.file, ownerOf(json), this.owner);
    if (mismatch !== null) throw stateRefusal(mismatch);
    const parsed = recordSchema.safeParse(json);
    if (parsed.success) {
      const { version: _version, environment: _environment, container_name: _name, ...record } = parsed.data;
      return record;
    }
    // A record that does not parse (garbage, ids that are not the engine's) still means an operation
    // was interrupted; say so without details, and name no container.
    return {
      operation: 'deploy',
      request_id: 'unknown',
      image: 'unknown',
      phase: 'pulling',
      since: 'unknown',
      old_container_id: null,
      new_container_id: null,
      old_image: null,
    };
  }

  async clear(): Promise<void> {
    await rm(this.file, { force: true });
  }
}

/** The environment and fixed name a journal names, when it names both. */
function ownerOf(json: unknown): Owner | null {
  if (typeof json !== 'object' || json === null) return null;
  const { environment, container_name } = json as { environment?: unknown; container_name?: unknown };
  return typeof environment === 'string' && typeof container_name === 'string'
    ? { environment, containerName: container_name }
    : null;
}
