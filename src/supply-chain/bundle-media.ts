/**
 * Sigstore bundle media types, and which bundle versions the agent accepts: v0.2 and v0.3, as
 * GitHub's verifier does. The names are sigstore-go's (`getBundleVersion`): `…bundle+json;version=0.N`
 * and `…bundle.v0.N+json`. Pure.
 *
 * Security: a v0.1 bundle carries only a signed entry timestamp (a promise of the log, no inclusion
 * proof); from v0.2 on, every log entry carries its inclusion proof, which sigstore's validation
 * requires (@sigstore/bundle's assertBundleV02/Latest). The version is read from the bundle's own
 * bytes, never from the label a registry listing or manifest gives it: a v0.1 bundle labelled as a
 * v0.3 artifact is still a v0.1 bundle.
 */
const BUNDLE_TYPE = /^application\/vnd\.dev\.sigstore\.bundle(?:\+json;version=(\d+\.\d+)|\.v(\d+\.\d+)\+json)$/;

export const ACCEPTED_BUNDLE_VERSIONS = ['0.2', '0.3'] as const;

/** The version a Sigstore bundle media type names (`0.3`), or null when it names none. */
export function bundleVersion(mediaType: string): string | null {
  const match = BUNDLE_TYPE.exec(mediaType);
  return match === null ? null : (match[1] ?? match[2] ?? null);
}

/** Any Sigstore bundle type, of any version: what the referrer filter lets through to be judged. */
export const isBundleType = (mediaType: string): boolean => bundleVersion(mediaType) !== null;

/** Why a bundle's own `mediaType` is not accepted, or null when it is v0.2 or v0.3. */
export function bundleVersionProblem(mediaType: unknown): string | null {
  const version = typeof mediaType === 'string' ? bundleVersion(mediaType) : null;
  if (version === null) return 'its mediaType is not a Sigstore bundle type';
  if (!(ACCEPTED_BUNDLE_VERSIONS as readonly string[]).includes(version)) {
    return `it is a v${version} bundle; only v0.2 and v0.3 are accepted (an inclusion proof for every log entry)`;
  }
  return null;
}

/**
 * The artifact types a referrers listing may give a referrer without saying what it is: none, and
 * the empty config's type (cosign 3 writes it into the `sha256-<hex>` tag's index for the bundles it
 * stores). Such a referrer is judged by its manifest's own artifactType.
 */
export const UNDECIDED_ARTIFACT_TYPES: ReadonlySet<string> = new Set(['', 'application/vnd.oci.empty.v1+json']);
