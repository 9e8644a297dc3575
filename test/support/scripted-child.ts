/**
 * The verifier's child process (supply-chain/verify-process.ts), scripted: `spawn` of node:child_process
 * is replaced for the length of one call, so a test decides what the "child" does (answers garbage,
 * dies, hangs, cannot start) without a hook in the agent's code. verify-process.ts imports `spawn` as
 * a binding of the built-in module, which Node.js updates when syncBuiltinESMExports() is called.
 */
import childProcess, { type ChildProcess, type SpawnOptions } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { syncBuiltinESMExports } from 'node:module';

/** One spawn as the agent asked for it. */
export interface SpawnCall {
  readonly command: string;
  readonly args: readonly string[];
  readonly options: SpawnOptions;
}

type Spawner = (call: SpawnCall) => ChildProcess;

/** The real spawn, kept: the scripted ones start real processes while the module's own is replaced. */
const realSpawn = childProcess.spawn;

/** Runs `body` with every spawn answered by `spawner`; the real spawn is back afterwards, whatever happens. */
export async function withScriptedSpawn<T>(spawner: Spawner, body: (calls: SpawnCall[]) => Promise<T>): Promise<T> {
  const calls: SpawnCall[] = [];
  childProcess.spawn = ((command: string, args: readonly string[], options: SpawnOptions) => {
    const call = { command, args, options };
    calls.push(call);
    return spawner(call);
  }) as typeof childProcess.spawn;
  syncBuiltinESMExports();
  try {
    return await body(calls);
  } finally {
    childProcess.spawn = realSpawn;
    syncBuiltinESMExports();
  }
}

/** A real Node.js process running `script` (CommonJS, `-e`), with the agent's own spawn options (its IPC channel). */
export const nodeScript =
  (script: string): Spawner =>
  ({ options }) =>
    realSpawn(process.execPath, ['-e', script], options);

/** `command` in place of the agent's (one that does not exist: the child emits 'error'). */
export const otherCommand =
  (command: string): Spawner =>
  ({ options }) =>
    realSpawn(command, [], options);

/** Resolves once process `pid` is gone (bounded: rejects after `ms`). */
export async function gone(pid: number, ms = 5_000): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    if (Date.now() > until) throw new Error(`process ${pid} is still running after ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * A child that is no process: it answers each job sent to it with `reply(job)` on the next tick
 * (undefined: no answer) and records the signals it is sent. Fast, for the many shapes of an answer.
 */
export class FakeChild extends EventEmitter {
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  readonly jobs: unknown[] = [];
  readonly kills: (NodeJS.Signals | number | undefined)[] = [];

  constructor(private readonly reply: (job: unknown) => unknown) {
    super();
  }

  send(job: unknown): boolean {
    this.jobs.push(job);
    const answer = this.reply(job);
    if (answer !== undefined) setImmediate(() => this.emit('message', answer));
    return true;
  }

  kill(signal?: NodeJS.Signals | number): boolean {
    this.kills.push(signal);
    return true;
  }
}

export const fakeChild =
  (reply: (job: unknown) => unknown, made: FakeChild[] = []): Spawner =>
  () => {
    const child = new FakeChild(reply);
    made.push(child);
    return child as unknown as ChildProcess;
  };
