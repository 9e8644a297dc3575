import { createHash } from 'node:crypto';
import * as z from '../zod.js';

/** The Docker engine's answers the agent depends on, checked at the boundary (docker.ts and its src/engine/ helpers). */

const labelsSchema = z.pipe(
  z.nullish(z.record(z.string(), z.string())),
  z.transform((l) => l ?? {}),
);

export const containerInspectSchema = z.object({
  Id: z.string(),
  // The id of the image it was created from (Config.Image is the reference asked for).
  Image: z.string(),
  Name: z.string(),
  State: z.object({
    Running: z.boolean(),
    Status: z.string(),
    ExitCode: z.number(),
    StartedAt: z.optional(z.string()),
    Health: z.nullish(z.object({ Status: z.string() })),
  }),
  Config: z.object({ Image: z.string(), Labels: labelsSchema }),
  HostConfig: z.nullish(z.object({ RestartPolicy: z.nullish(z.object({ Name: z.optional(z.string()) })) })),
});

export const imageInspectSchema = z.object({
  Id: z.string(),
  // Docker 28 with the containerd image store: the manifest or index the image is; its digest is the id.
  Descriptor: z.nullish(z.object({ digest: z.string() })),
  Config: z.nullish(z.object({ Healthcheck: z.nullish(z.object({ Test: z.nullish(z.array(z.string())) })) })),
});

export const containerListSchema = z.array(
  z.object({ Id: z.string(), Names: z.array(z.string()), State: z.string(), Labels: labelsSchema }),
);

export const containerImagesSchema = z.array(z.object({ Id: z.string(), ImageID: z.string(), Labels: labelsSchema }));

export const imageDeleteSchema = z.array(z.object({ Untagged: z.optional(z.string()), Deleted: z.optional(z.string()) }));

export const pullEventSchema = z.object({
  status: z.optional(z.string()),
  error: z.optional(z.string()),
  errorDetail: z.optional(z.object({ message: z.optional(z.string()) })),
});

/** An event of the engine's log (GET /events): for an image, the reference it is about. */
export const imageEventSchema = z.object({
  id: z.optional(z.string()),
  Actor: z.nullish(z.object({ ID: z.optional(z.string()) })),
});

export const createAnswerSchema = z.object({ Id: z.string() });

export const distributionSchema = z.object({
  Descriptor: z.object({
    mediaType: z.string(),
    digest: z.string().check(z.regex(/^sha256:[0-9a-f]{64}$/, 'not a sha256 digest')),
  }),
});
export const INDEX_MEDIA_TYPES: ReadonlySet<string> = new Set([
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
]);

/**
 * What runs from an image (ImageInfo.content). On the classic store the id is the config's digest.
 * On the containerd store the id is the manifest's or index's own digest, which differs between an
 * index and the manifest the engine runs from it; there, the config the engine reports (for an
 * index: its platform's), the layers' content digests and the platform say what runs.
 */
export function contentOf(id: string, descriptorDigest: string | undefined, raw: unknown): string {
  if (descriptorDigest !== id || typeof raw !== 'object' || raw === null) return id;
  const r = raw as Record<string, unknown>;
  const what = JSON.stringify([
    r['Config'] ?? null,
    r['RootFS'] ?? null,
    r['Os'] ?? null,
    r['Architecture'] ?? null,
    r['Variant'] ?? null,
  ]);
  return `sha256:${createHash('sha256').update(what).digest('hex')}`;
}
