/**
 * The built agent (dist/agent.js, or another entry) as a child process: how operators run it. Its
 * standard output and error are kept, so tests can check what the agent itself printed.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { Api, eventually } from './harness.js';
import { stopChild } from './process.js';

export interface AgentProcess {
  readonly child: ChildProcess;
  readonly api: Api;
  /** Everything the agent wrote to stdout and stderr so far. */
  output(): string;
  /** Resolves once the agent answers HTTP at all (any status: the engine may be down); polls every `pollMs`. */
  answering(timeoutMs?: number, pollMs?: number): Promise<void>;
  /** Resolves once GET /v1/status answers 200. */
  ready(timeoutMs?: number): Promise<void>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when it has exited. */
  stop(graceMs?: number): Promise<void>;
}

export interface SpawnOptions {
  /** What node runs: the built bundle by default. */
  readonly args?: readonly string[];
  /** The Node.js binary: this one by default (the bench runs production's Node.js 24). */
  readonly node?: string;
  /** Where the agent listens, when PORT is not in `env` (ENV_FILE). */
  readonly port?: number | string;
  readonly cwd?: string;
  /** Also copy the agent's stderr to this process's stderr (the demo shows it). */
  readonly echoStderr?: boolean;
}

/** Starts the agent with exactly `env` (and PATH): nothing of this shell's environment leaks in. */
export function spawnAgent(env: Readonly<Record<string, string>>, options: SpawnOptions = {}): AgentProcess {
  const port = options.port ?? env['PORT'];
  if (port === undefined) throw new Error('spawnAgent needs PORT in the environment or as an option');
  const child = spawn(options.node ?? process.execPath, [...(options.args ?? ['dist/agent.js'])], {
    env: { ...env, PATH: process.env['PATH'] ?? '' },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
  });
  const chunks: Buffer[] = [];
  child.stdout?.on('data', (c: Buffer) => chunks.push(c));
  child.stderr?.on('data', (c: Buffer) => {
    chunks.push(c);
    if (options.echoStderr === true) process.stderr.write(c);
  });
  const api = new Api(`http://127.0.0.1:${port}`);
  return {
    child,
    api,
    output: () => Buffer.concat(chunks).toString('utf8'),
    answering: async (timeoutMs = 20_000, pollMs = 100) => {
      const until = Date.now() + timeoutMs;
      while ((await api.status().catch(() => null)) === null) {
        if (child.exitCode !== null || Date.now() > until)
          throw new Error(`the agent does not answer: ${Buffer.concat(chunks).toString('utf8').slice(-500)}`);
        await sleep(pollMs);
      }
    },
    ready: (timeoutMs = 20_000) =>
      eventually('the agent listens', timeoutMs, async () => {
        if (child.exitCode !== null)
          throw new Error(`the agent exited with ${child.exitCode}: ${Buffer.concat(chunks).toString('utf8').slice(-500)}`);
        return (await api.status().catch(() => null))?.status === 200;
      }),
    stop: (graceMs = 10_000) => stopChild(child, graceMs),
  };
}
