import { UNDECIDED_ARTIFACT_TYPES } from './bundle-media.js';
import type { Provenance } from './provenance.js';
import { artifactManifest, type Descriptor, findReferrers, LIMITS, type Manifest } from './referrers.js';
import { type RegistryClient, unverified } from './registry.js';

/**
 * The loop both verifiers share: every candidate the registry lists for the deployed digests is
 * fetched (each manifest and blob checked against its digest) and judged; the first that passes
 * every check wins. When none does, the refusal names the check that the candidate which got
 * furthest failed: "the wrong workflow" says more than "a malformed bundle" beside it.
 */
export type Judgement = { readonly provenance: Provenance } | { readonly rank: number; readonly problem: string };

export interface CandidateSource {
  /** Which referrers to consider, by their announced artifact type. */
  readonly wanted: (artifactType: string) => boolean;
  /** The layer of an artifact manifest that holds what is judged. */
  readonly layer: (mediaType: string) => boolean;
  /** What the candidates are called in a reason: "attestation", "signature". */
  readonly noun: string;
}

export async function firstVerified(
  client: RegistryClient,
  digests: readonly string[],
  source: CandidateSource,
  judge: (blob: Buffer) => Judgement,
  extra: readonly Judgement[] = [],
): Promise<Provenance> {
  const seen = new Map<string, Descriptor>();
  for (const digest of digests) for (const d of await findReferrers(client, digest, source.wanted)) seen.set(d.digest, d);
  if (seen.size > LIMITS.candidates) throw unverified(`more than ${LIMITS.candidates} candidate ${source.noun}s`);

  let best: { rank: number; problem: string } | null = null;
  const consider = (j: Judgement): Provenance | null => {
    if ('provenance' in j) return j.provenance;
    if (best === null || j.rank > best.rank) best = j;
    return null;
  };
  for (const j of extra) {
    const found = consider(j);
    if (found !== null) return found;
  }
  for (const descriptor of seen.values()) {
    const manifest = await artifactManifest(client, descriptor.digest);
    const layer = manifest?.layers.find((l) => source.layer(l.mediaType));
    if (manifest === null || layer === undefined || !source.wanted(artifactType(manifest, descriptor))) {
      consider({ rank: 0, problem: `referrer ${descriptor.digest} is not a ${source.noun} manifest` });
      continue;
    }
    if (manifest.subject !== undefined && !digests.includes(manifest.subject.digest)) {
      consider({ rank: 0, problem: `referrer ${descriptor.digest} refers to another image (${manifest.subject.digest})` });
      continue;
    }
    if (layer.size > LIMITS.bundleBytes) {
      consider({
        rank: 0,
        problem: `${source.noun} ${layer.digest} is ${layer.size} bytes, more than the ${LIMITS.bundleBytes} allowed`,
      });
      continue;
    }
    const found = consider(judge(await client.blob(layer.digest, LIMITS.bundleBytes)));
    if (found !== null) return found;
  }
  const described = digests.join(' or ');
  if (best === null) throw unverified(`no ${source.noun} found for ${described} (referrers API and sha256- tag)`);
  throw unverified(`no ${source.noun} for ${described} passes every check: ${(best as { problem: string }).problem}`);
}

/**
 * What a referrer is: its manifest's own artifactType (its bytes are checked against its digest),
 * else the type the listing announced, else its config's type (OCI 1.1's rule for artifacts).
 * cosign 3 lists its bundles under the empty config's type and says what they are in the manifest.
 */
function artifactType(manifest: Manifest, listed: Descriptor): string {
  if (manifest.artifactType !== undefined) return manifest.artifactType;
  if (listed.artifactType !== undefined && !UNDECIDED_ARTIFACT_TYPES.has(listed.artifactType)) return listed.artifactType;
  return manifest.config.mediaType;
}
