import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { ImageRetention, RECENT_PULL_MS } from '../../../src/deploy/retention.js';
import { LABEL, OWNER } from '../../../src/deploy/runtime-spec.js';
import type { EnginePort } from '../../../src/engine/engine-port.js';
import { parseImageReference } from '../../../src/policy/image.js';
import { AuditLog } from '../../../src/state/audit.js';
import { StateStore } from '../../../src/state/state.js';
import { FakeEngine } from '../../support/fake-engine.js';
import { UNIT_REPOSITORY, unitConfig, unitDeployer } from '../../support/unit-config.js';

/**
 * Image retention across the two environments on one engine (issue 22): dev's clean-up runs at every
 * step of prod's deploy (between its pull and its create among them) and of prod's stop, over one
 * engine that models its image store. Dev's agent is idle (its `busy()` sees only its own process),
 * and prod deploys an image dev deployed long ago, beyond dev's IMAGE_RETENTION. At each removal:
 *
 *   - never an image any deploy pulled in the last RECENT_PULL_MS (the engine's event log);
 *   - never an image a container of either environment names (its image, its previous image) or uses;
 *
 * and prod's deploy and stop succeed, prod running the image it pulled.
 */
const root = mkdtempSync(join(tmpdir(), 'dreichor-retention-interleave-'));
after(() => rmSync(root, { recursive: true, force: true }));

const REPO = UNIT_REPOSITORY;
const digest = (n: number): string => `sha256:${String(n).repeat(64).slice(0, 64)}`;
const imageId = (n: number): string => `sha256:${'e'.repeat(63)}${n}`;
const reference = (n: number) => `${REPO}@${digest(n)}`;

/** A state folder whose record lists these deploys, oldest first, each long ago. */
function seedRecord(stateDir: string, deploys: readonly number[]): void {
  mkdirSync(stateDir, { recursive: true });
  const deployments = deploys.map((d, i) => ({
    image: `${REPO}:v${d}`,
    digest: digest(d),
    at: new Date(Date.now() - (deploys.length - i) * 3_600_000).toISOString(),
    request_id: `seed-${i}`,
  }));
  const last = deployments.at(-1);
  const state = {
    version: 1,
    tags: {},
    last_deploy:
      last === undefined
        ? null
        : {
            image: last.image,
            outcome: 'deployed',
            reason: null,
            at: last.at,
            request_id: last.request_id,
            image_digest: last.digest,
          },
    last_interrupted: null,
    deployments,
    leftovers: [],
  };
  writeFileSync(join(stateDir, 'state.json'), `${JSON.stringify(state)}\n`, { mode: 0o600 });
}

/** What an environment's runtime container looks like on the engine, created by its agent. */
function runtimeOf(engine: FakeEngine, environment: 'dev' | 'prod', run: number, previous: number | null): void {
  const name = `dreichor-runtime-${environment}`;
  const c = engine.seed(name, true, {
    labels: {
      [LABEL.owner]: OWNER,
      [LABEL.environment]: environment,
      [LABEL.containerName]: name,
      [LABEL.image]: `${REPO}:v${run}`,
      [LABEL.digest]: digest(run),
      ...(previous === null ? {} : { [LABEL.previousImage]: `${REPO}:v${previous}`, [LABEL.previousDigest]: digest(previous) }),
    },
  });
  c.image = reference(run);
  c.imageId = imageId(run);
}

/** Why removing `reference` now breaks the rule, or null. */
function violation(engine: FakeEngine, reference: string): string | null {
  const recent = engine.pulls.some((p) => p.reference === reference && p.at >= Date.now() - RECENT_PULL_MS);
  if (recent) return `${reference} was pulled a moment ago`;
  const d = reference.slice(reference.lastIndexOf('@') + 1);
  for (const c of engine.containers.values()) {
    const named = [c.labels[LABEL.digest], c.labels[LABEL.previousDigest]].includes(d);
    if (named || c.imageId === engine.imageIdOf(reference)) return `${reference} is named or used by ${c.name}`;
  }
  return null;
}

interface Run {
  /** Prod's engine calls, deploy then stop. */
  readonly steps: readonly string[];
  readonly findings: readonly string[];
  readonly removed: readonly string[];
  readonly present: ReadonlySet<string>;
}

let runs = 0;

/**
 * Prod (running 1) deploys 3, which dev deployed long ago and keeps no more, then stops; dev's clean-up
 * runs once, before prod's engine call number `at` (every call: null), and once more after the stop.
 */
async function interleave(at: number | null): Promise<Run> {
  runs += 1;
  const engine = new FakeEngine();
  const store = new Set<string>();
  engine.imageStore = store;
  for (let n = 1; n <= 6; n += 1) {
    engine.imageIds.set(digest(n), imageId(n));
    store.add(reference(n));
  }
  // Dev deployed 1..6 long ago (6 runs, 5 its way back); it keeps 2: 4, 3, 2, 1 are its candidates.
  const devConfig = unitConfig(join(root, `dev${runs}`), { IMAGE_RETENTION: '2' });
  seedRecord(devConfig.stateDir, [1, 2, 3, 4, 5, 6]);
  runtimeOf(engine, 'dev', 6, 5);
  const prodConfig = unitConfig(join(root, `prod${runs}`), { ENVIRONMENT: 'prod', STOP_TIMEOUT_SECONDS: '1' });
  seedRecord(prodConfig.stateDir, [1]);
  runtimeOf(engine, 'prod', 1, null);
  engine.tagDigest = digest(3);

  const findings: string[] = [];
  let step = 'start';
  const devEngine: Pick<EnginePort, 'listContainers' | 'inspectImage' | 'removeImage' | 'pulledSince'> = {
    listContainers: () => engine.listContainers(),
    inspectImage: (r, s) => engine.inspectImage(r, s),
    pulledSince: (t, s) => engine.pulledSince(t, s),
    removeImage: (image) => {
      const why = violation(engine, image);
      if (why !== null) findings.push(`${step}: dev removed ${why}`);
      return engine.removeImage(image);
    },
  };
  const devRetention = new ImageRetention({
    config: devConfig,
    engine: devEngine,
    store: await StateStore.open(devConfig.stateDir),
    audit: await AuditLog.open(join(devConfig.stateDir, 'audit.jsonl')),
    logger: pino({ level: 'silent' }),
    // Dev's agent is idle: its lock knows nothing of prod's deploy.
    busy: () => null,
  });
  const clean = async () => {
    devRetention.schedule();
    await devRetention.idle();
  };

  // Prod's engine: before its call number `at`, dev's clean-up runs to its end.
  const steps: string[] = [];
  const prodEngine = new Proxy(engine, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      return async (...args: unknown[]) => {
        step = `before prod's engine.${String(property)} (call ${steps.length})`;
        steps.push(String(property));
        if (at === null || at === steps.length - 1) await clean();
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  }) as EnginePort;
  const { deployer } = await unitDeployer(prodConfig, prodEngine);
  const context = (endpoint: string) => ({
    requestId: randomUUID(),
    clientId: 'client.access',
    endpoint,
    callerGone: new AbortController().signal,
    receivedAt: Date.now(),
  });
  try {
    const image = parseImageReference(`${REPO}:v3`, { repository: REPO, environment: 'prod' });
    const deployed = await deployer.deploy(image, context('/v1/deploy')).catch((error: unknown) => error);
    if (!(typeof deployed === 'object' && deployed !== null && 'image_digest' in deployed)) {
      findings.push(`prod's deploy failed: ${String(deployed)}`);
    }
    const prod = engine.runtimeContainers('dreichor-runtime-prod').find((c) => c.running);
    if (prod?.image !== reference(3)) findings.push(`prod runs ${prod?.image}, not the image it pulled`);
    const stopped = await deployer.stop(context('/v1/stop'));
    if (stopped.status !== 'stopped') findings.push(`prod's stop: ${stopped.status}`);
    step = "after prod's stop";
    await clean();
  } finally {
    await deployer.shutdown();
    await devRetention.stop();
  }
  return { steps, findings, removed: engine.removedImages, present: store };
}

describe('image retention interleaved with the other environment', () => {
  it("dev's clean-up before any step of prod's deploy and stop never removes what prod pulled or a container names", async () => {
    const every = await interleave(null);
    assert.deepEqual(every.findings, []);
    const pull = every.steps.indexOf('pull');
    const create = every.steps.indexOf('create');
    assert.ok(pull >= 0 && pull < create, `prod pulls, then creates: ${every.steps.join(' ')}`);
    // Each interleaving on an engine and folders of its own; they wait mostly on the start check: at once.
    const interleavings = await Promise.all(every.steps.map((_, at) => interleave(at)));
    const findings = interleavings.flatMap((run) => run.findings);
    for (const [at, run] of interleavings.entries()) {
      if (at > pull && at <= create) {
        // The case: prod pulled 3 (dev's, long ago) and has not created from it yet.
        assert.ok(run.present.has(reference(3)), `dev removed prod's freshly pulled image before prod's ${every.steps[at]}`);
      }
    }
    process.stdout.write(`# retention interleaved: dev's clean-up before each of prod's ${every.steps.length} engine calls\n`);
    assert.deepEqual(findings, []);
    // Dev's clean-up did run: what nobody pulled lately nor names went; what prod pulled (3) stays.
    const late = await interleave(create);
    assert.ok(late.removed.includes(reference(2)) && late.removed.includes(reference(4)), late.removed.join(', '));
    assert.ok(late.present.has(reference(3)), "prod's image, pulled minutes ago, stays after prod's stop");
  });
});
