/**
 * The edges of the image reference policy that a slip in one of its patterns or limits would open:
 * each refused input here differs from an accepted one by one character.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AgentError } from '../../../src/errors.js';
import { MAX_REFERENCE_LENGTH, parseImageReference, parseRepository } from '../../../src/policy/image.js';

const REPO = 'registry.example:5000/dreichor/runtime';
const HEX = 'a'.repeat(64);
const policy = { repository: REPO, environment: 'prod' as const };
const reason = (input: string): string => {
  try {
    parseImageReference(input, policy);
    return 'accepted';
  } catch (e) {
    assert.ok(e instanceof AgentError && e.status === 400, String(e));
    return e.reason;
  }
};

describe('image references at their edges', () => {
  it('a digest is exactly sha256: and 64 lowercase hex characters, nothing before or after', () => {
    assert.equal(reason(`${REPO}:v1@sha256:${HEX}`), 'accepted');
    const bad = 'image digest must be @sha256: followed by 64 lowercase hex characters';
    for (const digest of [`xsha256:${HEX}`, `sha256:${HEX}0`, `sha256:${HEX}\n`, `sha256:${HEX.slice(1)}`, `SHA256:${HEX}`]) {
      assert.equal(reason(`${REPO}:v1@${digest}`), bad, digest);
    }
  });

  it('says what is wrong: empty, too long, a bad tag', () => {
    assert.equal(reason(''), 'image must not be empty');
    const tag = 'v'.repeat(MAX_REFERENCE_LENGTH - REPO.length - 1);
    assert.equal(reason(`${REPO}:${tag.slice(0, 128)}`), 'accepted');
    assert.equal(
      reason(`${REPO}:${'v'.repeat(MAX_REFERENCE_LENGTH - REPO.length)}`),
      `image must be at most ${MAX_REFERENCE_LENGTH} characters`,
    );
    assert.equal(reason(`${REPO}:-v1`), 'image tag must be 1 to 128 of [A-Za-z0-9_.-], not starting with "." or "-"');
  });

  it('a repository: a host with a dot, a port from 1 to 65535, or localhost; path components in the grammar', () => {
    for (const ok of [
      'registry.example/a',
      'registry.example:1/a',
      'registry.example:65535/a',
      'localhost/a',
      'host:5000/a',
      'r.io/a--b',
      'r.io/a__b/c.d',
    ]) {
      assert.ok(parseRepository(ok) !== null, ok);
    }
    for (const bad of [
      'owner/name',
      'registry.example:0/a',
      'registry.example:65536/a',
      'registry.example:5x/a',
      'registry.example:x5/a',
      'registry.example:123456/a',
      'registry.example:1:2/a',
      'reg-.example/a',
      'reg.exa_mple/a',
      'r.io/a___b',
      'r.io/A',
      'r.io',
      `r.io/${'a'.repeat(251)}`,
    ]) {
      assert.equal(parseRepository(bad), null, bad);
    }
    assert.ok(parseRepository(`r.io/${'a'.repeat(250)}`) !== null, 'exactly 255 characters');
  });
});
