import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnAgent } from '../support/agent-process.js';
import { Api, AUTH_HEADERS, eventually, image, removeContainersNamed, testEnv } from '../support/harness.js';
import { freePort } from '../support/sandbox.js';

/**
 * Status under load while deploys run back to back, against the built agent in its own process so
 * that its memory can be read from /proc. Every run: 50 clients for 5 s. SOAK=1: 200 clients for 30 s.
 * Numbers are printed (and reported in docs/RELIABILITY.md), not asserted as timings.
 */
const SOAK = process.env['SOAK'] === '1';
const CLIENTS = SOAK ? 200 : 50;
const SECONDS = SOAK ? 30 : 5;

const rssMiB = (pid: number): number => {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kb ?? 0) / 1024;
};

describe('load', () => {
  it(`${CLIENTS} status clients for ${SECONDS} s while deploys run back to back: no error, memory stable`, async () => {
    const port = await freePort();
    const { env, folders } = testEnv({ PORT: String(port), STOP_TIMEOUT_SECONDS: '2', START_CHECK_SECONDS: '1' });
    const api = new Api(`http://127.0.0.1:${port}`);
    const agent = spawnAgent(env).child;
    try {
      await eventually('the agent listens', 10_000, async () => (await api.status().catch(() => null))?.status === 200);
      assert.equal((await api.deploy(image('v1'))).status, 200);
      const pid = agent.pid ?? 0;
      const rssStart = rssMiB(pid);
      let rssMax = rssStart;
      const until = Date.now() + SECONDS * 1000;
      const statuses = new Map<string, number>();
      let requests = 0;
      const latencies: number[] = [];

      const client = async () => {
        while (Date.now() < until) {
          const started = performance.now();
          const outcome = await fetch(`${api.url}/v1/status`, { headers: AUTH_HEADERS }).then(
            async (r) => {
              const body = (await r.json()) as { running?: unknown };
              return r.status === 200 && typeof body.running === 'boolean' ? '200' : `bad ${r.status}`;
            },
            (e: unknown) => `error ${e instanceof Error ? e.message : String(e)}`,
          );
          latencies.push(performance.now() - started);
          requests += 1;
          statuses.set(outcome, (statuses.get(outcome) ?? 0) + 1);
        }
      };
      const deploys: number[] = [];
      const deployer = async () => {
        for (let i = 0; Date.now() < until; i += 1) deploys.push((await api.deploy(image(i % 2 === 0 ? 'v2' : 'v1'))).status);
      };
      const sampler = async () => {
        while (Date.now() < until) {
          rssMax = Math.max(rssMax, rssMiB(pid));
          await sleep(250);
        }
      };
      await Promise.all([...Array.from({ length: CLIENTS }, client), deployer(), sampler()]);
      await sleep(500);
      const rssEnd = rssMiB(pid);

      latencies.sort((a, b) => a - b);
      const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))]?.toFixed(1);
      process.stdout.write(
        `# load: ${CLIENTS} clients x ${SECONDS} s: ${requests} status requests ${JSON.stringify(Object.fromEntries(statuses))}, ` +
          `p50 ${pct(0.5)} ms p99 ${pct(0.99)} ms; ${deploys.length} deploys ${JSON.stringify(deploys)}; ` +
          `agent RSS ${rssStart.toFixed(1)} MiB at start, ${rssMax.toFixed(1)} max, ${rssEnd.toFixed(1)} at end\n`,
      );
      assert.deepEqual([...statuses.keys()], ['200'], 'every status request answered 200');
      assert.ok(deploys.length >= 1 && deploys.every((s) => s === 200), `deploys: ${deploys.join()}`);
      // A leak shows as growth without bound; this only catches a gross one, the numbers say the rest.
      assert.ok(rssEnd < rssStart + 150, `RSS grew from ${rssStart} to ${rssEnd} MiB`);
    } finally {
      agent.kill('SIGKILL');
      await removeContainersNamed(env['CONTAINER_NAME'] ?? '');
      rmSync(folders.root, { recursive: true, force: true });
    }
  });
});
