/**
 * The built agent (dist/agent.js, or another entry) as a child process: how operators run it. Its
 * standard output and error are kept, so tests can check what the agent itself printed.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { Api, eventually } from './harness.js';

export interface AgentProcess {
  readonly child: ChildProcess;
  readonly api: Api;
  /** Everything the agent wrote to stdout and stderr so far. */
  output(): string;
  /** Resolves once the agent answers HTTP at all (any status: the engine may be down). */
  answering(timeoutMs?: number): Promise<void>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when it has exited. */
  stop(graceMs?: number): Promise<void>;
}

export function spawnAgent(env: Readonly<Record<string, string>>, args: readonly string[] = ['dist/agent.js']): AgentProcess {
  const port = env['PORT'];
  if (port === undefined) throw new Error('spawnAgent needs PORT in the environment');
  const child = spawn(process.execPath, [...args], { env: { ...env, PATH: process.env['PATH'] ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const chunks: Buffer[] = [];
  child.stdout?.on('data', (c: Buffer) => chunks.push(c));
  child.stderr?.on('data', (c: Buffer) => chunks.push(c));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const api = new Api(`http://127.0.0.1:${port}`);
  return {
    child,
    api,
    output: () => Buffer.concat(chunks).toString('utf8'),
    answering: (timeoutMs = 20_000) => eventually('the agent answers', timeoutMs, async () => (await api.status().catch(() => null)) !== null),
    stop: async (graceMs = 10_000) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      if ((await Promise.race([exited.then(() => 'exited'), sleep(graceMs, 'timeout')])) === 'timeout') {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}
