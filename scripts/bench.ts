/**
 * npm run bench [-- --quick] [-- --out FILE]
 *
 * Measures the deploy agent beside its floors, in one run on one machine: status under wrk against a
 * bare node:http server answering the same body; swaps against the same engine calls from a script and
 * against the docker CLI; the downtime window against the engine's start call alone; memory beside a
 * bare Node.js. On the private engine and registry of the test set-up, with production's Node.js 24.
 * Writes BENCHMARKS.md (or --out). Nothing here is asserted: it reports.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { AUTH_HEADERS, TOKEN } from '../test/support/harness.js';
import { docker, freePort, publishImage, REPOSITORY_PATH, Sandbox } from '../test/support/sandbox.js';
import {
  engineCall,
  events,
  floorSwap,
  node24,
  rssMiB,
  sleep,
  startAgentOn,
  startBareServer,
  startCallMs,
  unitNodeFlags,
  wrk,
} from './bench/measure.js';
import { type BenchResults, render, type SwapFigures, type SwapMethod } from './bench/report.js';
import { measureSupplyChain, renderSupplyChain } from './bench/supply-chain.js';

const run = promisify(execFile);
const QUICK = process.argv.includes('--quick');
const OUT = process.argv.includes('--out')
  ? (process.argv[process.argv.indexOf('--out') + 1] ?? 'BENCHMARKS.md')
  : 'BENCHMARKS.md';
const SWAPS = QUICK ? 1 : 7;
const LOAD_SECONDS = QUICK ? 1 : 5;
const CONNECTIONS = 50;
const STARTUPS = QUICK ? 1 : 7;
const SETTLE_MS = QUICK ? 200 : 1500;
// Idle memory is read twice: 3 s after start, and once V8 has settled (its memory reducer first runs
// about 8 s after start and gives back what start-up left behind: 2 to 3 MiB of the agent's).
const IDLE_AT_MS = QUICK ? [500, 1000] : [3000, 15000];
const say = (line: string) => process.stdout.write(`bench: ${line}\n`);

/** A process's RSS at IDLE_AT_MS after now (its start, or its first answer), with nothing asked of it. */
async function idleRss(pid: number): Promise<{ early: number; settled: number }> {
  const [early = 0, settled = 0] = IDLE_AT_MS;
  await sleep(early);
  const first = rssMiB(pid);
  await sleep(settled - early);
  return { early: first, settled: rssMiB(pid) };
}

// The test token: the agent's API client (test/support/harness.ts) sends it.
const HEADERS: Record<string, string> = { ...AUTH_HEADERS };

async function main(): Promise<void> {
  say(`starting the sandbox${QUICK ? ' (quick mode)' : ''}`);
  const sandbox = await Sandbox.start((l) => say(l));
  const stops: (() => Promise<void>)[] = [];
  try {
    const socketPath = sandbox.info.socketPath;
    const repository = `${sandbox.info.registry}/${REPOSITORY_PATH}`;
    const dir = join(sandbox.info.dir, 'bench');
    for (const d of ['audit', 'snap', 'state', 'node']) mkdirSync(join(dir, d), { recursive: true });
    say('Node.js 24 for the agent and the bare floor');
    const node = await node24(join(dir, 'node'));
    const agentNode = (await run(node, ['--version'])).stdout.trim();
    const port = await freePort();
    const env: Record<string, string> = {
      ENVIRONMENT: 'dev',
      PORT: String(port),
      CONTAINER_NAME: 'dreichor-runtime-dev-bench',
      CF_ACCESS_CLIENT_ID: TOKEN.id,
      CF_ACCESS_CLIENT_SECRET: TOKEN.secret,
      IMAGE_REPOSITORY: repository,
      AUDIT_EVENTS_PATH: join(dir, 'audit'),
      SNAPSHOTS_PATH: join(dir, 'snap'),
      RUNTIME_NETWORK: 'none',
      STOP_TIMEOUT_SECONDS: '10',
      START_CHECK_SECONDS: '1',
      STATE_DIR: join(dir, 'state'),
      DOCKER_HOST: sandbox.info.dockerHost,
      IMAGE_VERIFICATION: 'none',
    };

    say('start-up and idle memory');
    const startup: number[] = [];
    for (let i = 0; i < STARTUPS; i += 1) {
      const { agent, startupMs } = await startAgentOn(node, env);
      startup.push(startupMs);
      await agent.stop();
    }
    const { agent } = await startAgentOn(node, env);
    stops.push(() => agent.stop());
    const idle = await idleRss(agent.child.pid ?? 0);

    say(`image swaps: agent, CLI, floor, interleaved, ${SWAPS} of each; the engine's start call alone`);
    const names: Record<SwapMethod, string> = {
      agent: env['CONTAINER_NAME'] ?? '',
      cli: 'bench-cli-dev',
      floor: 'bench-floor-dev',
    };
    const first = await agent.api.deploy(`${repository}:v1`);
    if (first.status !== 200) throw new Error(`first deploy: ${first.status} ${first.text}`);
    await sandbox.docker('run', '-d', '--name', names.cli, '--network', 'none', `${repository}:v1`);
    await sandbox.docker('run', '-d', '--name', names.floor, '--network', 'none', `${repository}:v1`);
    const swap: Record<SwapMethod, SwapFigures> = {
      agent: { toStarted: [], total: [], downtime: [] },
      cli: { toStarted: [], total: [], downtime: [] },
      floor: { toStarted: [], total: [], downtime: [] },
    };
    const startCall: number[] = [];
    /** Runs one swap of the container `name` and records its figures from the engine's events. */
    const measure = async (name: string, into: SwapFigures, what: string, action: () => Promise<void>): Promise<void> => {
      const before = JSON.parse((await engineCall(socketPath, 'GET', `/containers/${name}/json`)).text) as { Id: string };
      const wall0 = Date.now();
      const t0 = performance.now();
      await action();
      into.total.push(performance.now() - t0);
      const wall1 = Date.now();
      await sleep(50);
      const evs = await events(socketPath, wall0 - 1000, wall1 + 1000);
      const now = JSON.parse((await engineCall(socketPath, 'GET', `/containers/${name}/json`)).text) as { Id: string };
      const died = evs.find((e) => e.id === before.Id && e.status === 'die');
      const started = evs.find((e) => e.id === now.Id && e.status === 'start');
      if (died === undefined || started === undefined) throw new Error(`no die/start events for ${what}`);
      into.toStarted.push(started.timeNano / 1e6 - wall0);
      into.downtime.push((started.timeNano - died.timeNano) / 1e6);
    };
    const deploy = async (ref: string, what: string): Promise<void> => {
      const res = await agent.api.deploy(ref);
      if (res.status !== 200) throw new Error(`${what}: ${res.status} ${res.text}`);
    };
    for (let i = 0; i < SWAPS; i += 1) {
      const tag = i % 2 === 0 ? 'v2' : 'v1';
      const ref = `${repository}:${tag}`;
      for (const method of ['agent', 'cli', 'floor'] as const) {
        const name = names[method];
        // Untagged first, then removed if nothing uses it: the next pull fetches it for real.
        await docker(sandbox.info, 'rmi', ref).catch(() => undefined);
        await measure(name, swap[method], method, async () => {
          if (method === 'agent') {
            await deploy(ref, 'agent swap');
          } else if (method === 'cli') {
            await sandbox.docker('pull', '-q', ref);
            await sandbox.docker('stop', name);
            await sandbox.docker('rm', name);
            await sandbox.docker('run', '-d', '--name', name, '--network', 'none', ref);
          } else {
            await floorSwap(socketPath, name, repository, tag);
          }
        });
      }
      startCall.push(await startCallMs(socketPath, ref, `bench-start-${i}`));
      say(`swap ${i + 1}/${SWAPS} done`);
    }

    say('supply chain: an agent that verifies attestations beside one that does not (idle memory, swaps)');
    const supplyChain = await measureSupplyChain({
      info: sandbox.info,
      node,
      dir,
      env,
      swaps: SWAPS,
      settleMs: QUICK ? 500 : 3000,
      load: { connections: CONNECTIONS, seconds: LOAD_SECONDS, headers: HEADERS },
    });
    // A rollback is a deploy of the previous image, which image retention keeps on the host: no pull.
    // Beside it, a swap to a new image that is already on the host (pulled beforehand), the same
    // steps but for its image: the two should be within 1.1x.
    say(`rollbacks, and swaps to an image already on the host, interleaved, ${SWAPS} of each`);
    const present: SwapFigures = { toStarted: [], total: [], downtime: [] };
    const rollback: SwapFigures = { toStarted: [], total: [], downtime: [] };
    for (let i = 0; i < SWAPS; i += 1) {
      const running = (await agent.api.status()).body['image'];
      if (typeof running !== 'string') throw new Error('the agent runs nothing before a rollback');
      const tag = `bench-present-${i}`;
      await publishImage(sandbox.info, tag);
      await sandbox.docker('pull', '-q', `${repository}:${tag}`);
      // Each after a pause: the image retention that follows the deploy before (in the background,
      // removing older images) has ended, as it has by the time an operator rolls back.
      await sleep(SETTLE_MS);
      await measure(names.agent, present, 'a swap to an image on the host', () => deploy(`${repository}:${tag}`, 'present swap'));
      await sleep(SETTLE_MS);
      await measure(names.agent, rollback, 'a rollback', () => deploy(running, 'rollback'));
      say(`rollback ${i + 1}/${SWAPS} done`);
    }

    say(`status under wrk -c${CONNECTIONS}: the agent, then a bare node:http server with the same body`);
    const statusUrl = `http://127.0.0.1:${port}/v1/status`;
    const body = (await agent.api.status()).text;
    const agentStatus = await wrk(dir, statusUrl, CONNECTIONS, LOAD_SECONDS, { headers: HEADERS });
    const refused = await wrk(dir, `http://127.0.0.1:${port}/v1/deploy`, CONNECTIONS, LOAD_SECONDS, {
      method: 'POST',
      headers: { ...HEADERS, 'CF-Access-Client-Secret': 'wrong-secret-0123456789' },
      body: JSON.stringify({ image: `${repository}:v1` }),
    });
    const afterLoad = rssMiB(agent.child.pid ?? 0);
    // The floor on the same terms as the agent: production's Node.js with the unit's flags (until 2026-12 it ran
    // without them, while the agent had them: see the notes on the status ratio).
    const bareServer = await startBareServer(node, dir, body, unitNodeFlags());
    stops.push(() => bareServer.stop());
    // Idle on the agent's terms: one answered request (the agent has answered its readiness status),
    // then read at the same moments after it.
    await fetch(`${bareServer.url}/v1/status`, { headers: HEADERS }).then((answer) => answer.text());
    const bareIdle = await idleRss(bareServer.pid);
    const bare = await wrk(dir, `${bareServer.url}/v1/status`, CONNECTIONS, LOAD_SECONDS, { headers: HEADERS });

    const dockerd = (await run('dockerd', ['--version'])).stdout.trim();
    const results: BenchResults = {
      date: new Date().toISOString().slice(0, 10),
      quick: QUICK,
      machine: `${cpus().length} × ${cpus()[0]?.model ?? 'unknown'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, ${dockerd}, private engine (overlay2, no bridge) and Debian's docker-registry on 127.0.0.1`,
      agentNode: `Node.js ${agentNode}`,
      nodeFlags: unitNodeFlags(),
      startCheckSeconds: env['START_CHECK_SECONDS'] ?? '',
      swaps: SWAPS,
      swap,
      present,
      rollback,
      startCall,
      connections: CONNECTIONS,
      loadSeconds: LOAD_SECONDS,
      status: { agent: agentStatus, bare },
      refused,
      memory: { idle, afterLoad, bareIdle },
      startup,
    };
    writeFileSync(OUT, render(results) + renderSupplyChain(supplyChain, SWAPS));
    say(`wrote ${OUT}`);
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    await sandbox.stop();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
