import { parseQualifiedName } from '@swimlane/docker-reference';
import { badRequest } from './errors.js';

/**
 * Image-reference policy: a pure module. The grammar is Docker's own (distribution/reference), via
 * @swimlane/docker-reference; the policy on top is ours. Every function here rejects; none repairs.
 */
export interface ImageReference {
  /** Exactly the configured IMAGE_REPOSITORY. */
  readonly repository: string;
  readonly tag: string;
  /** `sha256:<64 hex>` when the caller pinned the image, else null. */
  readonly digest: string | null;
  /** The reference as the caller wrote it, which is also its canonical form. */
  readonly reference: string;
}

export interface ImagePolicy {
  readonly repository: string;
  readonly environment: 'dev' | 'prod';
}

export const MAX_REFERENCE_LENGTH = 512;
const SHA256_DIGEST = /^sha256:[0-9a-f]{64}$/;

/** Parses a configured repository name (no tag, no digest). Null when it is not one. */
export function parseRepository(value: string): { domain: string; path: string } | null {
  let parsed;
  try {
    parsed = parseQualifiedName(value);
  } catch {
    return null;
  }
  if (parsed.domain === undefined || parsed.repository === undefined) return null;
  if (parsed.tag !== undefined || parsed.digest !== undefined) return null;
  // The domain must look like a registry host, so "owner/name" is never read as a host "owner".
  if (!parsed.domain.includes('.') && !parsed.domain.includes(':') && parsed.domain !== 'localhost') return null;
  if (`${parsed.domain}/${parsed.repository}` !== value) return null;
  return { domain: parsed.domain, path: parsed.repository };
}

/**
 * Checks a requested image against the policy: `<IMAGE_REPOSITORY>:<tag>` with an optional
 * `@sha256:<64 hex>`. Throws a 400 AgentError naming what is wrong.
 */
export function parseImageReference(input: string, policy: ImagePolicy): ImageReference {
  if (input.length === 0) throw badRequest('image must not be empty');
  if (input.length > MAX_REFERENCE_LENGTH) throw badRequest(`image must be at most ${MAX_REFERENCE_LENGTH} characters`);

  let parsed;
  try {
    parsed = parseQualifiedName(input);
  } catch {
    throw badRequest('image is not a valid image reference (expected <repository>:<tag>)');
  }
  const repository = parsed.domain === undefined ? parsed.repository : `${parsed.domain}/${parsed.repository ?? ''}`;

  // Security: exact string equality, never a prefix or a normalised form. "ghcr.io/owner/runtime-evil",
  // "ghcr.io/owner/runtime/../x" or a docker.io shorthand must not pass for the configured repository.
  // The reason does not repeat the allowed repository: whoever needs it has the configuration.
  if (repository !== policy.repository) {
    throw badRequest('image is not from the repository this agent deploys from');
  }
  // The agent never infers a tag: an untagged reference would silently mean "latest".
  if (parsed.tag === undefined) {
    throw badRequest('image must name a tag (<repository>:<tag>); the agent never assumes "latest"');
  }
  if (policy.environment === 'prod' && parsed.tag.toLowerCase() === 'latest') {
    throw badRequest('the "latest" tag is not allowed in prod: deploy an immutable tag');
  }
  const digest = parsed.digest ?? null;
  if (digest !== null && !SHA256_DIGEST.test(digest)) {
    throw badRequest('image digest must be @sha256: followed by 64 lowercase hex characters');
  }
  const reference = `${repository}:${parsed.tag}${digest === null ? '' : `@${digest}`}`;
  if (reference !== input) throw badRequest('image is not in canonical form <repository>:<tag>[@sha256:<digest>]');
  return { repository, tag: parsed.tag, digest, reference };
}
