/**
 * Issue 21's hostile image indexes, pushed to the sandbox's registry, and the one outcome a deploy of
 * them may have in either verification mode: exactly the verified manifest runs, by its own digest,
 * with its provenance; or a 4xx with the runtime untouched (the engine's own inspect: container id,
 * start time, image id), nothing recorded for the tag and no provenance in the audit line.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Platform } from '../../src/supply-chain/platform.js';
import { type Descriptor, MEDIA, type RegistryWriter } from './cosign.js';
import { engine, type TestAgent } from './harness.js';

export interface HostileIndex {
  readonly name: string;
  readonly tag: string;
  readonly digest: string;
  /** The reason the agent gives (src/supply-chain/platform.ts decides which entry the engine runs). */
  readonly refusal: RegExp;
}

/** What a registry calls the engine's architecture too (containerd normalises it back). */
const ALIAS: Readonly<Record<string, string>> = { amd64: 'x86_64', arm64: 'aarch64' };

let pushed = 0;

/**
 * The issue's two shapes, over `signed` (the manifest the policy accepts) and `unsigned` (one it does
 * not): the signed manifest under a variant this engine does not run beside the unsigned one for the
 * engine's platform; and the unsigned one first, under an alias of the platform, before the signed one.
 */
export async function pushHostileIndexes(
  writer: RegistryWriter,
  signed: Descriptor,
  unsigned: Descriptor,
  platform: Platform,
  unsignedRefusal: RegExp,
): Promise<HostileIndex[]> {
  const at = (architecture: string, variant?: string) => ({
    os: platform.os,
    architecture,
    ...(variant === undefined ? {} : { variant }),
  });
  const shapes: [string, object[], RegExp][] = [
    [
      'signed under variant v9, unsigned for the platform',
      [
        { ...signed, platform: at(platform.architecture, 'v9') },
        { ...unsigned, platform: at(platform.architecture) },
      ],
      unsignedRefusal,
    ],
    [
      'unsigned first under an alias, then signed',
      [
        { ...unsigned, platform: at(ALIAS[platform.architecture] ?? platform.architecture.toUpperCase()) },
        { ...signed, platform: at(platform.architecture) },
      ],
      /match the engine's platform .* equally/,
    ],
  ];
  const out: HostileIndex[] = [];
  for (const [name, manifests, refusal] of shapes) {
    pushed += 1;
    const tag = `hostile-${process.pid}-${pushed}`;
    out.push({ name, tag, digest: await pushIndex(writer, tag, manifests, signed.mediaType), refusal });
  }
  return out;
}

/** An honest index: the signed manifest for the engine's platform, beside entries never chosen. */
export async function pushHonestIndex(
  writer: RegistryWriter,
  signed: Descriptor,
  unsigned: Descriptor,
  platform: Platform,
): Promise<{ tag: string; digest: string }> {
  pushed += 1;
  const tag = `honest-${process.pid}-${pushed}`;
  const other = platform.architecture === 's390x' ? 'ppc64le' : 's390x';
  const manifests = [
    { ...unsigned, platform: { os: platform.os, architecture: platform.architecture, variant: 'v9' } },
    { ...signed, platform: { os: platform.os, architecture: platform.architecture } },
    { ...unsigned, platform: { os: 'unknown', architecture: 'unknown' } },
    { ...unsigned, platform: { os: platform.os, architecture: other } },
  ];
  return { tag, digest: await pushIndex(writer, tag, manifests, signed.mediaType) };
}

function pushIndex(writer: RegistryWriter, tag: string, manifests: object[], entryType: string): Promise<string> {
  const indexType = entryType === MEDIA.oci ? MEDIA.ociIndex : MEDIA.dockerList;
  return writer.manifest(tag, { schemaVersion: 2, mediaType: indexType, manifests }, indexType);
}

const recordedTags = (t: TestAgent): Record<string, unknown> => {
  try {
    return (JSON.parse(readFileSync(join(t.config.stateDir, 'state.json'), 'utf8')) as { tags: Record<string, unknown> }).tags;
  } catch {
    return {};
  }
};

/**
 * Deploys `repository:tag` of `index` and holds the answer to the only two outcomes allowed; returns
 * the status. `signed` is the manifest the policy accepts.
 */
export async function deployOnlyVerified(t: TestAgent, repository: string, index: HostileIndex, signed: string): Promise<number> {
  const before = await engine.inspect(t.config.containerName);
  assert.equal(before?.State.Running, true, 'a runtime runs before the deploy (else "untouched" proves nothing)');
  const r = await t.api.deploy(`${repository}:${index.tag}`);
  assert.ok(r.status === 200 || (r.status >= 400 && r.status < 500), `${index.name}: ${r.text}`);
  const after = await engine.inspect(t.config.containerName);
  if (r.status === 200) {
    // Only the signed manifest may run, by its own digest, with its provenance.
    const ref = `${repository}@${signed}`;
    assert.equal(after?.Config.Image, ref, `${index.name}: created from the signed manifest, never the index`);
    assert.equal(after?.Image, await engine.imageId(ref), `${index.name}: the engine's image is the signed manifest's`);
    assert.equal((r.body['provenance'] as Record<string, unknown>)['subject_digest'], signed);
    return r.status;
  }
  assert.match(String(r.body['reason']), index.refusal, index.name);
  assert.equal(after?.Id, before?.Id, `${index.name}: the running container is the same`);
  assert.equal(after?.State.StartedAt, before?.State.StartedAt, `${index.name}: and was not restarted`);
  assert.equal(after?.Image, before?.Image, `${index.name}: and runs the same image`);
  assert.equal(recordedTags(t)[index.tag], undefined, `${index.name}: the tag was not recorded`);
  const line = t.auditLines().at(-1);
  assert.equal(line?.['outcome'], 'refused');
  assert.equal(line?.['provenance'], undefined);
  return r.status;
}
