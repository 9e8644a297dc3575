/**
 * The world of the fault matrix (test/unit/deploy/fault-matrix.test.ts): one scripted engine and one state
 * folder that outlive any number of agent incarnations, and for each incarnation a step recorder that
 * sees every engine call and every journal, state and audit write, and can inject one fault at one
 * step: the call fails, hangs past its deadline, the agent is killed there, or the disk is full from
 * there on. A killed incarnation does nothing more: each of its later steps waits forever.
 */
import { type FileHandle, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import type { Config } from '../../src/config/config.js';
import { Deployer } from '../../src/deploy/deployer.js';
import type { Timing } from '../../src/deploy/time-bound.js';
import type * as Port from '../../src/engine/engine-port.js';
import { AgentError } from '../../src/errors.js';
import { type AuditFile, AuditLog } from '../../src/state/audit.js';
import { writeFileAtomic } from '../../src/state/files.js';
import { DeployJournal } from '../../src/state/journal.js';
import { StateStore } from '../../src/state/state.js';
import type { ImageVerifier } from '../../src/supply-chain/verifier.js';
import type { FakeEngine, Method } from './fake-engine.js';
import type { RegistryFault, ScriptedRegistry } from './scripted-registry.js';

export const FAULTS = ['fail', 'hang', 'drip', 'kill', 'disk-full'] as const;
export type Fault = (typeof FAULTS)[number];

/** A read of the registry by the agent itself (verification, the platform choice): `registry(GET /v2/…)`. */
export const isRegistryStep = (step: string): boolean => step.startsWith('registry(');

/**
 * Whether a fault makes sense at a step: a disk write neither hangs (see RELIABILITY.md) nor is an
 * engine call; only an answer over HTTP (the registry's) can drip.
 */
export const appliesTo = (fault: Fault, step: string): boolean => {
  if (fault === 'drip') return isRegistryStep(step);
  if (fault === 'hang') return step.startsWith('engine.') || isRegistryStep(step);
  return true;
};

export interface Plan {
  readonly at: number;
  readonly fault: Fault;
  /**
   * The step's name and which of the steps of that name it is (0: the first): steps that go out at
   * once (the referrers API and the referrers tag; the stop's records beside the engine's stop)
   * arrive in either order, so the fault hits a step by its name, not by its position.
   */
  readonly step?: string;
  readonly occurrence?: number;
}

/** What the disk does, for every incarnation: full from some step on. */
export interface Disk {
  full: boolean;
}

const never = (): Promise<never> => new Promise<never>(() => undefined);
const diskError = (code: 'ENOSPC' | 'EIO') =>
  Object.assign(new Error(code === 'ENOSPC' ? 'no space left on device' : 'input/output error'), { code });

export class Steps {
  readonly names: string[] = [];
  killed = false;

  constructor(
    private readonly disk: Disk,
    public plan: Plan | null,
    private readonly callTimeoutMs: number,
  ) {}

  /** Runs before each step acts. Resolves 'hang' when the step must hang; throws when it fails. */
  async before(name: string, signal?: AbortSignal): Promise<void> {
    const index = this.names.length;
    this.names.push(name);
    if (this.killed) return never();
    const write = !name.startsWith('engine.');
    if (this.hits(index, name) && this.plan !== null) {
      const { fault } = this.plan;
      if (fault === 'kill') {
        this.killed = true;
        return never();
      }
      if (fault === 'disk-full') this.disk.full = true;
      if (fault === 'fail') throw write ? diskError('EIO') : new AgentError(502, `the engine refused the ${name} (injected)`);
      if (fault === 'hang') await hang(name, this.callTimeoutMs, signal);
    }
    if (write && this.disk.full) throw diskError('ENOSPC');
  }

  /** A registry read: what the scripted registry does with it (null: it answers). */
  async registryRead(name: string): Promise<RegistryFault | null> {
    const index = this.names.length;
    this.names.push(name);
    if (this.killed) return 'hang';
    if (!this.hits(index, name) || this.plan === null) return null;
    const { fault } = this.plan;
    if (fault === 'kill') {
      this.killed = true;
      return 'hang';
    }
    if (fault === 'disk-full') {
      this.disk.full = true;
      return null;
    }
    return fault;
  }

  /** Whether the plan's fault hits this step: by its name and occurrence, or else by its index. */
  private hits(index: number, name: string): boolean {
    const plan = this.plan;
    if (plan === null) return false;
    if (plan.step === undefined) return plan.at === index;
    if (plan.step !== name) return false;
    const earlier = this.names.slice(0, index).filter((n) => n === name).length;
    return earlier === (plan.occurrence ?? 0);
  }
}

/** What the real engine wrapper does with a call that does not answer: it ends at its signal or deadline. */
async function hang(name: string, callTimeoutMs: number, signal?: AbortSignal): Promise<never> {
  const deadline = AbortSignal.timeout(callTimeoutMs);
  const ends = signal === undefined ? deadline : AbortSignal.any([signal, deadline]);
  await new Promise<void>((resolve) => {
    if (ends.aborted) resolve();
    ends.addEventListener('abort', () => resolve(), { once: true });
  });
  throw ends.reason instanceof AgentError ? ends.reason : new AgentError(504, `the engine did not answer the ${name} (injected)`);
}

/** The engine as one incarnation sees it: every call is a step. */
function stepEngine(engine: FakeEngine, steps: Steps): Port.EnginePort {
  // `deadlineAt`: where a call's own deadline is among its arguments (ms, or the stop's seconds and
  // slack), as the real wrapper takes it; a hang ends there, or at its signal.
  const wrap =
    <A extends unknown[], R>(
      method: Method,
      fn: (...args: A) => Promise<R>,
      signalAt: number,
      deadlineOf?: (args: A) => number | undefined,
    ) =>
    async (...args: A): Promise<R> => {
      const signal = args[signalAt] as AbortSignal | undefined;
      const own = deadlineOf?.(args);
      await steps.before(
        `engine.${method}`,
        own === undefined ? signal : AbortSignal.any([AbortSignal.timeout(own), ...(signal === undefined ? [] : [signal])]),
      );
      return fn(...args);
    };
  const msAt = (i: number) => (args: unknown[]) => args[i] as number | undefined;
  return {
    resolveTag: wrap('resolveTag', engine.resolveTag.bind(engine), 3),
    pull: wrap('pull', engine.pull.bind(engine), 3),
    platform: wrap('platform', engine.platform.bind(engine), 0),
    inspectImage: wrap('inspectImage', engine.inspectImage.bind(engine), 1),
    inspectContainer: wrap('inspectContainer', engine.inspectContainer.bind(engine), 1),
    networkExists: wrap('networkExists', engine.networkExists.bind(engine), 1),
    listByLabels: wrap('listByLabels', engine.listByLabels.bind(engine), 1),
    listByName: wrap('listByName', engine.listByName.bind(engine), 1),
    create: wrap('create', engine.create.bind(engine), 1),
    disableRestart: wrap('disableRestart', engine.disableRestart.bind(engine), 1, msAt(2)),
    kill: wrap('kill', engine.kill.bind(engine), 1, msAt(2)),
    pulledSince: wrap('pulledSince', engine.pulledSince.bind(engine), 1),
    start: wrap('start', engine.start.bind(engine), 1),
    stop: wrap('stop', engine.stop.bind(engine), 2, (args) => args[1] * 1000 + (args[3] ?? 15_000)),
    remove: wrap('remove', engine.remove.bind(engine), 1),
    rename: wrap('rename', engine.rename.bind(engine), 2),
    logsTail: wrap('logsTail', engine.logsTail.bind(engine), 2),
    listContainers: wrap('listContainers', engine.listContainers.bind(engine), 0),
    removeImage: wrap('removeImage', engine.removeImage.bind(engine), 1),
  };
}

/** The audit file as one incarnation sees it: each line written is a step, named after its outcome. */
function stepAuditFile(steps: Steps, handles: FileHandle[]): (path: string) => Promise<AuditFile> {
  return async (path) => {
    const handle = await open(path, 'a+', 0o600);
    handles.push(handle);
    return {
      read: (b, o, l, p) => handle.read(b, o, l, p),
      stat: () => handle.stat(),
      truncate: (len) => handle.truncate(len),
      close: () => handle.close(),
      sync: () => handle.sync(),
      write: async (buffer, offset, length) => {
        const outcome = /"outcome":"([a-z-]+)"/.exec(buffer.toString('utf8', offset, offset + length))?.[1] ?? 'line';
        await steps.before(`audit(${outcome})`);
        return handle.write(buffer, offset, length, null);
      },
    };
  };
}

export interface Incarnation {
  readonly deployer: Deployer;
  readonly audit: AuditLog;
  readonly steps: Steps;
  /** Closes its files: a killed incarnation's audit log never finishes its last write, so not through it. */
  discard(): Promise<void>;
}

export interface WorldOptions {
  readonly config: Config;
  readonly timing: Partial<Timing>;
  readonly callTimeoutMs: number;
  /** IMAGE_VERIFICATION's verifier (in this thread, as unit tests wire it) and the registry it reads. */
  readonly verifier?: ImageVerifier | null;
  readonly registry?: ScriptedRegistry;
}

/** Starts an agent over the world's engine and state folder, as `startAgent` does, without HTTP. */
export async function incarnate(engine: FakeEngine, disk: Disk, plan: Plan | null, options: WorldOptions): Promise<Incarnation> {
  const steps = new Steps(disk, plan, options.callTimeoutMs);
  const { config } = options;
  const write = async (file: string, content: string) => {
    await steps.before(file.endsWith('deploy-journal.json') ? `journal(${/"phase":"(\w+)"/.exec(content)?.[1]})` : 'state');
    await writeFileAtomic(file, content);
  };
  const handles: FileHandle[] = [];
  const audit = await AuditLog.open(join(config.stateDir, 'audit.jsonl'), { openFile: stepAuditFile(steps, handles) });
  const deployer = new Deployer({
    config,
    engine: stepEngine(engine, steps),
    store: await StateStore.open(config.stateDir, write),
    audit,
    journal: new DeployJournal(config.stateDir, write),
    logger: pino({ level: 'silent' }),
    timing: options.timing,
    verifier: options.verifier ?? null,
    reconcilerTiming: { backoffMs: 20, maxBackoffMs: 200, busyRetryMs: 20 },
  });
  // The registry's reads are this incarnation's steps from now on (a killed one reads nothing more).
  if (options.registry !== undefined) options.registry.intercept = (request) => steps.registryRead(`registry(${request})`);
  const discard = async () => {
    // Not awaited: a killed incarnation's operation never ends. The reconciler stops at once.
    deployer.shutdown().catch(() => undefined);
    await Promise.all(handles.map((h) => h.close().catch(() => undefined)));
  };
  return { deployer, audit, steps, discard };
}

/** A state folder with a history: one successful deploy of `image` before the matrix's own. */
export async function seedHistory(stateDir: string, image: string, digest: string): Promise<void> {
  const at = new Date(Date.now() - 60_000).toISOString();
  const state = {
    version: 1,
    tags: {},
    last_deploy: { image, outcome: 'deployed', reason: null, at, request_id: 'seed', image_digest: digest },
    last_interrupted: null,
    deployments: [{ image, digest, at, request_id: 'seed' }],
    leftovers: [],
  };
  await writeFile(join(stateDir, 'state.json'), `${JSON.stringify(state)}\n`, { mode: 0o600 });
}
