import { badRequest } from '../errors.js';

/**
 * Image-reference policy: a pure module. The grammar is Docker's (distribution/reference), restricted
 * to what the agent accepts: `<domain>/<path>:<tag>` with an optional `@sha256:<64 hex>`. Every
 * function here rejects; none repairs.
 *
 * Security: the input comes from a request body, so every check runs in linear time. The string is
 * split at its fixed separators and each part is matched by an anchored pattern whose repetitions
 * cannot overlap (separators and name characters are disjoint sets). Backtracking patterns of the
 * distribution grammar, as in @swimlane/docker-reference, take seconds to hours on inputs of a few
 * dozen characters (test/unit/policy/image.test.ts keeps the cases that did).
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

// distribution/reference: a domain component is alphanumeric with inner dashes; a path component
// is lowercase alphanumeric runs joined by ".", "_", "__" or dashes; a tag is [\w][\w.-]{0,127}.
const DOMAIN_COMPONENT = /^[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?$/;
const PORT = /^[0-9]{1,5}$/;
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const SHA256_DIGEST = /^sha256:[0-9a-f]{64}$/;

function isDomain(value: string): boolean {
  const [host, port, ...rest] = value.split(':');
  if (host === undefined || rest.length > 0) return false;
  if (port !== undefined && (!PORT.test(port) || Number(port) < 1 || Number(port) > 65535)) return false;
  // A registry host has a dot or a port, or is localhost; otherwise "owner/name" would read as a host.
  if (!host.includes('.') && port === undefined && host !== 'localhost') return false;
  return host.split('.').every((c) => DOMAIN_COMPONENT.test(c));
}

/** Parses a configured repository name (no tag, no digest). Null when it is not one. */
export function parseRepository(value: string): { domain: string; path: string } | null {
  if (value.length > 255) return null;
  const slash = value.indexOf('/');
  if (slash === -1) return null;
  const domain = value.slice(0, slash);
  const path = value.slice(slash + 1);
  if (!isDomain(domain) || !path.split('/').every((c) => PATH_COMPONENT.test(c))) return null;
  return { domain, path };
}

/**
 * Checks a requested image against the policy: `<IMAGE_REPOSITORY>:<tag>` with an optional
 * `@sha256:<64 hex>`. Throws a 400 AgentError naming what is wrong.
 */
export function parseImageReference(input: string, policy: ImagePolicy): ImageReference {
  if (input.length === 0) throw badRequest('image must not be empty');
  if (input.length > MAX_REFERENCE_LENGTH) throw badRequest(`image must be at most ${MAX_REFERENCE_LENGTH} characters`);

  const at = input.indexOf('@');
  const named = at === -1 ? input : input.slice(0, at);
  const digest = at === -1 ? null : input.slice(at + 1);
  // The tag separator is the first ":" after the last "/": a ":" before it belongs to a port.
  const colon = named.indexOf(':', named.lastIndexOf('/') + 1);
  const repository = colon === -1 ? named : named.slice(0, colon);
  const tag = colon === -1 ? null : named.slice(colon + 1);

  if (parseRepository(repository) === null) {
    throw badRequest('image is not a valid image reference (expected <repository>:<tag>)');
  }
  // Security: exact string equality, never a prefix or a normalised form. "ghcr.io/owner/runtime-evil",
  // "ghcr.io/owner/runtime/x" or a docker.io shorthand must not pass for the configured repository.
  // The reason does not repeat the allowed repository: whoever needs it has the configuration.
  if (repository !== policy.repository) {
    throw badRequest('image is not from the repository this agent deploys from');
  }
  // The agent never infers a tag: an untagged reference would silently mean "latest".
  if (tag === null) {
    throw badRequest('image must name a tag (<repository>:<tag>); the agent never assumes "latest"');
  }
  if (!TAG.test(tag)) {
    throw badRequest('image tag must be 1 to 128 of [A-Za-z0-9_.-], not starting with "." or "-"');
  }
  if (policy.environment === 'prod' && tag.toLowerCase() === 'latest') {
    throw badRequest('the "latest" tag is not allowed in prod: deploy an immutable tag');
  }
  if (digest !== null && !SHA256_DIGEST.test(digest)) {
    throw badRequest('image digest must be @sha256: followed by 64 lowercase hex characters');
  }
  return { repository, tag, digest, reference: input };
}
