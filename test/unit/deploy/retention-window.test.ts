/**
 * Image retention's "pulled lately" rule, precisely: the window asked of the engine's event log, and
 * which pulled references keep an image (its digest under any name; another reference only when the
 * engine says it is the same image). Written against the mutants StrykerJS left alive in
 * src/deploy/retention.ts (docs/TESTING.md).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { ImageRetention, RECENT_PULL_MS } from '../../../src/deploy/retention.js';
import type { ContainerImageUse, ImageInfo, ImageRemoval } from '../../../src/engine/engine-port.js';

const REPO = 'registry.example/dreichor/runtime';
const digest = (n: number): string => `sha256:${String(n).padStart(64, '0')}`;
const OLD = `${REPO}@${digest(1)}`;

class Engine {
  readonly removed: string[] = [];
  readonly since: Date[] = [];
  pulled: string[] = [];
  /** What inspecting a reference says: the image id, or absent. */
  readonly ids = new Map<string, string>([[OLD, 'id-old']]);

  async pulledSince(since: Date): Promise<string[]> {
    this.since.push(since);
    return this.pulled;
  }
  async listContainers(): Promise<ContainerImageUse[]> {
    return [];
  }
  async inspectImage(reference: string): Promise<ImageInfo | null> {
    const id = this.ids.get(reference);
    return id === undefined ? null : { id, content: reference, hasHealthcheck: false };
  }
  async removeImage(reference: string): Promise<ImageRemoval> {
    this.removed.push(reference);
    return 'deleted';
  }
}

async function prune(engine: Engine, recentPullMs?: number): Promise<void> {
  const retention = new ImageRetention({
    config: { imageRetention: 1, imageRepository: REPO },
    engine,
    store: {
      deployments: [
        { image: `${REPO}:v1`, digest: digest(1), at: '', request_id: '' },
        { image: `${REPO}:v2`, digest: digest(2), at: '', request_id: '' },
      ],
      previousDeployment: () => null,
    },
    audit: { pruned: async () => undefined },
    logger: pino({ level: 'silent' }),
    busy: () => null,
    ...(recentPullMs === undefined ? {} : { recentPullMs }),
  });
  retention.schedule();
  await retention.idle();
}

describe('image retention: what was pulled lately', () => {
  it('asks the event log for the last 15 minutes (or the window a test sets)', async () => {
    assert.equal(RECENT_PULL_MS, 15 * 60_000);
    const engine = new Engine();
    const before = Date.now();
    await prune(engine);
    assert.deepEqual(engine.removed, [OLD]);
    const since = engine.since[0]?.getTime() ?? 0;
    assert.ok(since >= before - RECENT_PULL_MS - 50 && since <= Date.now() - RECENT_PULL_MS, `asked since ${since}`);
    const short = new Engine();
    const at = Date.now();
    await prune(short, 1_000);
    const shortSince = short.since[0]?.getTime() ?? 0;
    assert.ok(shortSince >= at - 1_050 && shortSince <= Date.now() - 1_000, `asked since ${shortSince}`);
  });

  it('keeps an image whose digest was pulled under any name, even one the engine no longer knows', async () => {
    const engine = new Engine();
    engine.pulled = [`mirror.example/elsewhere@${digest(1)}`];
    await prune(engine);
    assert.deepEqual(engine.removed, []);
  });

  it('a pulled reference the engine cannot inspect, or of another image, keeps nothing', async () => {
    const engine = new Engine();
    engine.pulled = [`${REPO}:v9`, `${digest(1)}@x`, 'gone.example/runtime:v1'];
    engine.ids.set(`${REPO}:v9`, 'id-other');
    await prune(engine);
    assert.deepEqual(engine.removed, [OLD]);
    const same = new Engine();
    same.pulled = ['gone.example/runtime:v1', `${REPO}:v1`];
    same.ids.set(`${REPO}:v1`, 'id-old');
    await prune(same);
    assert.deepEqual(same.removed, [], 'the same image under its tag keeps it');
  });
});
