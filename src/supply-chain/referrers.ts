import * as z from '../zod.js';
import { UNDECIDED_ARTIFACT_TYPES } from './bundle-media.js';
import { type RegistryClient, unverified } from './registry.js';

/**
 * What the registry holds about a digest: the OCI 1.1 referrers API and the referrers tag schema
 * (`sha256-<hex>`, what GHCR and registries without the API serve), merged; and the manifests and
 * blobs they point at. Every answer is parsed with zod: anything else is not a candidate.
 */
export const MEDIA = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  simpleSigning: 'application/vnd.dev.cosign.simplesigning.v1+json',
} as const;

export const COSIGN_SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';

/** Limits. Security: a registry (or whoever can push to it) cannot make a deploy read without end. */
export const LIMITS = {
  manifestBytes: 256 * 1024,
  bundleBytes: 1024 * 1024,
  signaturePayloadBytes: 64 * 1024,
  candidates: 32,
} as const;

const DIGEST = z.string().check(z.regex(/^sha256:[0-9a-f]{64}$/));
// A bounded string, named: spelled out, the nested check would hide the descriptor's field names.
const upTo = (max: number) => z.string().check(z.maxLength(max));

export const descriptorSchema = z.looseObject({
  mediaType: upTo(256),
  digest: DIGEST,
  size: z.int().check(z.nonnegative()),
  artifactType: z.optional(upTo(256)),
  annotations: z.optional(z.record(upTo(256), upTo(64 * 1024))),
  platform: z.optional(z.looseObject({ os: upTo(64), architecture: upTo(64), variant: z.optional(upTo(64)) })),
});
export type Descriptor = z.infer<typeof descriptorSchema>;

export const indexSchema = z.looseObject({
  schemaVersion: z.literal(2),
  manifests: z.array(descriptorSchema).check(z.maxLength(4096)),
});

export const manifestSchema = z.looseObject({
  schemaVersion: z.literal(2),
  artifactType: z.optional(upTo(256)),
  config: descriptorSchema,
  layers: z.array(descriptorSchema).check(z.maxLength(64)),
  subject: z.optional(descriptorSchema),
});
export type Manifest = z.infer<typeof manifestSchema>;

/** JSON parsed with a schema, or null: what does not parse is not a candidate, never a crash. */
export function parseJson<T>(bytes: Buffer, schema: z.core.$ZodType<T>): T | null {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    return null;
  }
  const parsed = z.safeParse(schema, value);
  return parsed.success ? parsed.data : null;
}

/** The referrers tag of a digest: `sha256:<hex>` → `sha256-<hex>`. */
export const referrersTag = (digest: string): string => digest.replace(':', '-');

/**
 * Every referrer of `digest` whose artifact type matches (or is not announced, to be decided from
 * its manifest), from both the API and the tag fallback, once each. More than LIMITS.candidates is a
 * refusal: a registry flooding the agent with candidates would otherwise decide how long it spends.
 */
export async function findReferrers(
  client: RegistryClient,
  digest: string,
  wanted: (artifactType: string) => boolean,
): Promise<Descriptor[]> {
  const [api, tag] = await Promise.all([
    client.referrers(digest, LIMITS.manifestBytes),
    client.manifest(referrersTag(digest), [MEDIA.ociIndex], LIMITS.manifestBytes),
  ]);
  const found = new Map<string, Descriptor>();
  for (const answer of [api, tag]) {
    if (answer === null) continue;
    const index = parseJson(answer.bytes, indexSchema);
    if (index === null) continue;
    for (const d of index.manifests) {
      // An entry that names no type (or the empty config's, as cosign 3 writes) is kept: its
      // manifest's own artifactType decides (candidates.ts).
      if (d.artifactType !== undefined && !UNDECIDED_ARTIFACT_TYPES.has(d.artifactType) && !wanted(d.artifactType)) continue;
      found.set(d.digest, d);
    }
  }
  if (found.size > LIMITS.candidates) {
    throw unverified(
      `the registry lists ${found.size} candidate attestations for ${digest}, more than the ${LIMITS.candidates} allowed`,
    );
  }
  return [...found.values()];
}

/** A referrer's manifest, by digest (checked), or null when it is not an artifact manifest. */
export async function artifactManifest(client: RegistryClient, digest: string): Promise<Manifest | null> {
  const fetched = await client.manifest(digest, [MEDIA.ociManifest], LIMITS.manifestBytes);
  return fetched === null ? null : parseJson(fetched.bytes, manifestSchema);
}
