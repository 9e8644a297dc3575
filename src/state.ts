import { randomUUID } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';

/**
 * The agent's own persistent state under STATE_DIR: the digest each tag resolved to on its first
 * deploy (immutable tags), and the outcome of the last deploy. Files are replaced atomically
 * (write, fsync, rename, fsync the directory), so a crash leaves the old or the new file, never half.
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

const stateSchema = z.object({
  version: z.literal(1),
  tags: z.record(z.string(), z.object({ digest: z.string(), first_deployed_at: z.string() })),
  last_deploy: lastDeploySchema.nullable(),
});
type State = z.infer<typeof stateSchema>;

export class StateStore {
  private constructor(
    private readonly file: string,
    private state: State,
  ) {}

  static async open(dir: string): Promise<StateStore> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const file = join(dir, 'state.json');
    const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return null;
      throw error;
    });
    if (text === null) return new StateStore(file, { version: 1, tags: {}, last_deploy: null });
    // A damaged record of tag digests must stop the agent: carrying on would silently forget which
    // digests tags were pinned to, and immutability with it.
    const parsed = stateSchema.safeParse(JSON.parse(text));
    if (!parsed.success) throw new Error(`${file} is damaged (${parsed.error.issues[0]?.message ?? 'invalid'}); restore it from a backup`);
    return new StateStore(file, parsed.data);
  }

  /** The digest recorded for `tag`, or null when the tag was never deployed here. */
  recordedDigest(tag: string): string | null {
    return this.state.tags[tag]?.digest ?? null;
  }

  async recordTag(tag: string, digest: string): Promise<void> {
    if (this.state.tags[tag] !== undefined) return;
    await this.save({ ...this.state, tags: { ...this.state.tags, [tag]: { digest, first_deployed_at: new Date().toISOString() } } });
  }

  get lastDeploy(): LastDeploy | null {
    return this.state.last_deploy;
  }

  async setLastDeploy(last: LastDeploy): Promise<void> {
    await this.save({ ...this.state, last_deploy: last });
  }

  private async save(next: State): Promise<void> {
    await writeFileAtomic(this.file, `${JSON.stringify(next, null, 2)}\n`);
    this.state = next;
  }
}

export async function writeFileAtomic(file: string, content: string): Promise<void> {
  const tmp = `${file}.${randomUUID()}.tmp`;
  try {
    const handle = await open(tmp, 'wx', 0o600);
    try {
      await handle.writeFile(content, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, file);
  } catch (error) {
    await rm(tmp, { force: true });
    throw error;
  }
  const dir = await open(join(file, '..'), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
