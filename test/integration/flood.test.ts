import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnAgent } from '../support/agent-process.js';
import { AUTH_HEADERS, engine, image, removeContainersNamed, testEnv } from '../support/harness.js';
import { freePort } from '../support/sandbox.js';

/**
 * Issue 22: a local process without credentials must not make status and stop unreachable. On the
 * built agent (dist/agent.js, as operators run it), 600 connections are opened on loopback and each
 * one is reopened as soon as the agent closes it, for FLOOD_MS: silent ones, ones that trickle a
 * request's headers a byte at a time (slowloris), and half-open ones (a partial request, then the
 * client's FIN). Meanwhile authenticated status requests and, at the end, a stop are sent, each on a
 * fresh connection, and the agent's RSS is read from /proc.
 */
const FLOOD = 600;
const FLOOD_MS = 8_000;
const STATUS_EVERY_MS = 250;
/** The agent's RSS may grow by this much under the flood, at most: the heap of a churn of thousands of connections a second (figures in docs/RELIABILITY.md). */
const RSS_GROWTH_BOUND_MIB = 192;

type Kind = 'silent' | 'slowloris' | 'half-open';

interface Flood {
  readonly opened: () => number;
  stop(): void;
}

/** Opens `count` connections of `kind` and reopens each as soon as it closes, until stopped. */
function flood(port: number, kind: Kind, count: number): Flood {
  let stopped = false;
  let opened = 0;
  const live = new Set<Socket>();
  const open = (): void => {
    if (stopped) return;
    opened += 1;
    const socket = connect(port, '127.0.0.1');
    live.add(socket);
    socket.on('error', () => undefined);
    let trickle: NodeJS.Timeout | undefined;
    socket.on('close', () => {
      clearInterval(trickle);
      live.delete(socket);
      setImmediate(open);
    });
    socket.on('connect', () => {
      if (kind === 'slowloris') {
        socket.write('GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
        trickle = setInterval(() => socket.write('a'), 200);
      } else if (kind === 'half-open') {
        socket.write('GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\n');
        socket.end(); // our FIN; the agent's side stays open until it closes it
        socket.resume(); // read what the agent answers, to see its close and reopen at once
      }
    });
  };
  for (let i = 0; i < count; i += 1) open();
  return {
    opened: () => opened,
    stop: () => {
      stopped = true;
      for (const socket of live) socket.destroy();
    },
  };
}

/** One request on a connection of its own (no pooling, `Connection: close`): a status or a code. */
function fresh(
  port: number,
  method: string,
  path: string,
  body?: string,
): Promise<{ status: number | string; ms: number; text: string }> {
  const started = performance.now();
  return new Promise((resolve) => {
    const req = request(
      { host: '127.0.0.1', port, method, path, agent: false, timeout: 10_000, headers: { ...AUTH_HEADERS, Connection: 'close' } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, ms: performance.now() - started, text: Buffer.concat(chunks).toString('utf8') }),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error('ETIMEDOUT')));
    req.on('error', (error: NodeJS.ErrnoException) =>
      resolve({ status: error.code ?? error.message, ms: performance.now() - started, text: '' }),
    );
    req.end(body);
  });
}

const rssMiB = (pid: number): number => {
  const kib = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kib ?? 0) / 1024;
};

describe('connections no silent client can exhaust (issue 22)', () => {
  for (const kind of ['silent', 'slowloris', 'half-open'] as const) {
    it(`${FLOOD} ${kind} connections, reopened as soon as they close: status answers and stop stops, each on a fresh connection; the agent's memory stays bounded`, async () => {
      const port = await freePort();
      const { env, folders } = testEnv({ PORT: String(port) });
      const name = env['CONTAINER_NAME'] ?? '';
      const agent = spawnAgent(env);
      let attack: Flood | null = null;
      try {
        await agent.ready();
        assert.equal((await agent.api.deploy(image('v1'))).status, 200);
        const pid = agent.child.pid ?? 0;
        const before = rssMiB(pid);
        let peak = before;
        attack = flood(port, kind, FLOOD);
        await sleep(1_000); // every slot taken
        const statuses: { status: number | string; ms: number }[] = [];
        const until = Date.now() + FLOOD_MS;
        while (Date.now() < until) {
          statuses.push(await fresh(port, 'GET', '/v1/status'));
          peak = Math.max(peak, rssMiB(pid));
          await sleep(STATUS_EVERY_MS);
        }
        const stop = await fresh(port, 'POST', '/v1/stop', '{}');
        peak = Math.max(peak, rssMiB(pid));
        const opened = attack.opened();
        attack.stop();
        const after = rssMiB(pid);
        const ok = statuses.filter((s) => s.status === 200);
        const worst = Math.max(...statuses.map((s) => s.ms));
        process.stdout.write(
          `# observed: ${kind} flood, ${FLOOD} at once, ${opened} connections opened in ${(FLOOD_MS + 1_000) / 1000} s: ${ok.length}/${statuses.length} status 200 (slowest ${Math.round(worst)} ms; others: ${JSON.stringify(statuses.filter((s) => s.status !== 200).slice(0, 3))}); stop ${stop.status} in ${Math.round(stop.ms)} ms; agent RSS ${before.toFixed(0)} MiB before, ${peak.toFixed(0)} MiB peak, ${after.toFixed(0)} MiB after\n`,
        );
        assert.equal(ok.length, statuses.length, 'every status on a fresh connection answered 200');
        assert.equal(stop.status, 200, stop.text);
        const runtime = await engine.inspect(name);
        assert.ok(runtime === null || !runtime.State.Running, 'the engine says the runtime no longer runs');
        assert.ok(peak - before < RSS_GROWTH_BOUND_MIB, `RSS grew by ${(peak - before).toFixed(0)} MiB`);
      } finally {
        attack?.stop();
        await agent.stop();
        await removeContainersNamed(name);
        rmSync(folders.root, { recursive: true, force: true });
      }
    });
  }
});
