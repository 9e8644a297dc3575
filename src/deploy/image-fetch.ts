import type { Config } from '../config/config.js';
import type { EnginePort, ImageInfo, TagResolution } from '../engine/engine-port.js';
import { AgentError } from '../errors.js';
import type { ImageReference } from '../policy/image.js';
import type { StateStore } from '../state/state.js';
import type { Provenance } from '../supply-chain/provenance.js';
import type { ImageVerifier } from '../supply-chain/verifier.js';

/**
 * Step 1 of a deploy: get exactly the image asked for, and nothing else. The tag is resolved in its
 * registry (through the engine, with the pull's credentials) and held to its record; a pin must be
 * what the tag is; with IMAGE_VERIFICATION, what the tag is must carry a verified attestation or
 * signature (supply-chain/); then exactly that digest is pulled. Everything here happens before the
 * point of no return, under the deploy's `signal`.
 */
export interface FetchedImage {
  /** The digest the container will run: the pin, or what the tag resolves to. */
  readonly digest: string;
  /** What the tag resolves to in its registry: what the tag's record keeps. */
  readonly tagDigest: string;
  readonly info: ImageInfo;
  /** Who built it, when IMAGE_VERIFICATION verified it; null with IMAGE_VERIFICATION=none. */
  readonly provenance: Provenance | null;
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

  const provenance = await verify(deps, image, resolved, signal);
  const digest = image.digest ?? resolved.digest;
  if (digest === resolved.digest) {
    await pullExactly(deps, image.repository, digest, signal);
  } else {
    // A pin that is not the tag's own digest is accepted only as the manifest the engine would run
    // from the tag's image index: its image (its config and every layer's content: ImageInfo.content)
    // must be the one the engine pulls for the index on its platform. Both are pulled into the
    // image store; nothing runs from them unless they match. The index first: a registry that
    // fails is a registry failure; a pin the engine then cannot pull (an attestation manifest,
    // "unknown/unknown", is no image) is not this tag's image for this platform.
    await pullExactly(deps, image.repository, resolved.digest, signal);
    await pullExactly(deps, image.repository, digest, signal).catch((error: unknown) => {
      if (signal.aborted || !(error instanceof AgentError) || error.code !== 'registry_refused') throw error;
      throw pinMismatch(image, resolved.digest, error.reason);
    });
    const [pinned, fromIndex] = await Promise.all([
      engine.inspectImage(`${image.repository}@${digest}`, signal),
      engine.inspectImage(`${image.repository}@${resolved.digest}`, signal),
    ]);
    if (pinned === null || fromIndex === null || pinned.content !== fromIndex.content) throw pinMismatch(image, resolved.digest);
  }
  const local = `${image.repository}@${digest}`;
  const info = await engine.inspectImage(local, signal);
  if (info === null) throw new AgentError(502, `the pulled image ${local} is not in the engine's image store`);
  return { digest, tagDigest: resolved.digest, info, provenance };
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
    index: resolved.index,
    credentials: deps.config.registryAuth,
  };
  return verifier.verify(request, signal);
}

/** Pulls `repository@digest` and makes sure the engine pulled that very manifest. */
async function pullExactly(deps: FetchDeps, repository: string, digest: string, signal: AbortSignal): Promise<void> {
  const pulled = await deps.engine.pull(repository, digest, deps.config.registryAuth, signal);
  if (pulled.digest !== null && pulled.digest !== digest) {
    throw new AgentError(502, `the engine pulled ${pulled.digest} when asked for ${repository}@${digest}; refusing to deploy it`);
  }
}

const pinMismatch = (image: ImageReference, tagDigest: string, pullError?: string): AgentError =>
  new AgentError(
    409,
    `the pinned digest ${image.digest ?? ''} is not what tag ${image.tag} is: the tag resolves to ${tagDigest} (nor is the pin its manifest for this engine's platform${pullError === undefined ? '' : `; the engine cannot run it: ${pullError}`}); nothing was deployed or recorded, the running container was not touched`,
    { code: 'pin_mismatch' },
  );
