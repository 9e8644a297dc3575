import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { parseJsonOrNull, readTextOrNull, writeFileAtomic } from './files.js';

/**
 * The operation in flight, on disk: a deploy or a stop, which request, which image, which phase,
 * which containers. Written atomically at each phase and removed when the operation ends, so that an
 * agent killed in the middle (SIGKILL, power loss) finds on restart exactly what it was doing,
 * records the interrupted operation truthfully, and knows which containers to look after.
 */
export const DEPLOY_PHASES = ['pulling', 'created', 'stopping', 'starting', 'checking'] as const;
export type DeployPhase = (typeof DEPLOY_PHASES)[number];

const recordSchema = z.object({
  // Records written before stops were journaled have no operation: they are deploys.
  operation: z.enum(['deploy', 'stop']).default('deploy'),
  request_id: z.string(),
  image: z.string(),
  phase: z.enum(DEPLOY_PHASES),
  since: z.string(),
  old_container_id: z.string().nullable(),
  new_container_id: z.string().nullable(),
  /** The image of the last successful deploy before this one: the way back, should this one fail. */
  old_image: z.string().nullable().default(null),
});
export type JournalRecord = z.infer<typeof recordSchema>;

/** Writes a file whole (temporary file, fsync, rename); tests inject a full or failing disk. */
export type WriteFile = (file: string, content: string) => Promise<void>;

export class DeployJournal {
  private readonly file: string;
  private readonly write: WriteFile;

  constructor(stateDir: string, write: WriteFile = writeFileAtomic) {
    this.file = join(stateDir, 'deploy-journal.json');
    this.write = write;
  }

  async enter(record: Omit<JournalRecord, 'since'>): Promise<void> {
    await this.write(this.file, `${JSON.stringify({ ...record, since: new Date().toISOString() })}\n`);
  }

  /** The unfinished operation, if the agent stopped in the middle of one. */
  async read(): Promise<JournalRecord | null> {
    const text = await readTextOrNull(this.file);
    if (text === null) return null;
    const parsed = recordSchema.safeParse(parseJsonOrNull(text));
    // A record that does not parse still means an operation was interrupted; say so without details.
    return parsed.success
      ? parsed.data
      : {
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
