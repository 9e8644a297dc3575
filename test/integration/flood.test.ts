import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { unitNodeFlags } from '../../scripts/bench/measure.js';
import { CONNECTION_LIMITS } from '../../src/http/connections.js';
import { spawnAgent } from '../support/agent-process.js';
import { AUTH_HEADERS, engine, image, removeContainersNamed, testEnv } from '../support/harness.js';
import { freePort } from '../support/sandbox.js';

/**
 * Issue 22: a local process without credentials must not make status and stop unreachable. On the
 * built agent (dist/agent.js, as operators run it), 600 connections are opened on loopback and each
 * one is reopened as soon as the agent closes it, for FLOOD_MS: silent ones, ones that trickle a
 * request's headers a byte at a time (slowloris), and half-open ones (a partial request, then the
 * client's FIN). Meanwhile authenticated status requests and, at the end, a stop are sent, each on a
 * fresh connection, and the agent's RSS and open file descriptors are read from /proc.
 *
 * The agent runs with the shipped unit's Node.js flags (`--max-semi-space-size=1 --optimize-for-size --no-maglev`):
 * its memory is production's. Over a 60 s flood (docs/RELIABILITY.md) the live heap after each full
 * GC stays at 12.5 MB and RSS levels off within seconds; without the flags V8 lets the dead sockets
 * of the churn pile up to a 240 MiB plateau before collecting them, with the same live heap.
 */
const FLOOD = 600;
const FLOOD_MS = 8_000;
const STATUS_EVERY_MS = 250;
/** RSS may grow by this much under the flood (observed: +10 to +30 MiB; without the unit's flags, +80 to +160). */
const RSS_GROWTH_BOUND_MIB = 64;
/** Levelled off: the second half of the flood peaks at most this much above the first half's peak. */
const RSS_LEVEL_SLACK_MIB = 16;
/** The agent's own descriptors besides the flood's (engine sockets, files, stdio, epoll): a generous allowance. */
const OWN_FDS = 64;

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

/** The agent's open file descriptors: its sockets, bounded by the connection manager's cap. */
const fds = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;

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
      const agent = spawnAgent(env, { args: [...unitNodeFlags(), 'dist/agent.js'] });
      let attack: Flood | null = null;
      try {
        await agent.ready();
        assert.equal((await agent.api.deploy(image('v1'))).status, 200);
        const pid = agent.child.pid ?? 0;
        const before = rssMiB(pid);
        let peak = before;
        let maxFds = 0;
        attack = flood(port, kind, FLOOD);
        await sleep(1_000); // every slot taken
        const statuses: { status: number | string; ms: number }[] = [];
        const halves = [before, before];
        const started = Date.now();
        while (Date.now() < started + FLOOD_MS) {
          statuses.push(await fresh(port, 'GET', '/v1/status'));
          const rss = rssMiB(pid);
          peak = Math.max(peak, rss);
          const half = Date.now() - started < FLOOD_MS / 2 ? 0 : 1;
          halves[half] = Math.max(halves[half] ?? 0, rss);
          maxFds = Math.max(maxFds, fds(pid));
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
          `# observed: ${kind} flood, ${FLOOD} at once, ${opened} connections opened in ${(FLOOD_MS + 1_000) / 1000} s: ${ok.length}/${statuses.length} status 200 (slowest ${Math.round(worst)} ms; others: ${JSON.stringify(statuses.filter((s) => s.status !== 200).slice(0, 3))}); stop ${stop.status} in ${Math.round(stop.ms)} ms; agent RSS ${before.toFixed(0)} MiB before, ${peak.toFixed(0)} MiB peak (first half ${halves[0]?.toFixed(0)}, second ${halves[1]?.toFixed(0)}), ${after.toFixed(0)} MiB after; at most ${maxFds} descriptors open\n`,
        );
        assert.equal(ok.length, statuses.length, 'every status on a fresh connection answered 200');
        assert.equal(stop.status, 200, stop.text);
        const runtime = await engine.inspect(name);
        assert.ok(runtime === null || !runtime.State.Running, 'the engine says the runtime no longer runs');
        assert.ok(peak - before < RSS_GROWTH_BOUND_MIB, `RSS grew by ${(peak - before).toFixed(0)} MiB`);
        assert.ok(
          (halves[1] ?? 0) <= (halves[0] ?? 0) + RSS_LEVEL_SLACK_MIB,
          `RSS still climbing: ${halves[0]?.toFixed(0)} MiB in the first half, ${halves[1]?.toFixed(0)} in the second`,
        );
        // Per-socket memory is bounded by the number of sockets: the manager's cap, whatever the flood.
        assert.ok(
          maxFds <= CONNECTION_LIMITS.maxConnections + OWN_FDS,
          `${maxFds} descriptors open (cap ${CONNECTION_LIMITS.maxConnections})`,
        );
      } finally {
        attack?.stop();
        await agent.stop();
        await removeContainersNamed(name);
        rmSync(folders.root, { recursive: true, force: true });
      }
    });
  }
});
