import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { Config } from '../../../src/config/config.js';
import type { DeployContext } from '../../../src/deploy/deployer.js';
import { LABEL } from '../../../src/deploy/runtime-spec.js';
import { stopBoundMs } from '../../../src/deploy/stop-sequence.js';
import type { Timing } from '../../../src/deploy/time-bound.js';
import { AgentError } from '../../../src/errors.js';
import { parseImageReference } from '../../../src/policy/image.js';
import { verifyAuditFile } from '../../../src/state/audit.js';
import { type FakeContainer, FakeEngine } from '../../support/fake-engine.js';
import {
  appliesTo,
  type Disk,
  FAULTS,
  type Fault,
  type Incarnation,
  incarnate,
  isRegistryStep,
  type Plan,
  seedHistory,
} from '../../support/fault-world.js';
import { readAudit } from '../../support/harness.js';
import { FULL, sampleOf, samplingNote } from '../../support/sampling.js';
import { UNIT_REPOSITORY, unitConfig } from '../../support/unit-config.js';
import { type VerifiedWorld, verifiedSigner, verifiedWorld } from '../../support/verified-world.js';

/**
 * The fault matrix. Every step of the deploy and stop sequences (every engine call, every journal,
 * state and audit write), taken from a clean run of the sequence itself so that a new step is covered
 * without editing this file, and for each step every fault: the call fails, it hangs past its
 * deadline, the agent is killed there (then restarted), the disk is full from there on. After each
 * case the invariants are checked on the scripted engine's model and on the files on disk:
 *
 *   - never two runtimes running at once;
 *   - the answer comes within DEPLOY_TIMEOUT_SECONDS;
 *   - a fault before the point of no return leaves the old container running, untouched;
 *   - after the point of no return, nothing but the engine fails the deploy (a disk fault is a warning);
 *   - nothing of a failed deploy runs;
 *   - the status tells the truth;
 *   - the audit log verifies, and accounts for the request (unless the disk refused the line);
 *   - a stop afterwards always stops, on a disk that is still full; and nothing is left after it.
 *
 * Times are shrunk (a deploy timeout of 1.2 s) so that the whole matrix runs in well under a minute.
 * On a machine so busy that a scenario's clean run itself misses them, that scenario's times are all
 * doubled (up to 8 times), and its output line says so: the invariants are judged on the same scale.
 */
const root = mkdtempSync(join(tmpdir(), 'dreichor-fault-matrix-'));
after(() => rmSync(root, { recursive: true, force: true }));

const REPO = UNIT_REPOSITORY;
const NAME = 'dreichor-runtime-dev';
/** Every time of a case, at a scale (1: as shrunk for the matrix). */
interface Times {
  readonly scale: number;
  readonly deployTimeoutMs: number;
  readonly stopTimeoutSeconds: number;
  readonly startCheckSeconds: number;
  readonly timing: Timing;
  /** Longer than the whole deploy, as the real wrapper's 10 s is longer than what is left of a deploy after a slow stop: a call that has no deadline of its own shows up as a late answer. */
  readonly callTimeoutMs: number;
  /** Timers on a shared machine fire late by a few milliseconds; an answer later than this is a finding. */
  readonly answerSlackMs: number;
  /** The brake's bound (stop-sequence.ts, stopBoundMs). */
  readonly stopBoundMs: number;
}
function timesAt(scale: number): Times {
  const x = (ms: number) => ms * scale;
  const timing: Timing = {
    answerReserveMs: x(150),
    marginSeconds: x(0.3),
    killSlackMs: x(100),
    pollMs: x(100),
    stopPatienceMs: x(100),
    stopSlackMs: x(100),
    killMs: x(100),
  };
  const stopTimeoutSeconds = x(0.1);
  return {
    scale,
    deployTimeoutMs: x(1_200),
    stopTimeoutSeconds,
    startCheckSeconds: x(0.05),
    timing,
    callTimeoutMs: x(2_000),
    answerSlackMs: x(250),
    stopBoundMs: stopBoundMs(stopTimeoutSeconds, timing),
  };
}
const MAX_SCALE = 8;
const CONCURRENT_CASES = 4;
const image = (tag: string, repository = REPO) => parseImageReference(`${repository}:${tag}`, { repository, environment: 'dev' });
const PREVIOUS = image('v1').reference;

let n = 0;
function freshConfig(times: Times, extra: Readonly<Record<string, string>> = {}): Config {
  n += 1;
  const dir = join(root, `c${n}`);
  const loaded = unitConfig(dir, extra);
  mkdirSync(loaded.stateDir, { recursive: true });
  return {
    ...loaded,
    stopTimeoutSeconds: times.stopTimeoutSeconds,
    startCheckSeconds: times.startCheckSeconds,
    deployTimeoutSeconds: times.deployTimeoutMs / 1000,
  };
}

interface Scenario {
  readonly name: string;
  readonly kind: 'deploy' | 'stop';
  /** Puts the old runtime (and whatever else the scenario needs) on the engine. */
  seed(engine: FakeEngine): FakeContainer;
  /**
   * IMAGE_VERIFICATION=cosign-key against a registry of the case's own: the tag is an image index
   * (or a single manifest), its manifest for the engine's platform signed by the key in cosign's
   * legacy form. Every read of that registry is a step too, where it fails (500), hangs, or drips.
   */
  readonly verified?: 'index' | 'single';
}

/** The key the verified scenarios' images are signed with, as COSIGN_PUBLIC_KEY_FILE. */
const signer = verifiedSigner(join(root, 'cosign.pub'));

/**
 * The brake (stop scenarios): whatever fault hits any step but the engine's stop or kill of the
 * running runtime itself, the runtime at the fixed name is stopped when the answer comes, the answer
 * is 200, and it comes within the stop's bound (stop-sequence.ts, stopBoundMs).
 */
const brakeExempt = (step: string): boolean => step === 'engine.kill';

const SCENARIOS: readonly Scenario[] = [
  { name: "a deploy over the agent's own runtime", kind: 'deploy', seed: (e) => e.seed(NAME) },
  {
    name: 'a verified deploy (IMAGE_VERIFICATION=cosign-key) of an image index: every registry read is a step',
    kind: 'deploy',
    seed: (e) => e.seed(NAME),
    verified: 'index',
  },
  {
    name: 'a verified deploy (IMAGE_VERIFICATION=cosign-key) of a single manifest',
    kind: 'deploy',
    seed: (e) => e.seed(NAME),
    verified: 'single',
  },
  {
    name: 'a deploy whose new container exits at once (the start check fails)',
    kind: 'deploy',
    seed: (e) => {
      e.exitOnStart = 3;
      return e.seed(NAME);
    },
  },
  {
    name: 'a deploy over a hand-made runtime (no labels, restart policy "always")',
    kind: 'deploy',
    seed: (e) => e.seed(NAME, true, { labels: {}, restartPolicy: 'always' }),
  },
  { name: 'a stop', kind: 'stop', seed: (e) => e.seed(NAME) },
  {
    name: 'a stop while a crashed deploy left a staging container',
    kind: 'stop',
    seed: (e) => {
      const leftover = e.seed(`${NAME}-staging-0badcafe`, false);
      leftover.labels[LABEL.containerName] = NAME;
      return e.seed(NAME);
    },
  },
  {
    name: 'a stop while a leftover of this runtime runs too (started by hand)',
    kind: 'stop',
    seed: (e) => {
      e.seed(`${NAME}-retired-0123456789ab`, true, { labels: {}, restartPolicy: 'always' });
      return e.seed(NAME);
    },
  },
  {
    name: 'a stop of a hand-made runtime (restart policy "always") whose engine stop fails: it is killed',
    kind: 'stop',
    seed: (e) => {
      e.fail('stop', () => new AgentError(502, 'the engine refused the stop (scripted for this scenario)'));
      return e.seed(NAME, true, { labels: {}, restartPolicy: 'always' });
    },
  },
];

type Outcome =
  | { readonly kind: 'resolved' }
  | { readonly kind: 'rejected'; readonly error: unknown }
  | { readonly kind: 'killed' };

interface Case {
  readonly steps: readonly string[];
  readonly problems: string[];
  /** How the operation ended: resolved, killed, or the code of its error. */
  readonly ending: string;
  /** From the request to the answer. */
  readonly elapsedMs: number;
}

const endingOf = (o: Outcome): string =>
  o.kind === 'rejected' ? `rejected (${o.error instanceof AgentError ? o.error.code : String(o.error)})` : o.kind;

const context = (requestId: string, endpoint: string): DeployContext => ({
  requestId,
  clientId: 'client.access',
  endpoint,
  callerGone: new AbortController().signal,
  receivedAt: Date.now(),
});

/** Settles with the operation, or as soon as the incarnation is killed (a killed agent never answers). */
async function outcomeOf(operation: Promise<unknown>, incarnation: Incarnation): Promise<Outcome> {
  let timer: NodeJS.Timeout | undefined;
  const killed = new Promise<Outcome>((resolve) => {
    const until = Date.now() + 10_000;
    timer = setInterval(() => {
      if (incarnation.steps.killed || Date.now() > until) resolve({ kind: 'killed' });
    }, 5);
  });
  try {
    return await Promise.race([
      operation.then(
        (): Outcome => ({ kind: 'resolved' }),
        (error: unknown): Outcome => ({ kind: 'rejected', error }),
      ),
      killed,
    ]);
  } finally {
    clearInterval(timer);
  }
}

async function runCase(
  scenario: Scenario,
  plan: Plan | null,
  pnr: number,
  cleanEnding: string | null,
  times: Times,
): Promise<Case> {
  const engine = new FakeEngine();
  const world =
    scenario.verified === undefined
      ? null
      : await verifiedWorld(scenario.verified, engine, signer, (extra) => freshConfig(times, extra));
  try {
    return await runCaseIn(world, engine, scenario, plan, pnr, cleanEnding, times);
  } finally {
    await world?.registry.close();
  }
}

async function runCaseIn(
  world: VerifiedWorld | null,
  engine: FakeEngine,
  scenario: Scenario,
  plan: Plan | null,
  pnr: number,
  cleanEnding: string | null,
  times: Times,
): Promise<Case> {
  const config = world?.config ?? freshConfig(times);
  const target = image('v2', world?.registry.repository);
  await seedHistory(config.stateDir, PREVIOUS, `sha256:${'1'.repeat(64)}`);
  engine.callTimeoutMs = times.callTimeoutMs;
  const old = scenario.seed(engine);
  // What the scenario starts with may break invariant 1 itself (a leftover started by hand): judged from there.
  const seededRunning = engine.maxRunning;
  const disk: Disk = { full: false };
  const options = {
    config,
    timing: times.timing,
    callTimeoutMs: times.callTimeoutMs,
    ...(world === null ? {} : { verifier: world.verifier, registry: world.registry }),
  };
  let agent = await incarnate(engine, disk, plan, options);
  const problems: string[] = [];
  const expect = (ok: boolean, what: string) => {
    if (!ok) problems.push(what);
  };

  const requestId = randomUUID();
  const endpoint = scenario.kind === 'deploy' ? '/v1/deploy' : '/v1/stop';
  const started = performance.now();
  const operation =
    scenario.kind === 'deploy'
      ? agent.deployer.deploy(target, context(requestId, endpoint))
      : agent.deployer.stop(context(requestId, endpoint));
  const outcome = await outcomeOf(operation, agent);
  const elapsed = performance.now() - started;
  // The engine as the answer finds it: the brake is judged here, before anything heals.
  const runningAtAnswer = engine.containers.get(old.id)?.running === true;
  const steps = [...agent.steps.names];
  agent.steps.plan = null;
  const planned = plan === null ? '' : (plan.step ?? steps[plan.at] ?? '');
  const diskStep = (step: string) => !step.startsWith('engine.') && !isRegistryStep(step);
  const diskFault = disk.full || (plan?.fault === 'fail' && diskStep(planned));

  // The HTTP layer's outcome line, as respond.ts writes it.
  if (outcome.kind !== 'killed') {
    await agent.audit
      .outcome({
        requestId,
        clientId: 'client.access',
        endpoint,
        image: scenario.kind === 'deploy' ? target.reference : null,
        outcome: outcome.kind === 'resolved' ? (scenario.kind === 'deploy' ? 'deployed' : 'stopped') : 'failed',
        status: outcome.kind === 'resolved' ? 200 : 502,
        reason: null,
        durationMs: Math.round(elapsed),
      })
      .catch(() => undefined);
  }
  if (scenario.kind === 'stop' && outcome.kind !== 'killed' && !brakeExempt(steps[plan?.at ?? -1] ?? '')) {
    expect(outcome.kind === 'resolved', `the brake failed: ${describeOutcome(outcome)}`);
    expect(!runningAtAnswer, 'the brake answered while the runtime still ran');
  }
  engine.heal();
  if (outcome.kind === 'killed') {
    await agent.discard();
    agent = await incarnate(engine, disk, null, options);
  }
  await agent.deployer.reconcileNow().catch(() => undefined);

  const runtime = () => engine.runtimeContainers(NAME);
  const fixed = () => runtime().find((c) => c.name === NAME);
  const running = () => runtime().filter((c) => c.running);
  expect(engine.maxRunning <= Math.max(1, seededRunning), `two runtimes ran at once (${engine.maxRunning})`);
  // A deploy sets "no" before its stop, or does not stop. The brake stops first when the update
  // fails (the engine does not restart what it was asked to stop until it restarts itself), and then
  // sets "no" or removes the container: judged on what is left.
  const restartable =
    scenario.kind === 'deploy'
      ? engine.stoppedRestartable
      : engine.stoppedRestartable.filter((name) => runtime().some((c) => c.name === name && c.restartPolicy !== 'no'));
  expect(restartable.length === 0, `stopped with a restart policy that could start it again: ${restartable.join(', ')}`);
  if (outcome.kind !== 'killed') {
    const bound = scenario.kind === 'deploy' ? times.deployTimeoutMs : times.stopBoundMs;
    expect(elapsed <= bound + times.answerSlackMs, `answered after ${Math.round(elapsed)} ms (bound ${bound} ms)`);
  }
  if (outcome.kind === 'rejected') {
    // Every failure is explained to a person: an error that is not an AgentError is answered as a bare 500.
    expect(outcome.error instanceof AgentError, `failed with an unexplained error (a bare 500): ${describeOutcome(outcome)}`);
  }
  if (scenario.kind === 'deploy') {
    const failed = outcome.kind !== 'resolved';
    if (plan !== null && plan.at < pnr && failed) {
      const still = engine.containers.get(old.id);
      expect(
        still?.running === true && still.name === NAME,
        'a fault before the point of no return stopped or moved the old container',
      );
      expect(
        engine.touched(old.id).every((c) => c.startsWith('disableRestart')),
        `a fault before the point of no return touched the old container: ${engine.touched(old.id).join(', ')}`,
      );
    }
    const diskOnly = plan !== null && (plan.fault === 'disk-full' || (plan.fault === 'fail' && diskStep(planned)));
    // A registry that fails, hangs or drips during verification: the deploy is refused, with an
    // answer that names the registry, before anything was pulled (the old container checked above).
    // A registry that fails, hangs or drips during verification: the deploy is refused, before anything
    // was pulled (the old container is checked above). A failure is a 502 naming the registry; a read
    // that does not end is cut by the registry client's own deadline (a 504 naming the registry, 15 s)
    // or, when the pull's budget is shorter, as here, by the budget (its 504).
    if (plan !== null && isRegistryStep(planned) && ['fail', 'hang', 'drip'].includes(plan.fault)) {
      const error = outcome.kind === 'rejected' && outcome.error instanceof AgentError ? outcome.error : null;
      const named = error?.reason.includes(world?.registry.host ?? '(no registry)') === true;
      const clear =
        plan.fault === 'fail'
          ? error?.status === 502 && named
          : error?.status === 504 && (named || error.reason.startsWith('the image was not ready within'));
      expect(clear, `a registry ${plan.fault} did not fail the deploy with a clear answer: ${describeOutcome(outcome)}`);
      expect(!steps.includes('engine.pull'), 'a registry fault during verification and still the image was pulled');
    }
    if (plan !== null && plan.at >= pnr && diskOnly) {
      expect(
        endingOf(outcome) === cleanEnding,
        `a disk fault after the point of no return changed how the deploy ended: ${describeOutcome(outcome)}; without it: ${cleanEnding}`,
      );
    }
    if (outcome.kind === 'rejected') {
      expect(
        running().every((c) => c.id === old.id),
        `a container of the failed deploy runs: ${running()
          .map((c) => c.name)
          .join(', ')}`,
      );
    }
  }
  // (A killed stop leaves a second running leftover the scenario started with: the stop afterwards removes it.)
  expect(
    runtime().length <= 1 || (outcome.kind === 'killed' && seededRunning > 1),
    `more than one container after the operation: ${runtime()
      .map((c) => c.name)
      .join(', ')}`,
  );

  const status = await agent.deployer.status();
  expect(status.running === (fixed()?.running ?? false), `status says running=${status.running}, the engine disagrees`);
  expect(status.operation_in_progress === null, `status says ${status.operation_in_progress} is in progress`);
  if (scenario.kind === 'deploy') {
    if (outcome.kind === 'resolved') {
      expect(status.image === target.reference, `status names ${status.image} after a successful deploy`);
      expect(status.last_deploy?.request_id === requestId && status.last_deploy.outcome === 'deployed', 'status: last deploy');
      expect(status.previous_image === PREVIOUS, `status: previous_image ${status.previous_image}`);
    } else if (outcome.kind === 'rejected') {
      expect(status.last_deploy?.request_id === requestId && status.last_deploy.outcome !== 'deployed', 'status: failed deploy');
    } else if (steps.slice(0, plan?.at).some((s) => s.startsWith('journal('))) {
      expect(status.last_interrupted?.request_id === requestId, 'status: the interrupted deploy is not recorded');
    }
  }

  const auditPath = join(config.stateDir, 'audit.jsonl');
  const verified = await verifyAuditFile(auditPath);
  expect(verified.ok, `the audit log does not verify: ${JSON.stringify(verified)}`);
  const mine = readAudit(config.stateDir).filter((l) => l['request_id'] === requestId);
  const accepted = mine.some((l) => l['outcome'] === 'accepted');
  const ended = mine.some((l) => l['outcome'] !== 'accepted');
  if (!diskFault) {
    expect(!accepted || ended, 'the audit log has the accepted line but neither an outcome nor a recovery line');
    expect(outcome.kind !== 'resolved' || accepted, 'a request that acted has no accepted line');
  }

  // The emergency brake, afterwards: the engine answers again, the disk is as full as it was.
  const stop = await agent.deployer.stop(context(randomUUID(), '/v1/stop')).catch((error: unknown) => error);
  expect(
    typeof stop === 'object' && stop !== null && 'status' in stop && stop.status === 'stopped',
    `stop afterwards: ${String(stop)}`,
  );
  expect(
    running().length === 0,
    `after a stop, still running: ${running()
      .map((c) => c.name)
      .join(', ')}`,
  );
  await agent.deployer.reconcileNow().catch(() => undefined);
  expect(
    runtime().length === 0,
    `left after stop and clean-up: ${runtime()
      .map((c) => c.name)
      .join(', ')}`,
  );
  await agent.discard();
  return { steps, problems, ending: endingOf(outcome), elapsedMs: elapsed };
}

const describeOutcome = (o: Outcome): string =>
  o.kind === 'rejected' ? `rejected: ${o.error instanceof Error ? o.error.message : String(o.error)}` : o.kind;

let totalCases = 0;
let totalRun = 0;
// The fast tier's samples run their scenarios at once; every case, one scenario after another (all of
// them at once would crowd the timers that the deadlines are checked against).
describe('the fault matrix: every fault at every step', { concurrency: FULL ? 1 : SCENARIOS.length }, () => {
  after(() => process.stdout.write(`# fault matrix: ${totalCases} cases in all, ${totalRun} run here\n`));
  for (const scenario of SCENARIOS) {
    it(scenario.name, async () => {
      // The clean run gives the steps; one that misses its times (a busy machine: a deploy abandoned
      // before its stop, or a late answer), or takes more than a third of its bound (a faulted case
      // takes longer; at a load of 13 on two cores a clean deploy took 470 ms of its 1,200), is run again
      // with every time doubled.
      let times = timesAt(1);
      let clean = await runCase(scenario, null, Number.POSITIVE_INFINITY, null, times);
      const passed = (c: Case) =>
        c.problems.length === 0 &&
        (scenario.kind === 'stop' || c.steps.includes('journal(stopping)')) &&
        c.elapsedMs <= (scenario.kind === 'deploy' ? times.deployTimeoutMs : times.stopBoundMs) / 3;
      while (!passed(clean) && times.scale < MAX_SCALE) {
        times = timesAt(times.scale * 2);
        clean = await runCase(scenario, null, Number.POSITIVE_INFINITY, null, times);
      }
      assert.deepEqual(clean.problems, [], 'the clean run itself breaks an invariant');
      // The point of no return: the first step after the abandon signal is released.
      const pnr = scenario.kind === 'deploy' ? clean.steps.indexOf('journal(stopping)') : -1;
      assert.ok(
        scenario.kind === 'stop' || pnr > 0,
        `no stop step in the clean deploy, even with times ${times.scale}x: ${clean.steps.join(' ')} (${clean.ending})`,
      );
      const findings: string[] = [];
      const plans: Plan[] = [];
      for (let at = 0; at < clean.steps.length; at += 1) {
        const step = clean.steps[at] ?? '';
        for (const fault of FAULTS) {
          // By name and occurrence: steps that go out at once may arrive in either order.
          const occurrence = clean.steps.slice(0, at).filter((n) => n === step).length;
          if (appliesTo(fault, step)) plans.push({ at, fault, step, occurrence });
        }
      }
      const cases = plans.length;
      totalCases += cases;
      // Cases are independent (an engine model and a state folder each) and mostly wait on timers:
      // a few at a time keep the matrix well under a minute.
      // The fast tier runs a sample, every fault kind in it (a hang costs a deploy's timeout, so one);
      // the integration tier runs every case (test/support/sampling.ts).
      const queue = sampleOf(
        plans,
        scenario.name,
        (p) => p.fault,
        (fault) => (fault === 'hang' || fault === 'drip' ? 1 : 3),
      );
      const ran = queue.length;
      totalRun += ran;
      const worker = async () => {
        for (let plan = queue.shift(); plan !== undefined; plan = queue.shift()) {
          const t0 = performance.now();
          const result = await runCase(scenario, plan, pnr, clean.ending, times);
          const step = clean.steps[plan.at] ?? '';
          if (process.env['MATRIX_TIMES'] === '1')
            process.stdout.write(`# ${Math.round(performance.now() - t0)} ms ${plan.fault} at ${plan.at} ${step}\n`);
          // A run that took another path before the fault is a matrix that is not what it says.
          // (Steps are hit by name: steps that go out together arrive in either order.)
          const there = result.steps[plan.at];
          const onPath = plan.step === undefined ? there === step : result.steps.includes(step);
          const path = onPath ? '' : ` [the faulted run's step ${plan.at} was ${there}]`;
          for (const p of result.problems) findings.push(`${plan.fault} at step ${plan.at} (${step})${path}: ${p}`);
        }
      };
      await Promise.all(Array.from({ length: CONCURRENT_CASES }, worker));
      findings.sort();
      process.stdout.write(
        `# fault matrix, ${scenario.name}${times.scale === 1 ? '' : ` (times ${times.scale}x: a busy machine)`}: ${clean.steps.length} steps (${clean.steps.join(', ')}) x ${FAULTS.length} faults = ${cases} cases, ${ran} run: ${samplingNote()}\n`,
      );
      assert.deepEqual(findings, [], samplingNote());
    });
  }
});

// Exported for docs/RELIABILITY.md's table: the faults by name.
export const FAULT_NAMES: readonly Fault[] = FAULTS;
