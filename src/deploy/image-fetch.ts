import type { Config } from '../config/config.js';
import type { EnginePort, ImageInfo, TagResolution } from '../engine/engine-port.js';
import { AgentError } from '../errors.js';
import type { ImageReference } from '../policy/image.js';
import type { StateStore } from '../state/state.js';
import { chooseRunnable } from '../supply-chain/platform.js';
import type { Provenance } from '../supply-chain/provenance.js';
import type { ImageVerifier } from '../supply-chain/verifier.js';

/**
 * Step 1 of a deploy: get exactly the image asked for, and nothing else. The tag is resolved in its
 * registry (through the engine, with the pull's credentials) and held to its record; an image index
 * is resolved by the agent to the manifest for the engine's platform (supply-chain/platform.ts); a
 * pin must be what the tag is or that manifest; with IMAGE_VERIFICATION, what runs must carry a
 * verified attestation or signature, of itself or of its index (supply-chain/); then exactly that
 * manifest is pulled, by digest, and the container is created from it. Everything here happens before the
 * point of no return, under the deploy's `signal`.
 */
export interface FetchedImage {
  /**
   * The manifest the container runs, by digest: the tag's own, or the one chosen from its image index
   * for the engine's platform. Never an index: the engine never chooses.
   */
  readonly digest: string;
  /** What the tag resolves to in its registry: what the tag's record keeps (an index, maybe). */
  readonly tagDigest: string;
  readonly info: ImageInfo;
  /** Who built it, when IMAGE_VERIFICATION verified it; null with IMAGE_VERIFICATION=none. */
  readonly provenance: Provenance | null;
  /**
   * The image ids a container created from `digest` may have: the config's digest (the classic
   * store's id; from the registry when the agent read the manifest, else from the engine's inspect),
   * and the manifest's own digest (the containerd store's id).
   */
  readonly imageIds: readonly string[];
}

export interface FetchDeps {
  readonly config: Pick<Config, 'registryAuth' | 'imageVerification'>;
  readonly engine: EnginePort;
  readonly store: StateStore;
  /** The supply-chain check (supply-chain/verifier.ts); absent or null only with IMAGE_VERIFICATION=none. */
  readonly verifier?: ImageVerifier | null;
}

export async function fetchImage(deps: FetchDeps, image: ImageReference, signal: AbortSignal): Promise<FetchedImage> {
  const { engine, store } = deps;
  const auth = deps.config.registryAuth;
  const resolved = await engine.resolveTag(image.repository, image.tag, auth, signal);
  // Immutable tags: a tag keeps the digest of its first deploy in this environment.
  const recorded = store.recordedDigest(image.tag);
  if (recorded !== null && recorded !== resolved.digest) {
    const reason = `tag ${image.tag} was first deployed here as ${recorded} but now resolves to ${resolved.digest}; tags are immutable, push a new tag (the running container was not touched)`;
    throw new AgentError(409, reason, { code: 'tag_moved' });
  }
  if (image.digest !== null && image.digest !== resolved.digest && !resolved.index) throw pinMismatch(image, resolved.digest);

  // Security: an index is resolved to one manifest by the agent, for the engine's own platform, and
  // that manifest is verified, pulled and run by its digest. Left to the engine, the choice could
  // fall on another entry than the one verified (an unsigned image listed "for the same platform").
  // With IMAGE_VERIFICATION, the config of what runs is read from the registry too (checked against
  // the manifest's digest), so that the engine's own word is not what the created container is held to.
  const verifying = deps.verifier !== undefined && deps.verifier !== null;
  const runnable =
    resolved.index || verifying
      ? await chooseRunnable(
          {
            repository: image.repository,
            tagDigest: resolved.digest,
            credentials: auth,
            engine: resolved.index ? await engine.platform(signal) : null,
            // With IMAGE_VERIFICATION=none the agent reads the registry only for an index, itself:
            // an operator must be able to tell that from a verification failure.
            ...(verifying ? {} : { purpose: "to choose the tag's image for the engine's platform from its image index" }),
          },
          signal,
        )
      : { digest: resolved.digest, config: null };
  // A pin is the tag's digest, or the manifest the engine's platform runs from the tag's index.
  if (image.digest !== null && image.digest !== resolved.digest && image.digest !== runnable.digest) {
    throw pinMismatch(image, resolved.digest);
  }
  const provenance = await verify(deps, image, resolved, runnable.digest, signal);
  const digest = runnable.digest;
  await pullExactly(deps, image.repository, digest, signal);
  const local = `${image.repository}@${digest}`;
  const info = await engine.inspectImage(local, signal);
  if (info === null) throw new AgentError(502, `the pulled image ${local} is not in the engine's image store`);
  const imageIds = [runnable.config ?? info.id, digest];
  return { digest, tagDigest: resolved.digest, info, provenance, imageIds };
}

/**
 * Supply chain: before anything is pulled, the tag's digest (or its manifest for this platform)
 * must carry an attestation or signature that verifies under today's policy; a rollback too.
 * Security: fail closed. A verifier missing while the configuration asks for one is a bug, refused.
 */
async function verify(
  deps: FetchDeps,
  image: ImageReference,
  resolved: TagResolution,
  runDigest: string,
  signal: AbortSignal,
): Promise<Provenance | null> {
  const verifier = deps.verifier ?? null;
  if (verifier === null) {
    if (deps.config.imageVerification.mode === 'none') return null;
    throw new AgentError(500, 'internal error: IMAGE_VERIFICATION is configured but no verifier is wired; nothing was deployed');
  }
  const request = {
    repository: image.repository,
    tagDigest: resolved.digest,
    runDigest,
    credentials: deps.config.registryAuth,
  };
  return verifier.verify(request, signal);
}

/**
 * After create, before the point of no return: the engine's own record of the image the new container
 * runs must be the one fetched (its config, or the manifest itself on the containerd store).
 * Security: whatever the engine resolved the reference to, a container of another image never
 * starts; the caller removes it, the running container untouched.
 */
export async function checkCreatedImage(
  engine: EnginePort,
  id: string,
  fetched: Pick<FetchedImage, 'digest' | 'imageIds'>,
  signal: AbortSignal,
): Promise<void> {
  const created = await engine.inspectContainer(id, signal);
  if (created !== null && fetched.imageIds.includes(created.imageId)) return;
  throw new AgentError(
    502,
    `the engine created the new container from image ${created?.imageId ?? '(gone)'}, not from the manifest ${fetched.digest} (config ${fetched.imageIds[0] ?? ''}) that was fetched; it was removed, nothing was recorded, the running container was not touched`,
  );
}

/** Pulls `repository@digest` and makes sure the engine pulled that very manifest. */
async function pullExactly(deps: FetchDeps, repository: string, digest: string, signal: AbortSignal): Promise<void> {
  const pulled = await deps.engine.pull(repository, digest, deps.config.registryAuth, signal);
  if (pulled.digest !== null && pulled.digest !== digest) {
    throw new AgentError(502, `the engine pulled ${pulled.digest} when asked for ${repository}@${digest}; refusing to deploy it`);
  }
}

const pinMismatch = (image: ImageReference, tagDigest: string): AgentError =>
  new AgentError(
    409,
    `the pinned digest ${image.digest ?? ''} is not what tag ${image.tag} is: the tag resolves to ${tagDigest} (nor is the pin its manifest for this engine's platform); nothing was deployed or recorded, the running container was not touched`,
    { code: 'pin_mismatch' },
  );
