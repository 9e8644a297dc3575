import { AgentError } from '../errors.js';
import {
  containerImagesSchema,
  containerInspectSchema,
  containerListSchema,
  contentOf,
  distributionSchema,
  INDEX_MEDIA_TYPES,
  imageDeleteSchema,
  imageInspectSchema,
} from './docker-schemas.js';
import type {
  ContainerImageUse,
  ContainerInfo,
  ContainerSummary,
  ImageInfo,
  ImageRemoval,
  TagResolution,
} from './engine-port.js';

/**
 * The engine's answers (checked by docker-schemas.ts) as the engine port's results: what src/docker.ts
 * hands the deploy story. No engine call here; each function throws if the answer is not one.
 */

// An engine timestamp for "never": "0001-01-01T00:00:00Z".
const never = (t: string | undefined): string | null => (t === undefined || t.startsWith('0001-') ? null : t);

/** GET /distribution/{name}/json: the digest a tag resolves to, and whether it names an index. */
export function tagResolutionOf(raw: unknown, what: string): TagResolution {
  const parsed = distributionSchema.safeParse(raw);
  if (!parsed.success) throw new AgentError(502, `the engine's answer to the ${what} has no manifest digest`);
  return { digest: parsed.data.Descriptor.digest, index: INDEX_MEDIA_TYPES.has(parsed.data.Descriptor.mediaType) };
}

export function imageInfoOf(raw: unknown): ImageInfo {
  const image = imageInspectSchema.parse(raw);
  const test = image.Config?.Healthcheck?.Test ?? [];
  return {
    id: image.Id,
    content: contentOf(image.Id, image.Descriptor?.digest, raw),
    hasHealthcheck: test.length > 0 && test[0] !== 'NONE',
  };
}

export function containerInfoOf(raw: unknown): ContainerInfo {
  const c = containerInspectSchema.parse(raw);
  return {
    id: c.Id,
    name: c.Name.replace(/^\//, ''),
    image: c.Config.Image,
    running: c.State.Running,
    status: c.State.Status,
    exitCode: c.State.ExitCode,
    startedAt: never(c.State.StartedAt),
    health: c.State.Health?.Status ?? null,
    labels: c.Config.Labels,
    imageId: c.Image,
    restartPolicy: c.HostConfig?.RestartPolicy?.Name ?? '',
  };
}

export function containerSummariesOf(raw: unknown): ContainerSummary[] {
  return containerListSchema
    .parse(raw)
    .map((c) => ({ id: c.Id, name: (c.Names[0] ?? '').replace(/^\//, ''), state: c.State, labels: c.Labels }));
}

export function containerImageUsesOf(raw: unknown): ContainerImageUse[] {
  return containerImagesSchema.parse(raw).map((c) => ({ id: c.Id, imageId: c.ImageID, labels: c.Labels }));
}

/** DELETE /images/{name} answered 200: the image's last tag went with its content, or only a tag. */
export function imageRemovalOf(raw: unknown): Extract<ImageRemoval, 'deleted' | 'untagged'> {
  const answer = imageDeleteSchema.safeParse(raw);
  return answer.success && answer.data.some((d) => d.Deleted !== undefined) ? 'deleted' : 'untagged';
}
