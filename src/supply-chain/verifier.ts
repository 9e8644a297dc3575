import type { VerificationPolicy } from '../config/verification.js';
import type { RegistryCredentials } from '../engine/engine-port.js';
import { AgentError } from '../errors.js';
import { parseRepository } from '../policy/image.js';
import type { Provenance } from './provenance.js';
import { RegistryClient } from './registry.js';

/**
 * The supply-chain check as the deploy sees it: one call between the tag's resolution and the first
 * pull, under the deploy's abort signal. It resolves with the provenance of what may run, or throws
 * an AgentError: 422 naming the check that failed, 502 when the registry cannot be read.
 *
 * Where it runs: in the child process verify-process.ts starts for each deploy (verify-child.ts calls
 * createImageVerifier there), never in the agent's own heap. That child imports only the configured
 * mode's verifier (attestation.ts with sigstore-js, or cosign.ts, which needs no sigstore), checks one
 * deploy and exits, giving all of it back. A verifier that cannot be set up (a trusted root that does
 * not load) answers the deploy with a 503 naming it.
 */
export interface VerifyRequest {
  /** The configured IMAGE_REPOSITORY: `host/path`. */
  readonly repository: string;
  /** What the tag resolves to in its registry. */
  readonly tagDigest: string;
  /**
   * The manifest that will run: the tag's digest, or the manifest chosen from its image index for the
   * engine's platform (platform.ts). An attestation of either passes; the container runs this one.
   */
  readonly runDigest: string;
  readonly credentials: RegistryCredentials | null;
}

export interface ImageVerifier {
  verify(request: VerifyRequest, signal: AbortSignal): Promise<Provenance>;
}

interface ModeVerifier {
  verify(client: RegistryClient, digests: readonly string[]): Promise<Provenance>;
}

export function createImageVerifier(policy: VerificationPolicy): ImageVerifier | null {
  if (policy.mode === 'none') return null;
  let loaded: Promise<ModeVerifier> | null = null;
  const load = (): Promise<ModeVerifier> => {
    loaded ??= (
      policy.mode === 'github-attestation'
        ? import('./attestation.js').then((m) => new m.AttestationVerifier(policy))
        : import('./cosign.js').then((m) => new m.CosignKeyVerifier(policy))
    ).catch((error: unknown) => {
      loaded = null; // where one verifier serves several checks (unit tests), a failed set-up is not kept
      throw new AgentError(
        503,
        `the image verifier could not be set up (${describeSetup(policy.mode, error)}); nothing was deployed`,
        {
          code: 'image_unverified',
          cause: error,
        },
      );
    });
    return loaded;
  };
  return {
    async verify(request, signal) {
      const repository = parseRepository(request.repository);
      if (repository === null) throw new AgentError(500, 'internal error: IMAGE_REPOSITORY does not parse');
      const verifier = await load();
      signal.throwIfAborted();
      const client = new RegistryClient(
        { host: repository.domain, path: repository.path, credentials: request.credentials },
        signal,
      );
      const digests = request.runDigest === request.tagDigest ? [request.tagDigest] : [request.tagDigest, request.runDigest];
      return verifier.verify(client, digests);
    },
  };
}

function describeSetup(mode: string, error: unknown): string {
  const text = (error instanceof Error ? error.message : String(error)).replace(/\s+/g, ' ').slice(0, 160);
  return mode === 'github-attestation' ? `SIGSTORE_TRUSTED_ROOT_FILE: ${text}` : text;
}
