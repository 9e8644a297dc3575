import assert from 'node:assert/strict';
import { AgentError } from '../../src/errors.js';
import { chooseEntry, type Platform } from '../../src/supply-chain/platform.js';
import type { Descriptor } from '../../src/supply-chain/referrers.js';
import { OCI_MANIFEST } from './scripted-registry.js';

/** An image index's entries and the platform choice's answers, for the platform tests. */
export const digestOf = (c: string): string => `sha256:${c.repeat(64)}`;

export const entry = (c: string, architecture: string, variant?: string, extra: Partial<Descriptor> = {}): Descriptor => ({
  mediaType: OCI_MANIFEST,
  digest: digestOf(c),
  size: 1,
  platform: { os: 'linux', architecture, ...(variant === undefined ? {} : { variant }) },
  ...extra,
});

export const AMD64: Platform = { os: 'linux', architecture: 'amd64', variant: '' };

/** The digest chosen for `engine` among `entries`. */
export const chosen = (entries: Descriptor[], engine: Platform = AMD64): string =>
  chooseEntry(digestOf('0'), entries, engine).digest;

/** The reason of the 422 that refuses `entries` for `engine`; fails the test when one is chosen. */
export const refused = (entries: Descriptor[], engine: Platform = AMD64): string => {
  try {
    chooseEntry(digestOf('0'), entries, engine);
  } catch (error) {
    assert.ok(error instanceof AgentError && error.status === 422 && error.code === 'no_platform_image', String(error));
    return error.reason;
  }
  return assert.fail('chosen');
};
