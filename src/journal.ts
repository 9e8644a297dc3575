import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { parseJsonOrNull, readTextOrNull, writeFileAtomic } from './files.js';

/**
 * The deploy in flight, on disk: which request, which image, which phase, which containers. Written
 * atomically at each phase and removed when the deploy ends, so that an agent killed in the middle
 * (SIGKILL, power loss) finds on restart exactly what it was doing, cleans up what is its to clean,
 * and records the interrupted deploy truthfully.
 */
export const DEPLOY_PHASES = ['pulling', 'created', 'stopping', 'starting', 'checking'] as const;
export type DeployPhase = (typeof DEPLOY_PHASES)[number];

const recordSchema = z.object({
  request_id: z.string(),
  image: z.string(),
  phase: z.enum(DEPLOY_PHASES),
  since: z.string(),
  old_container_id: z.string().nullable(),
  new_container_id: z.string().nullable(),
});
export type JournalRecord = z.infer<typeof recordSchema>;

export class DeployJournal {
  private readonly file: string;

  constructor(stateDir: string) {
    this.file = join(stateDir, 'deploy-journal.json');
  }

  async enter(record: Omit<JournalRecord, 'since'>): Promise<void> {
    await writeFileAtomic(this.file, `${JSON.stringify({ ...record, since: new Date().toISOString() })}\n`);
  }

  /** The unfinished deploy, if the agent stopped in the middle of one. */
  async read(): Promise<JournalRecord | null> {
    const text = await readTextOrNull(this.file);
    if (text === null) return null;
    const parsed = recordSchema.safeParse(parseJsonOrNull(text));
    // A record that does not parse still means a deploy was interrupted; say so without details.
    return parsed.success
      ? parsed.data
      : {
          request_id: 'unknown',
          image: 'unknown',
          phase: 'pulling',
          since: 'unknown',
          old_container_id: null,
          new_container_id: null,
        };
  }

  async clear(): Promise<void> {
    await rm(this.file, { force: true });
  }
}
