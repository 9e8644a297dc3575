import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import type { Operation } from '../../../src/deploy/lock.js';
import { candidates, ImageRetention, protectedDigests, RECENT_PULL_MS } from '../../../src/deploy/retention.js';
import type { ContainerImageUse, ImageInfo, ImageRemoval } from '../../../src/engine/engine-port.js';
import type { Deployment } from '../../../src/state/state.js';

const REPO = 'registry.example/dreichor/runtime';
const digest = (n: number): string => `sha256:${String(n).padStart(64, '0')}`;
const deployed = (tag: string, n: number): Deployment => ({ image: `${REPO}:${tag}`, digest: digest(n), at: '', request_id: '' });

describe('image retention: which images go', () => {
  it('keeps the N most recently deployed digests; a redeployed image counts from its last deploy', () => {
    const history = [deployed('v1', 1), deployed('v2', 2), deployed('v3', 3), deployed('v1', 1), deployed('v4', 4)];
    // Most recent first: 4, 1, 3, 2.
    assert.deepEqual(
      candidates(history, 2, REPO).map((c) => [c.digest, c.rank]),
      [
        [digest(3), 3],
        [digest(2), 4],
      ],
    );
    assert.deepEqual(candidates(history, 4, REPO), []);
    assert.deepEqual(candidates(history, 0, REPO), [], '0 keeps all');
  });

  it('never a candidate: an image of another repository (an earlier IMAGE_REPOSITORY)', () => {
    const history = [{ ...deployed('v1', 1), image: 'other.example/runtime:v1' }, deployed('v2', 2), deployed('v3', 3)];
    assert.deepEqual(candidates(history, 1, REPO), [{ digest: digest(2), image: `${REPO}:v2`, rank: 2 }]);
  });

  it("protects what any runtime container of either environment runs and names as its way back, and this agent's previous image", () => {
    const containers: ContainerImageUse[] = [
      {
        id: 'prod',
        imageId: 'x',
        labels: {
          'io.dreichor.owner': 'dreichor-deploy-agent',
          'io.dreichor.environment': 'prod',
          'io.dreichor.image-digest': digest(7),
          'io.dreichor.previous-image-digest': digest(6),
        },
      },
      // Not the agent's: its labels prove nothing (the engine's own check covers the image it uses).
      { id: 'operator', imageId: 'y', labels: { 'io.dreichor.image-digest': digest(5) } },
    ];
    assert.deepEqual([...protectedDigests(containers, digest(9))].sort(), [digest(6), digest(7), digest(9)]);
  });

  it('a runtime without a previous image, and no previous image of its own, add nothing else', () => {
    const first: ContainerImageUse = {
      id: 'dev',
      imageId: 'x',
      labels: { 'io.dreichor.owner': 'dreichor-deploy-agent', 'io.dreichor.image-digest': digest(7) },
    };
    assert.deepEqual([...protectedDigests([first], null)], [digest(7)]);
  });
});

/** A scripted engine with images and containers, for the pruning loop. */
class Images {
  readonly removed: string[] = [];
  readonly present = new Set<string>();
  containers: ContainerImageUse[] = [];
  refuse = new Set<string>();
  fail = new Set<string>();
  onRemove: () => void = () => undefined;
  /** What the engine's event log says was pulled lately (either environment). */
  pulled: string[] = [];
  /** The engine cannot read its event log. */
  eventsFail = false;
  /** What the engine answers to a removal that goes through ('deleted' unless a test says otherwise). */
  removal: ImageRemoval = 'deleted';
  onPulledSince: () => void = () => undefined;
  /** Every image the run asked about, in order. */
  readonly inspected: string[] = [];

  /** The start of the window the run asked the event log about. */
  since: Date | null = null;

  async pulledSince(since: Date): Promise<string[]> {
    this.since = since;
    this.onPulledSince();
    if (this.eventsFail) throw new Error('the engine did not answer in time');
    return this.pulled;
  }

  async listContainers(): Promise<ContainerImageUse[]> {
    return this.containers;
  }
  async inspectImage(reference: string): Promise<ImageInfo | null> {
    this.inspected.push(reference);
    return this.present.has(reference) ? { id: `id-of-${reference}`, content: reference, hasHealthcheck: false } : null;
  }
  async removeImage(reference: string): Promise<ImageRemoval> {
    this.onRemove();
    if (this.fail.has(reference)) throw new Error('the engine did not answer in time');
    if (this.refuse.has(reference)) return 'in-use';
    this.removed.push(reference);
    this.present.delete(reference);
    return this.removal;
  }
}

function setup(keep: number, count: number) {
  const engine = new Images();
  const deployments = Array.from({ length: count }, (_, i) => deployed(`v${i + 1}`, i + 1));
  for (const d of deployments) engine.present.add(`${REPO}@${d.digest}`);
  const audited: { image: string; digest: string; reason: string }[] = [];
  let busy: Operation | null = null;
  const retention = new ImageRetention({
    config: { imageRetention: keep, imageRepository: REPO },
    engine,
    store: {
      deployments,
      previousDeployment: (image: string) => [...deployments].reverse().find((d) => d.image !== image) ?? null,
    },
    audit: {
      pruned: async (r) => {
        audited.push({ image: r.image, digest: r.digest, reason: r.reason });
      },
    },
    logger: pino({ level: 'silent' }),
    busy: () => busy,
  });
  const settle = async () => {
    await retention.idle();
  };
  return { engine, retention, audited, settle, setBusy: (b: Operation | null) => (busy = b) };
}

const ref = (n: number) => `${REPO}@${digest(n)}`;

describe('image retention: the pruning run', () => {
  it('removes what is beyond N, one audit line each; keeps the previous image and what a container uses', async () => {
    const { engine, retention, audited, settle } = setup(2, 6);
    engine.containers = [{ id: 'c', imageId: `id-of-${ref(2)}`, labels: {} }];
    retention.schedule();
    await settle();
    // Kept: 6, 5 (newest, 5 is also the previous image), 2 (a container uses it).
    assert.deepEqual(engine.removed.sort(), [ref(1), ref(3), ref(4)].sort());
    assert.deepEqual(audited.map((a) => a.digest).sort(), [digest(1), digest(3), digest(4)].sort());
  });

  it('a refused or failed removal is skipped, and the others go on', async () => {
    const { engine, retention, audited, settle } = setup(1, 5);
    engine.refuse.add(ref(3));
    engine.fail.add(ref(2));
    retention.schedule();
    await settle();
    // 5 newest, 4 previous; 3 refused, 2 failed: only 1 went.
    assert.deepEqual(engine.removed, [ref(1)]);
    assert.equal(audited.length, 1);
  });

  it('yields as soon as a deploy or stop is in progress: it never holds the lock, the next deploy runs it again', async () => {
    const { engine, retention, settle, setBusy } = setup(1, 6);
    // A stop arrives during the first removal.
    engine.onRemove = () => setBusy('stop');
    retention.schedule();
    await settle();
    assert.equal(engine.removed.length, 1, 'one removal, then it yielded');
  });

  it("never removes an image any deploy pulled in the last minutes (prod's, between its pull and its create)", async () => {
    const { engine, retention, settle } = setup(1, 6);
    // Prod pulled dev's old image 2 by its digest, and the same image as 3 under another reference.
    engine.pulled = [ref(2), 'registry.example/other/name@sha256:feed'];
    engine.present.add('registry.example/other/name@sha256:feed');
    const inspect = engine.inspectImage.bind(engine);
    engine.inspectImage = async (reference: string) =>
      reference === 'registry.example/other/name@sha256:feed' ? inspect(ref(3)) : inspect(reference);
    retention.schedule();
    await settle();
    assert.deepEqual(engine.removed.sort(), [ref(1), ref(4)].sort(), 'kept: 2 and 3 (pulled lately), 5 previous, 6 newest');
  });

  it('when the engine cannot say what was pulled lately, nothing is removed', async () => {
    const { engine, retention, settle } = setup(1, 6);
    engine.eventsFail = true;
    retention.schedule();
    await settle();
    assert.deepEqual(engine.removed, []);
  });

  it('IMAGE_RETENTION=0 keeps everything', async () => {
    const { engine, retention, settle } = setup(0, 6);
    retention.schedule();
    await settle();
    assert.deepEqual(engine.removed, []);
  });
});

describe('image retention: the scheduling loop and each yield', () => {
  /** Setup(1, 3): only image 1 is beyond N (3 newest, 2 previous); its removal fails, so every run tries it. */
  const failing = () => {
    const t = setup(1, 3);
    let attempts = 0;
    t.engine.fail.add(ref(1));
    t.engine.onRemove = () => {
      attempts += 1;
    };
    return { ...t, attempts: () => attempts };
  };

  it('a deploy during a run asks for exactly one more run after it, never a second run alongside', async () => {
    const once = failing();
    once.retention.schedule();
    await once.settle();
    assert.equal(once.attempts(), 1);
    const { retention, settle, attempts } = failing();
    retention.schedule();
    retention.schedule();
    retention.schedule();
    await settle();
    assert.equal(attempts(), 2, 'the run under way, then one more');
  });

  it('no second run when a deploy or stop is in progress by then', async () => {
    const { engine, retention, settle, setBusy } = failing();
    engine.onRemove = () => setBusy('deploy');
    retention.schedule();
    retention.schedule();
    await settle();
    assert.deepEqual(engine.inspected, [ref(2), ref(1)], 'the first run only (2 protected, 1 tried)');
  });

  it('yields before it even looks at a candidate when a stop is in progress', async () => {
    const { engine, retention, settle, setBusy } = setup(1, 6);
    setBusy('stop');
    retention.schedule();
    await settle();
    assert.deepEqual(engine.inspected, []);
    assert.deepEqual(engine.removed, []);
  });

  it('at shutdown no removal starts, stop() waits for the run under way, and no run starts after it', async () => {
    const { engine, retention, settle } = setup(1, 6);
    retention.schedule();
    await retention.stop();
    retention.schedule();
    await settle();
    assert.deepEqual(engine.removed, []);
    assert.deepEqual(engine.inspected, [ref(5)], 'the run under way ended at its first look');
  });

  it('yields right before a removal when a deploy began while it looked at the event log', async () => {
    const { engine, retention, settle, setBusy } = setup(1, 6);
    engine.onPulledSince = () => setBusy('deploy');
    retention.schedule();
    await settle();
    assert.deepEqual(engine.removed, []);
    assert.deepEqual(
      engine.inspected,
      [ref(5), ref(4)],
      'the run ended at its first removable candidate (5 is the previous image)',
    );
  });

  it('an image already gone (inspect answers none) is skipped and the older ones still go', async () => {
    const { engine, retention, settle } = setup(1, 6);
    engine.present.delete(ref(4));
    retention.schedule();
    await settle();
    assert.deepEqual(engine.removed, [ref(3), ref(2), ref(1)]);
  });

  it("a removal the engine answers 'gone' writes no audit line", async () => {
    const { engine, retention, audited, settle } = setup(1, 3);
    engine.removal = 'gone';
    retention.schedule();
    await settle();
    assert.deepEqual(engine.removed, [ref(1)]);
    assert.deepEqual(audited, []);
  });

  it("the audit line's reason says which image, its rank, N, and whether the image left the host", async () => {
    for (const [removal, end] of [
      ['deleted', 'removed from the host'],
      ['untagged', 'its reference removed, the image has other names'],
    ] as const) {
      const { engine, retention, audited, settle } = setup(1, 3);
      engine.removal = removal;
      retention.schedule();
      await settle();
      assert.deepEqual(audited, [
        {
          image: `${REPO}:v1`,
          digest: digest(1),
          reason: `image retention: ${REPO}:v1 (${digest(1)}) is number 3 of the images deployed here, beyond the 1 kept; ${end}`,
        },
      ]);
    }
  });

  it('asks the event log about the last RECENT_PULL_MS; a pulled reference that is gone by now protects nothing', async () => {
    const { engine, retention, settle } = setup(1, 3);
    engine.pulled = ['registry.example/other/name@sha256:dead'];
    retention.schedule();
    await settle();
    assert.deepEqual(engine.removed, [ref(1)]);
    const since = engine.since?.getTime() ?? 0;
    assert.ok(Math.abs(Date.now() - RECENT_PULL_MS - since) < 60_000, `asked since ${engine.since?.toISOString()}`);
  });

  it('a pull of the digest under another name protects it, even when that name no longer resolves', async () => {
    const { engine, retention, settle } = setup(1, 3);
    engine.pulled = [`registry.example/other/name@${digest(1)}`];
    retention.schedule();
    await settle();
    assert.deepEqual(engine.removed, []);
  });
});
