/** Renders the bench's figures as BENCHMARKS.md: each figure beside its floor, and which targets are met. */
import { median, type WrkResult } from './measure.js';

export type SwapMethod = 'agent' | 'cli' | 'floor';

export interface SwapFigures {
  /** Request sent to the new container's `start` event (engine clock). */
  readonly toStarted: number[];
  /** Request sent to the answer. */
  readonly total: number[];
  /** The old container's `die` to the new one's `start` (engine clock). */
  readonly downtime: number[];
}

export interface BenchResults {
  readonly date: string;
  readonly quick: boolean;
  readonly machine: string;
  readonly agentNode: string;
  /** The Node.js flags the agent ran with: the unit's. */
  readonly nodeFlags: readonly string[];
  readonly startCheckSeconds: string;
  readonly swaps: number;
  readonly swap: Readonly<Record<SwapMethod, SwapFigures>>;
  /** The agent's swap to a new image already on the host (pulled beforehand). */
  readonly present: SwapFigures;
  /** The agent's rollback: a deploy of the previous image, which image retention keeps on the host. */
  readonly rollback: SwapFigures;
  /** The engine's start call alone, on a container created beforehand: the downtime floor. */
  readonly startCall: number[];
  readonly connections: number;
  readonly loadSeconds: number;
  readonly status: { readonly agent: WrkResult; readonly bare: WrkResult };
  readonly refused: WrkResult;
  readonly memory: { readonly idle: number; readonly afterLoad: number; readonly bareIdle: number };
  readonly startup: number[];
}

const STATUS_P99_NOTE = [
  "- **Status p99.** Throughput is over a quarter of the bare server's and the median within a few milliseconds of it; the tail is the gap.",
  "Tried and measured (5 s wrk runs): pino-http's per-request child logger (it serialises every request for a status line that is debug-only) bypassed for status, and the configured tokens hashed once:",
  'a few per cent; a one-step answer in front of the Express chain for plainly valid status requests (the chain still explains every refusal): 5,000 to 13,000-18,000 requests a second;',
  "a young generation of 1 MB: p99 from about 50 ms to between 10 and 40 ms, run to run. What is left is the agent's garbage collector and its background engine inspections (ten a second at most)",
  'sharing 2 cores with wrk; the bare server allocates almost nothing per request. Going further would mean leaving Express 5 and pino-http, which the contract names.',
].join(' ');

const IDLE_MEMORY_NOTE = [
  '- **Idle memory.** A bare Node.js 24 HTTP server is the floor (Node.js 20: about 43 MiB); what is above it is the agent and the libraries the contract names.',
  'Tried and measured: the bundle without comments and whitespace (one non-ASCII character in a comment had made V8 hold the whole source as a two-byte string of 5.5 MB: -3 MiB);',
  "without the modules the agent never runs (dockerode's BuildKit client and tar-fs, iconv-lite's encoding tables, zod's fifty languages: 2.8 MB of bundle became 1.2 MB); jose loaded only when the JWT check is configured;",
  '`--max-semi-space-size=1 --optimize-for-size` in the unit (-5 MiB idle, and after the status load 117 MiB became 96 MiB). From 80 MiB to this figure. What remains is the V8 heap of Express, dockerode, zod and pino',
  '(about 15 MiB in use after start) and the code compiled for them; loading them lazily would only move the cost to the first request, which comes within seconds (start-up recovery, the first status).',
].join(' ');

const ms = (x: number): string => `${x.toFixed(x < 10 ? 2 : 0)} ms`;
const mib = (x: number): string => `${x.toFixed(1)} MiB`;
const rps = (x: number): string => `${Math.round(x).toLocaleString('en')}/s`;
const ratio = (a: number, b: number): string => `${(a / b).toFixed(2)}×`;
const verdict = (ok: boolean): string => (ok ? 'met' : '**not met**');

export function render(r: BenchResults): string {
  const started = (m: SwapMethod) => median(r.swap[m].toStarted);
  const total = (m: SwapMethod) => median(r.swap[m].total);
  const downtime = (m: SwapMethod) => median(r.swap[m].downtime);
  const startCall = median(r.startCall);
  const { agent, bare } = r.status;
  const statusRatio = agent.rps / bare.rps;
  const targets: [string, string, string, boolean][] = [
    ['status p99 at 50 connections', ms(agent.p99), `bare node:http ${ms(bare.p99)}`, agent.p99 < 20],
    [
      'status throughput ≥ 0.25× the bare floor',
      rps(agent.rps),
      `${rps(bare.rps)}: ${ratio(agent.rps, bare.rps)}`,
      statusRatio >= 0.25,
    ],
    [
      'status answers without errors',
      `${agent.errors} of ${agent.requests.toLocaleString('en')}`,
      `${bare.errors}`,
      agent.errors === 0,
    ],
    ['idle memory < 60 MiB', mib(r.memory.idle), `bare node:http ${mib(r.memory.bareIdle)}`, r.memory.idle < 60],
    ['memory after the status load < 100 MiB', mib(r.memory.afterLoad), '', r.memory.afterLoad < 100],
    [
      'downtime ≤ 1.15× the engine start call',
      ms(downtime('agent')),
      `${ms(startCall)}: ${ratio(downtime('agent'), startCall)}`,
      downtime('agent') <= startCall * 1.15,
    ],
    [
      'swap faster than the docker CLI sequence',
      ms(started('agent')),
      `CLI ${ms(started('cli'))}: ${ratio(started('agent'), started('cli'))}`,
      started('agent') < started('cli'),
    ],
    [
      'swap within 10% of the same engine calls',
      ms(started('agent')),
      `${ms(started('floor'))}: ${ratio(started('agent'), started('floor'))}`,
      started('agent') <= started('floor') * 1.1,
    ],
    [
      'rollback within 1.1× of a swap whose image is present',
      ms(median(r.rollback.toStarted)),
      `${ms(median(r.present.toStarted))}: ${ratio(median(r.rollback.toStarted), median(r.present.toStarted))}`,
      median(r.rollback.toStarted) <= median(r.present.toStarted) * 1.1,
    ],
    ['start-up < 500 ms (spawn to answering HTTP)', ms(median(r.startup)), '', median(r.startup) < 500],
  ];
  const unmet = targets.filter(([, , , ok]) => !ok).map(([name]) => name);
  return [
    '# Benchmarks',
    '',
    `Generated by \`npm run bench\`${r.quick ? ' --quick (one swap each, one-second loads: a smoke run, not figures to quote)' : ''} on ${r.date}.`,
    `Machine: ${r.machine}. The agent and the bare floor run on ${r.agentNode} (production's runtime); the agent with the unit's flags (\`${r.nodeFlags.join(' ') || 'none'}\`). Shared and noisy: compare the ratios of one run, each figure beside its floor.`,
    '',
    '## Targets',
    '',
    '| target | measured | floor, ratio | |',
    '|---|---|---|---|',
    ...targets.map(([name, measured, floor, ok]) => `| ${name} | ${measured} | ${floor} | ${verdict(ok)} |`),
    '',
    unmet.length === 0 ? 'Every target is met in this run.' : `Not met in this run: ${unmet.join('; ')}. See the notes below.`,
    '',
    `## (a) GET /v1/status under load: wrk -t1 -c${r.connections} -d${r.loadSeconds}s, from a process of its own`,
    '',
    '| server | requests/s | p50 | p99 | errors |',
    '|---|---|---|---|---|',
    `| bare node:http, the agent's status body (floor) | ${rps(bare.rps)} | ${ms(bare.p50)} | ${ms(bare.p99)} | ${bare.errors} |`,
    `| the agent (Express 5, pino-http, service token check) | ${rps(agent.rps)} | ${ms(agent.p50)} | ${ms(agent.p99)} | ${agent.errors} |`,
    `| ratio | ${ratio(agent.rps, bare.rps)} | | ${ratio(agent.p99, bare.p99)} | |`,
    '',
    'Status never waits on the engine while the last inspection is under 1 s old: within 100 ms it is served as it is; up to 1 s it is served while one refresh runs in the background; the answer says how old it is (`inspection_age_ms`). Every deploy and stop of the agent discards it.',
    '',
    `Refused requests (wrong token, POST /v1/deploy, same load): ${rps(r.refused.rps)}, p99 ${ms(r.refused.p99)}; beyond 10 a minute they are counted for a summary line, not written one by one.`,
    '',
    `## (b) Image swap, medians of ${r.swaps}, interleaved (agent, CLI, floor, ...)`,
    '',
    '| | to new container started | to the answer | ratio to floor (started) |',
    '|---|---|---|---|',
    `| floor: the agent's engine calls from a script (tag look-up, pull by digest, create, stop, rename aside, rename, start, remove) | ${ms(started('floor'))} | ${ms(total('floor'))} | 1.00× |`,
    `| agent: POST /v1/deploy | ${ms(started('agent'))} | ${ms(total('agent'))} (includes the ${r.startCheckSeconds} s start check) | ${ratio(started('agent'), started('floor'))} |`,
    `| docker CLI: pull, stop, rm, run | ${ms(started('cli'))} | ${ms(total('cli'))} | ${ratio(started('cli'), started('floor'))} |`,
    '',
    'Before each swap the target image is removed from the engine, so every swap is a real pull from the registry. "Started" comes from the engine\'s own event clock.',
    '',
    `### Rollback: the previous image, kept on the host by image retention; medians of ${r.rollback.toStarted.length}, interleaved`,
    '',
    '| agent, POST /v1/deploy | to new container started | to the answer | downtime | ratio to the swap with a pull (started) |',
    '|---|---|---|---|---|',
    `| swap with a pull (above) | ${ms(started('agent'))} | ${ms(total('agent'))} | ${ms(downtime('agent'))} | 1.00× |`,
    `| swap to a new image already on the host | ${ms(median(r.present.toStarted))} | ${ms(median(r.present.total))} | ${ms(median(r.present.downtime))} | ${ratio(median(r.present.toStarted), started('agent'))} |`,
    `| rollback: the previous image, on the host | ${ms(median(r.rollback.toStarted))} | ${ms(median(r.rollback.total))} | ${ms(median(r.rollback.downtime))} | ${ratio(median(r.rollback.toStarted), started('agent'))} |`,
    '',
    "Neither of the last two pulls anything: the agent still asks the registry what the tag is (immutable tags), then finds the image on the host. The rollback should cost what a swap to an image already present costs (target: within 1.1×). Each is measured after a short pause, once the image retention that follows the deploy before (in the background) has ended; a rollback sent within milliseconds of a deploy's answer can meet one image removal still in flight (retention yields before the next one).",
    '',
    '## (c) Downtime window, medians (old container `die` to new container `start`, engine clock)',
    '',
    '| | downtime | ratio to the start call |',
    '|---|---|---|',
    `| floor: the engine's start call alone, on a created container | ${ms(startCall)} | 1.00× |`,
    `| agent | ${ms(downtime('agent'))} | ${ratio(downtime('agent'), startCall)} |`,
    `| docker CLI | ${ms(downtime('cli'))} | ${ratio(downtime('cli'), startCall)} |`,
    `| the same engine calls from a script | ${ms(downtime('floor'))} | ${ratio(downtime('floor'), startCall)} |`,
    '',
    '## (d) Memory and start-up',
    '',
    '| idle RSS (3 s after start) | bare node:http idle RSS | RSS after the status load | start-up, median |',
    '|---|---|---|---|',
    `| ${mib(r.memory.idle)} | ${mib(r.memory.bareIdle)} | ${mib(r.memory.afterLoad)} | ${ms(median(r.startup))} |`,
    '',
    '## Notes: what was tried, measured, and where it stops',
    '',
    '- The load generator is wrk in a process of its own, on the same 2 cores as the agent and the engine: it takes a core, so these are figures of a crowded machine. Each floor is measured the same way in the same run; single runs swing by a factor of two, the ratios less.',
    ...(agent.p99 < 20 ? [] : [STATUS_P99_NOTE]),
    ...(r.memory.idle < 60 ? [] : [IDLE_MEMORY_NOTE]),
    "- Node.js 20 serves the same agent at 5,000 to 7,000 status requests a second here (Node.js 24: 13,000 to 18,000), so production's Node.js 24 is what is measured.",
    '',
    '## Reproduce',
    '',
    '```sh',
    'npm run bench            # writes BENCHMARKS.md',
    'npm run bench -- --quick # one swap each, short loads: checks the bench still runs',
    '```',
    '',
  ].join('\n');
}
