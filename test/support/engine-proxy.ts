/**
 * A Docker API proxy on a unix socket of its own, in front of the sandbox engine's socket, that can
 * refuse or stall chosen engine calls: the faults a real engine shows rarely but that the agent must
 * survive (overlay2's "device or resource busy" on a removal, a start or a removal that never
 * answers). Everything else passes through unchanged, streams included. The agent is pointed at it
 * with DOCKER_HOST=unix://<socket>.
 */
import { createServer, type IncomingMessage, request, type ServerResponse } from 'node:http';
import { join } from 'node:path';

/**
 * What to do with a call: pass it on, hold it without answering, answer for the engine, or pass it
 * on once `after` has resolved (a call held while something else happens on the engine).
 */
export type Verdict =
  | 'pass'
  | 'stall'
  | { readonly status: number; readonly message: string }
  | { readonly after: Promise<void> };
export type Rule = (method: string, path: string) => Verdict;

export interface EngineProxy {
  readonly socketPath: string;
  readonly dockerHost: string;
  /** The rule in force; `() => 'pass'` lets everything through. */
  rule: Rule;
  /** How many calls were held or refused so far. */
  readonly interfered: () => number;
  close(): Promise<void>;
}

/** The container id or name a path is about: `/v1.41/containers/<id>/start` → `<id>`. */
export function containerOf(path: string): string | null {
  return /\/containers\/([^/?]+)/.exec(path)?.[1] ?? null;
}

export async function startEngineProxy(engineSocket: string, dir: string): Promise<EngineProxy> {
  const socketPath = join(dir, 'proxy.sock');
  const held = new Set<ServerResponse>();
  let interfered = 0;
  const proxy: { rule: Rule } = { rule: () => 'pass' };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const verdict = proxy.rule(req.method ?? 'GET', req.url ?? '/');
    if (verdict === 'stall') {
      interfered += 1;
      held.add(res);
      res.on('close', () => held.delete(res));
      req.resume();
      return;
    }
    if (typeof verdict === 'object' && 'after' in verdict) {
      interfered += 1;
      req.pause();
      void verdict.after.then(() => forwardTo(req, res));
      return;
    }
    if (verdict !== 'pass') {
      interfered += 1;
      req.resume();
      const body = JSON.stringify({ message: verdict.message });
      res.writeHead(verdict.status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    forwardTo(req, res);
  });
  const forwardTo = (req: IncomingMessage, res: ServerResponse): void => {
    const forward = request({ socketPath: engineSocket, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    forward.on('error', () => res.destroy());
    res.on('close', () => forward.destroy());
    req.pipe(forward);
  };
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return {
    socketPath,
    dockerHost: `unix://${socketPath}`,
    get rule() {
      return proxy.rule;
    },
    set rule(rule: Rule) {
      proxy.rule = rule;
    },
    interfered: () => interfered,
    close: async () => {
      for (const res of held) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
