/**
 * npx tsx test/support/with-sandbox.ts -- npx tsx scripts/bench/status-floors.ts
 *
 * Why BENCHMARKS.md's status ratio (0.22x) and an independent bench's (0.48x) differ: the agent and
 * the bare node:http floor under the same wrk load, interleaved, in the variants that can differ
 * between two benches (the unit's Node.js flags on the floor or not; wrk's threads; the agent's
 * standard output piped to the bench or not). Prints medians; nothing is asserted.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { AUTH_HEADERS, TOKEN } from '../../test/support/harness.js';
import { freePort, REPOSITORY_PATH, sandboxInfo } from '../../test/support/sandbox.js';
import { median, node24, sleep, startAgentOn, startBareServer, unitNodeFlags, wrk } from './measure.js';

const ROUNDS = Number(process.env['ROUNDS'] ?? 3);
const SECONDS = Number(process.env['SECONDS_EACH'] ?? 3);
const say = (line: string) => process.stdout.write(`${line}\n`);

async function main(): Promise<void> {
  const info = sandboxInfo();
  const dir = join(info.dir, 'status-floors');
  for (const d of ['audit', 'snap', 'state', 'node']) mkdirSync(join(dir, d), { recursive: true });
  const node = await node24(join(dir, 'node'));
  const port = await freePort();
  const env: Record<string, string> = {
    ENVIRONMENT: 'dev',
    PORT: String(port),
    CONTAINER_NAME: 'dreichor-runtime-dev-floors',
    CF_ACCESS_CLIENT_ID: TOKEN.id,
    CF_ACCESS_CLIENT_SECRET: TOKEN.secret,
    IMAGE_REPOSITORY: `${info.registry}/${REPOSITORY_PATH}`,
    AUDIT_EVENTS_PATH: join(dir, 'audit'),
    SNAPSHOTS_PATH: join(dir, 'snap'),
    RUNTIME_NETWORK: 'none',
    STOP_TIMEOUT_SECONDS: '10',
    START_CHECK_SECONDS: '1',
    STATE_DIR: join(dir, 'state'),
    DOCKER_HOST: info.dockerHost,
    IMAGE_VERIFICATION: 'none',
  };
  const { agent } = await startAgentOn(node, env);
  const deployed = await agent.api.deploy(`${env['IMAGE_REPOSITORY']}:v1`);
  if (deployed.status !== 200) throw new Error(`deploy: ${deployed.status} ${deployed.text}`);
  const body = (await agent.api.status()).text;
  // The same agent, its output to a file rather than a pipe the bench reads.
  const quietPort = await freePort();
  const quiet = spawn(node, [...unitNodeFlags(), 'dist/agent.js'], {
    env: { ...env, PORT: String(quietPort), PATH: process.env['PATH'] ?? '' },
    stdio: ['ignore', openSync(join(dir, 'quiet.log'), 'w'), openSync(join(dir, 'quiet.log'), 'a')],
  });
  const bare = await startBareServer(node, dir, body);
  const bareFlagged = await startBareServer(node, dir, body, unitNodeFlags());
  await sleep(1500);
  const targets: Record<string, string> = {
    'agent (unit flags, output piped to the bench)': `http://127.0.0.1:${port}/v1/status`,
    'agent (unit flags, output to a file)': `http://127.0.0.1:${quietPort}/v1/status`,
    'bare node:http, no flags (the bench floor until now)': `${bare.url}/v1/status`,
    'bare node:http, the unit flags': `${bareFlagged.url}/v1/status`,
  };
  const results: Record<string, number[]> = {};
  for (const threads of [1, 2]) {
    for (let round = 0; round < ROUNDS; round += 1) {
      for (const [name, url] of Object.entries(targets)) {
        const r = await wrk(dir, url, 50, SECONDS, { headers: { ...AUTH_HEADERS } }, threads);
        const key = `-t${threads} ${name}`;
        results[key] = [...(results[key] ?? []), r.rps];
      }
    }
  }
  for (const [name, rps] of Object.entries(results))
    say(`${name}: median ${Math.round(median(rps))}/s of ${rps.map(Math.round).join(', ')}`);
  quiet.kill();
  await bare.stop();
  await bareFlagged.stop();
  await agent.api.stop().catch(() => undefined);
  await agent.stop();
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
