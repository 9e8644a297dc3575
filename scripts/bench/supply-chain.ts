/**
 * The two configurations production can run, side by side on the same engine and registry:
 * IMAGE_VERIFICATION=none and github-attestation (public-good: Rekor entry and SCT, on the loopback
 * registry). Idle memory before the first deploy; image swaps, interleaved (goal: verified at most
 * 1.2x); memory after the verified deploys and again after the status load (goal: at most 100 MiB);
 * and the cost of running each check in a process of its own (goal: under 0.1x of a swap).
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { verificationPolicy } from '../../src/config/verification.js';
import { VERIFY_CHILD_ARGUMENT, type VerifyJob } from '../../src/supply-chain/verify-process.js';
import type { AgentProcess } from '../../test/support/agent-process.js';
import { attachBundle } from '../../test/support/cosign.js';
import { docker, freePort, REPOSITORY_PATH, type SandboxInfo } from '../../test/support/sandbox.js';
import { githubClaims, provenanceStatement, SigstoreMock } from '../../test/support/sigstore-mock.js';
import { median, rssMiB, sleep, startAgentOn, wrk } from './measure.js';

export interface SupplyChainFigures {
  /** RSS of the verifying agent before its first deploy, and of the plain agent measured the same way. */
  readonly idleVerified: number;
  readonly idlePlain: number;
  /** Request to answer of swaps (ms): the plain agent and the verifying agent, interleaved. */
  readonly plain: number[];
  readonly verified: number[];
  /** RSS after the deploys above, and after the status load that follows them. */
  readonly afterDeploys: { readonly plain: number; readonly verified: number };
  readonly afterLoad: { readonly plain: number; readonly verified: number };
  /** Status under the same load: requests a second, each agent. */
  readonly statusRps: { readonly plain: number; readonly verified: number };
  /**
   * A check's process from spawn to answer (ms) when the registry refuses at once (a closed port):
   * the cost of a fresh process per deploy (Node.js, the verifier's code, the trusted root), alone.
   */
  readonly checkStart: number[];
}

async function manifestDigest(info: SandboxInfo, tag: string): Promise<string> {
  const res = await fetch(`http://${info.registry}/v2/${REPOSITORY_PATH}/manifests/${tag}`, {
    method: 'HEAD',
    headers: { Accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json' },
    signal: AbortSignal.timeout(10_000),
  });
  const digest = res.headers.get('docker-content-digest');
  if (digest === null) throw new Error(`no digest for ${tag}`);
  return digest;
}

export async function measureSupplyChain(options: {
  readonly info: SandboxInfo;
  readonly node: string;
  readonly dir: string;
  /** The environment of the bench's plain agent; its own folders, port and container are replaced. */
  readonly env: Readonly<Record<string, string>>;
  readonly swaps: number;
  readonly settleMs: number;
  /** The status load, as the bench's own (wrk -c, seconds) with the service token's headers. */
  readonly load: { readonly connections: number; readonly seconds: number; readonly headers: Record<string, string> };
}): Promise<SupplyChainFigures> {
  const { info, node, swaps } = options;
  const repository = `${info.registry}/${REPOSITORY_PATH}`;
  const mock = await SigstoreMock.start();
  const agents: AgentProcess[] = [];
  try {
    for (const tag of ['v1', 'v2']) {
      const digest = await manifestDigest(info, tag);
      await attachBundle(info.registry, REPOSITORY_PATH, digest, await mock.attest(provenanceStatement(digest), githubClaims()));
    }
    const root = join(options.dir, 'trusted_root.jsonl');
    writeFileSync(root, mock.trustedRootLines());
    const policy = {
      SIGSTORE_TRUSTED_ROOT_FILE: root,
      ATTESTATION_REPOSITORY: 'ceerkle/dreichor-trading',
      ATTESTATION_SIGNER_WORKFLOW: 'ceerkle/dreichor-trading/.github/workflows/build.yml',
      ATTESTATION_SOURCE_REFS: 'refs/heads/main',
    };
    const agentEnv = async (name: string, extra: Record<string, string>): Promise<Record<string, string>> => {
      const dir = join(options.dir, name);
      for (const d of ['audit', 'snap', 'state']) mkdirSync(join(dir, d), { recursive: true });
      return {
        ...options.env,
        PORT: String(await freePort()),
        CONTAINER_NAME: `dreichor-runtime-dev-bench-${name}`,
        AUDIT_EVENTS_PATH: join(dir, 'audit'),
        SNAPSHOTS_PATH: join(dir, 'snap'),
        STATE_DIR: join(dir, 'state'),
        ...extra,
      };
    };
    const plain = (await startAgentOn(node, await agentEnv('plain', { IMAGE_VERIFICATION: 'none' }))).agent;
    agents.push(plain);
    const verifying = (
      await startAgentOn(node, await agentEnv('verified', { IMAGE_VERIFICATION: 'github-attestation', ...policy }))
    ).agent;
    agents.push(verifying);
    await sleep(options.settleMs);
    const idlePlain = rssMiB(plain.child.pid ?? 0);
    const idleVerified = rssMiB(verifying.child.pid ?? 0);

    const figures = { plain: [] as number[], verified: [] as number[] };
    for (const agent of [plain, verifying]) {
      const first = await agent.api.deploy(`${repository}:v1`);
      if (first.status !== 200) throw new Error(`first deploy: ${first.status} ${first.text}`);
    }
    for (let i = 0; i < swaps; i += 1) {
      const ref = `${repository}:${i % 2 === 0 ? 'v2' : 'v1'}`;
      for (const [agent, list] of [
        [plain, figures.plain],
        [verifying, figures.verified],
      ] as const) {
        // Untagged first, then removed if nothing uses it: the next pull fetches it for real.
        await docker(info, 'rmi', ref).catch(() => undefined);
        const t0 = performance.now();
        const res = await agent.api.deploy(ref);
        if (res.status !== 200) throw new Error(`supply-chain swap: ${res.status} ${res.text}`);
        list.push(performance.now() - t0);
      }
    }
    await sleep(options.settleMs);
    const rss = (agent: AgentProcess) => rssMiB(agent.child.pid ?? 0);
    const afterDeploys = { plain: rss(plain), verified: rss(verifying) };
    const { connections, seconds, headers } = options.load;
    const loaded = async (agent: AgentProcess) =>
      (await wrk(options.dir, `${agent.api.url}/v1/status`, connections, seconds, { headers })).rps;
    const statusRps = { plain: await loaded(plain), verified: await loaded(verifying) };
    await sleep(options.settleMs);
    const afterLoad = { plain: rss(plain), verified: rss(verifying) };
    const checkStart = await checkStarts(node, root, policy, swaps);
    return { idleVerified, idlePlain, ...figures, afterDeploys, afterLoad, statusRps, checkStart };
  } finally {
    for (const agent of agents) {
      await agent.api.stop().catch(() => undefined);
      await agent.stop().catch(() => undefined);
    }
    await mock.close();
  }
}

/**
 * Starts `count` check processes from the bundle (dist/agent.js), one after the other, as the agent
 * does, each with a job whose registry refuses at once: what a verified deploy pays for its fresh
 * process (Node.js, the verifier's code, the trusted root), beside the swap it is part of.
 */
async function checkStarts(node: string, root: string, env: Record<string, string>, count: number): Promise<number[]> {
  const policy = verificationPolicy({ IMAGE_VERIFICATION: 'github-attestation', ...env, SIGSTORE_TRUSTED_ROOT_FILE: root });
  if (policy.mode !== 'github-attestation') throw new Error('the bench measures the github-attestation check');
  const digest = `sha256:${'0'.repeat(64)}`;
  const job: VerifyJob = {
    policy,
    request: { repository: '127.0.0.1:1/bench/refused', tagDigest: digest, runDigest: digest, credentials: null },
  };
  const times: number[] = [];
  for (let i = 0; i < count; i += 1) {
    const t0 = performance.now();
    const child = spawn(node, [resolve('dist/agent.js'), VERIFY_CHILD_ARGUMENT], {
      env: {},
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      serialization: 'json',
    });
    const reply = await new Promise<unknown>((done, fail) => {
      child.once('message', done);
      child.once('exit', (code) => fail(new Error(`the check process exited (${code}) without an answer`)));
      child.send(job);
    });
    times.push(performance.now() - t0);
    child.kill('SIGKILL');
    const status = (reply as { status?: unknown }).status;
    if (status !== 502) throw new Error(`the check process answered ${JSON.stringify(reply).slice(0, 300)}`);
  }
  return times;
}

export function renderSupplyChain(f: SupplyChainFigures, swaps: number): string {
  const plain = median(f.plain);
  const verified = median(f.verified);
  const ratio = verified / plain;
  const check = median(f.checkStart);
  const mib = (x: number) => `${x.toFixed(1)} MiB`;
  const bound = (x: number) => (x <= 100 ? '✓' : '✗');
  return [
    '',
    `## (f) The two configurations: IMAGE_VERIFICATION=none and github-attestation, medians of ${swaps}, interleaved`,
    '',
    "Two agents on the same engine and registry: one with `IMAGE_VERIFICATION=none`, one with `github-attestation` (public-good: a Rekor entry with its inclusion proof and an SCT; the bundle found through the `sha256-` tag, as on GHCR; @sigstore/mock keys). Each swap pulls for real. Memory is each agent's RSS, after its deploys and again after the status load (wrk, as in (a)).",
    '',
    '| | without verification | with verification | ratio | goal |',
    '|---|---|---|---|---|',
    `| swap, request to answer | ${plain.toFixed(0)} ms | ${verified.toFixed(0)} ms | ${ratio.toFixed(2)}× | ≤ 1.2× ${ratio <= 1.2 ? '✓' : '✗'} |`,
    `| idle RSS, before the first deploy | ${mib(f.idlePlain)} | ${mib(f.idleVerified)} | ${(f.idleVerified / f.idlePlain).toFixed(2)}× | no higher ${f.idleVerified <= f.idlePlain + 1 ? '✓' : '✗'} |`,
    `| RSS after the deploys | ${mib(f.afterDeploys.plain)} | ${mib(f.afterDeploys.verified)} | ${(f.afterDeploys.verified / f.afterDeploys.plain).toFixed(2)}× | ≤ 100 MiB ${bound(f.afterDeploys.verified)} |`,
    `| RSS after the deploys and the status load | ${mib(f.afterLoad.plain)} | ${mib(f.afterLoad.verified)} | ${(f.afterLoad.verified / f.afterLoad.plain).toFixed(2)}× | ≤ 100 MiB ${bound(Math.max(f.afterLoad.plain, f.afterLoad.verified))} |`,
    `| status under that load | ${Math.round(f.statusRps.plain).toLocaleString('en')}/s | ${Math.round(f.statusRps.verified).toLocaleString('en')}/s | ${(f.statusRps.verified / f.statusRps.plain).toFixed(2)}× | |`,
    `| a check's own process, spawn to answer (registry refusing at once) | | ${check.toFixed(0)} ms | ${(check / verified).toFixed(3)}× of a verified swap | < 0.1× ${check < 0.1 * verified ? '✓' : '✗'} |`,
    '',
    "Each check runs in a process of its own, started from the bundle and ended once it has answered (src/supply-chain/verify-process.ts): the sigstore libraries and the parsed trusted root live only as long as the check, so the verifying agent's memory after its deploys is the plain agent's. The last row is what that costs per deploy: a fresh Node.js process, the verifier's code and the trusted root, every time.",
    '',
  ].join('\n');
}
