/**
 * The supply chain's cost, beside the same agent without it: idle memory of an agent configured with
 * IMAGE_VERIFICATION=github-attestation that has not deployed yet (sigstore is loaded on the first
 * deploy), and image swaps that verify an attestation (public-good: Rekor entry and SCT) on the
 * loopback registry, interleaved with swaps of an agent without verification. Goal: at most 1.2×.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AgentProcess } from '../../test/support/agent-process.js';
import { attachBundle } from '../../test/support/cosign.js';
import { docker, freePort, REPOSITORY_PATH, type SandboxInfo } from '../../test/support/sandbox.js';
import { githubClaims, provenanceStatement, SigstoreMock } from '../../test/support/sigstore-mock.js';
import { median, rssMiB, sleep, startAgentOn } from './measure.js';

export interface SupplyChainFigures {
  /** RSS of the verifying agent before its first deploy, and of the plain agent measured the same way. */
  readonly idleVerified: number;
  readonly idlePlain: number;
  /** Request to answer of swaps (ms): the plain agent and the verifying agent, interleaved. */
  readonly plain: number[];
  readonly verified: number[];
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
      await startAgentOn(
        node,
        await agentEnv('verified', {
          IMAGE_VERIFICATION: 'github-attestation',
          SIGSTORE_TRUSTED_ROOT_FILE: root,
          ATTESTATION_REPOSITORY: 'ceerkle/dreichor-trading',
          ATTESTATION_SIGNER_WORKFLOW: 'ceerkle/dreichor-trading/.github/workflows/build.yml',
          ATTESTATION_SOURCE_REFS: 'refs/heads/main',
        }),
      )
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
    return { idleVerified, idlePlain, ...figures };
  } finally {
    for (const agent of agents) {
      await agent.api.stop().catch(() => undefined);
      await agent.stop().catch(() => undefined);
    }
    await mock.close();
  }
}

export function renderSupplyChain(f: SupplyChainFigures, swaps: number): string {
  const plain = median(f.plain);
  const verified = median(f.verified);
  const ratio = verified / plain;
  return [
    '',
    `## (f) Supply chain: verification beside none, medians of ${swaps}, interleaved`,
    '',
    'Two agents on the same engine and registry: one with `IMAGE_VERIFICATION=none`, one with `github-attestation` (public-good: a Rekor entry with its inclusion proof and an SCT; the bundle found through the `sha256-` tag, as on GHCR; @sigstore/mock keys). Each swap pulls for real.',
    '',
    '| | without verification | with verification | ratio | goal |',
    '|---|---|---|---|---|',
    `| swap, request to answer | ${plain.toFixed(0)} ms | ${verified.toFixed(0)} ms | ${ratio.toFixed(2)}× | ≤ 1.2× ${ratio <= 1.2 ? '✓' : '✗'} |`,
    `| idle RSS, before the first deploy | ${f.idlePlain.toFixed(1)} MiB | ${f.idleVerified.toFixed(1)} MiB | ${(f.idleVerified / f.idlePlain).toFixed(2)}× | no higher ${f.idleVerified <= f.idlePlain + 1 ? '✓' : '✗'} |`,
    '',
    'The sigstore libraries are imported on the first deploy that verifies, so an agent that has not deployed holds none of them (the bundle carries their source, about 180 KB more of it).',
    '',
  ].join('\n');
}
