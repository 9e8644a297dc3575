import type { RegistryCredentials } from '../engine/engine-port.js';
import { AgentError } from '../errors.js';
import { parseRepository } from '../policy/image.js';
import { type Descriptor, indexSchema, LIMITS, MEDIA, manifestSchema, parseJson } from './referrers.js';
import { RegistryClient } from './registry.js';

/**
 * Which manifest of an image index runs on the engine's platform, decided by the agent, never left to
 * the engine: the container is created from that manifest's digest, so what is verified is what runs.
 *
 * The rules are containerd's platform matcher (github.com/containerd/platforms: `Normalize` and
 * `Only`), which both the classic and the containerd image store use to pick from an index: names
 * are normalised (`x86_64`→`amd64`, `aarch64`→`arm64`, `armhf`→`arm/v7`, case, arm64 `v8`→none,
 * amd64 `v1`→none), and an engine accepts its own platform first, then the ones it can also run in
 * the order containerd lists them (amd64: lower amd64 variants, then 386; arm: lower variants; arm64:
 * lower arm64 variants, then arm). Where the agent is stricter than the engine, it refuses:
 *
 * Security: two different manifests that match equally well are refused (the engine would take the
 * first; an index listing an unsigned image beside a signed one "for the same platform" is an attack
 * shape, not a build output). Nested indexes, attestation manifests (`unknown/unknown`), entries with
 * no platform and entries needing OS features are never chosen.
 */
export interface Platform {
  readonly os: string;
  readonly architecture: string;
  readonly variant: string;
}

export const describePlatform = (p: Platform): string => `${p.os}/${p.architecture}${p.variant === '' ? '' : `/${p.variant}`}`;

/** containerd's `Normalize` for the fields the agent compares. */
export function normalize(p: { os: string; architecture: string; variant?: string | undefined }): Platform {
  const os = p.os.toLowerCase() === 'macos' ? 'darwin' : p.os.toLowerCase();
  let architecture = p.architecture.toLowerCase();
  let variant = (p.variant ?? '').toLowerCase();
  switch (architecture) {
    case 'i386':
      architecture = '386';
      variant = '';
      break;
    case 'x86_64':
    case 'x86-64':
    case 'amd64':
      architecture = 'amd64';
      if (variant === 'v1') variant = '';
      break;
    case 'aarch64':
    case 'arm64':
      architecture = 'arm64';
      if (['8', 'v8', 'v8.0'].includes(variant)) variant = '';
      else if (['9', '9.0', 'v9.0'].includes(variant)) variant = 'v9';
      break;
    case 'armhf':
      architecture = 'arm';
      variant = 'v7';
      break;
    case 'armel':
      architecture = 'arm';
      variant = 'v6';
      break;
    case 'arm':
      if (variant === '' || variant === '7') variant = 'v7';
      else if (['5', '6', '8'].includes(variant)) variant = `v${variant}`;
      break;
  }
  return { os, architecture, variant };
}

const same = (a: Platform, b: Platform): boolean => a.os === b.os && a.architecture === b.architecture && a.variant === b.variant;

/** containerd's `platformVector`: what an engine of `p` runs, best first (normalised). */
export function platformVector(p: Platform): Platform[] {
  const at = (architecture: string, variant: string): Platform => normalize({ os: p.os, architecture, variant });
  const version = (v: string): number => (/^v?\d+$/.test(v) ? Number(v.replace('v', '')) : Number.NaN);
  switch (p.architecture) {
    case 'amd64': {
      const vector = [p];
      for (let v = version(p.variant) - 1; v >= 1; v--) vector.push(at('amd64', `v${v}`));
      return [...vector, at('386', '')];
    }
    case 'arm': {
      const vector = [p];
      for (let v = version(p.variant) - 1; v >= 5; v--) vector.push(at('arm', `v${v}`));
      return vector;
    }
    case 'arm64': {
      const variant = p.variant === '' ? 'v8' : p.variant;
      const m = /^v([89])(?:\.(\d))?$/.exec(variant);
      if (m === null) return [];
      const major = Number(m[1]);
      const minor = Number(m[2] ?? '0');
      // v9.x also runs v8.(x+5) and below, capped at v8.9 (containerd's table).
      const ranges = major === 9 ? [[9, minor] as const, [8, Math.min(minor + 5, 9)] as const] : [[8, minor] as const];
      const vector: Platform[] = [];
      for (const [maj, top] of ranges)
        for (let n = top; n >= 0; n--) vector.push(at('arm64', n === 0 ? `v${maj}` : `v${maj}.${n}`));
      return [...vector, ...platformVector(at('arm', 'v8'))];
    }
    default:
      return [p];
  }
}

const IMAGE_MANIFESTS: ReadonlySet<string> = new Set([MEDIA.ociManifest, MEDIA.dockerManifest]);

/** The rank of an index entry for an engine of `engine` (0 best), or null when it is never chosen. */
export function rankOf(entry: Descriptor, vector: readonly Platform[]): number | null {
  if (!IMAGE_MANIFESTS.has(entry.mediaType) || entry.platform === undefined) return null;
  if (entry.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest') return null;
  const features = entry.platform['os.features'];
  if (Array.isArray(features) && features.length > 0) return null;
  const p = normalize(entry.platform);
  const rank = vector.findIndex((v) => same(v, p));
  return rank < 0 ? null : rank;
}

const refusal = (reason: string): AgentError =>
  new AgentError(422, `${reason}; nothing was pulled or recorded, the running container was not touched`, {
    code: 'no_platform_image',
  });

/** The entry of `entries` the engine of `engine` runs, or a 422 saying why there is none. */
export function chooseEntry(indexDigest: string, entries: readonly Descriptor[], engine: Platform): Descriptor {
  const vector = platformVector(normalize(engine));
  let best: Descriptor[] = [];
  let bestRank = Number.POSITIVE_INFINITY;
  for (const entry of entries) {
    const rank = rankOf(entry, vector);
    if (rank === null || rank > bestRank) continue;
    if (rank < bestRank) best = [];
    bestRank = rank;
    if (!best.some((b) => b.digest === entry.digest)) best.push(entry);
  }
  const wanted = describePlatform(normalize(engine));
  const [chosen, other] = best;
  if (chosen === undefined) {
    const offered = entries.map((e) => (e.platform === undefined ? 'none' : describePlatform(normalize(e.platform))));
    throw refusal(
      `the image index ${indexDigest} has no image for the engine's platform ${wanted} (it lists: ${[...new Set(offered)].slice(0, 8).join(', ') || 'nothing'})`,
    );
  }
  if (other !== undefined) {
    throw refusal(
      `the image index ${indexDigest} lists ${best.length} different images that match the engine's platform ${wanted} equally (${chosen.digest} and ${other.digest}): refusing to guess which one runs`,
    );
  }
  return chosen;
}

/** What runs: a manifest's digest and the digest of its config (the engine's image id, classic store). */
export interface Runnable {
  readonly digest: string;
  readonly config: string;
}

/**
 * What a tag names, as the engine of `engine` would run it: the tag's own manifest, or the manifest
 * chosen from its index. Both read from the registry, each checked against its digest.
 */
export async function runnableOf(client: RegistryClient, tagDigest: string, engine: Platform | null): Promise<Runnable> {
  let digest = tagDigest;
  if (engine !== null) {
    const fetched = await client.manifest(tagDigest, [MEDIA.ociIndex, MEDIA.dockerList], LIMITS.manifestBytes);
    const index = fetched === null ? null : parseJson(fetched.bytes, indexSchema);
    if (index === null) throw refusal(`the image index ${tagDigest} could not be read from the registry`);
    digest = chooseEntry(tagDigest, index.manifests, engine).digest;
  }
  const fetched = await client.manifest(digest, [MEDIA.ociManifest, MEDIA.dockerManifest], LIMITS.manifestBytes);
  const manifest = fetched === null ? null : parseJson(fetched.bytes, manifestSchema);
  if (manifest === null) throw refusal(`the image manifest ${digest} could not be read from the registry`);
  return { digest, config: manifest.config.digest };
}

/**
 * What a tag runs, read by the agent from the tag's registry: for an image index (`engine` given) the
 * manifest for the engine's platform, else the tag's own manifest; with its config's digest.
 */
export function chooseRunnable(
  request: {
    repository: string;
    tagDigest: string;
    credentials: RegistryCredentials | null;
    engine: Platform | null;
    /** Why the registry is read, as its failures say (RegistryTarget.purpose). */
    purpose?: string;
  },
  signal: AbortSignal,
): Promise<Runnable> {
  const repository = parseRepository(request.repository);
  if (repository === null) throw new AgentError(500, 'internal error: IMAGE_REPOSITORY does not parse');
  const target = { host: repository.domain, path: repository.path, credentials: request.credentials };
  const client = new RegistryClient(request.purpose === undefined ? target : { ...target, purpose: request.purpose }, signal);
  return runnableOf(client, request.tagDigest, request.engine);
}
