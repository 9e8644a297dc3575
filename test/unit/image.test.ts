import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AgentError } from '../../src/errors.js';
import { type ImagePolicy, parseImageReference, parseRepository } from '../../src/image.js';

const REPO = 'ghcr.io/ceerkle/dreichor-trading/runtime';
const DIGEST = `sha256:${'0123456789abcdef'.repeat(4)}`;
const dev = { repository: REPO, environment: 'dev' as const };
const prod = { repository: REPO, environment: 'prod' as const };

function refused(input: string, policy: ImagePolicy = dev, reason?: RegExp): void {
  assert.throws(
    () => parseImageReference(input, policy),
    (e: unknown) => e instanceof AgentError && e.status === 400 && (reason === undefined || reason.test(e.reason)),
    input,
  );
}

describe('image reference policy', () => {
  it('accepts <repository>:<tag> and <repository>:<tag>@sha256:<digest>', () => {
    assert.deepEqual(parseImageReference(`${REPO}:v1.2.3`, prod), { repository: REPO, tag: 'v1.2.3', digest: null, reference: `${REPO}:v1.2.3` });
    assert.deepEqual(parseImageReference(`${REPO}:sha-0a1b2c3@${DIGEST}`, prod), { repository: REPO, tag: 'sha-0a1b2c3', digest: DIGEST, reference: `${REPO}:sha-0a1b2c3@${DIGEST}` });
    assert.equal(parseImageReference(`${REPO}:latest`, dev).tag, 'latest');
  });

  it('refuses another repository, however close', () => {
    for (const other of [
      'ghcr.io/ceerkle/dreichor-trading/runtime-evil:v1',
      'ghcr.io/ceerkle/dreichor-trading/runtim:v1',
      'ghcr.io/ceerkle/dreichor-trading/runtime/x:v1',
      'ghcr.io/ceerkle/dreichor-trading:v1',
      'docker.io/ceerkle/dreichor-trading/runtime:v1',
      'ceerkle/dreichor-trading/runtime:v1',
      'evil.io/ghcr.io/ceerkle/dreichor-trading/runtime:v1',
      'ghcr.io:443/ceerkle/dreichor-trading/runtime:v1',
      'runtime:v1',
    ]) {
      refused(other, dev, /not from the repository/);
    }
  });

  it('never reveals the allowed repository in a refusal', () => {
    try {
      parseImageReference('ghcr.io/x/y:v1', dev);
    } catch (e) {
      assert.ok(e instanceof AgentError && !e.reason.includes(REPO));
    }
  });

  it('refuses a missing tag, "latest" in prod, and malformed references', () => {
    refused(REPO, dev, /must name a tag/);
    refused(`${REPO}@${DIGEST}`, dev, /must name a tag/);
    for (const tag of ['latest', 'LATEST', 'Latest', 'lAtEsT']) refused(`${REPO}:${tag}`, prod, /latest/);
    for (const bad of ['', ' ', `${REPO}:`, `${REPO}:v1 `, ` ${REPO}:v1`, `${REPO}:v1\n`, `${REPO}:v1\0`, `${REPO}:-v1`, `${REPO}:.v1`, `${REPO}:${'a'.repeat(129)}`, `${REPO}:v1@sha256:abc`, `${REPO}:v1@sha256:${'A'.repeat(64)}`, `${REPO}:v1@sha512:${'a'.repeat(128)}`, `${REPO}:v1@md5:${'a'.repeat(32)}`, `${REPO}:v1:v2`, `${REPO.toUpperCase()}:v1`, 'x'.repeat(600)]) {
      refused(bad);
    }
  });

  it('parses configured repositories and nothing else', () => {
    assert.deepEqual(parseRepository(REPO), { domain: 'ghcr.io', path: 'ceerkle/dreichor-trading/runtime' });
    assert.deepEqual(parseRepository('127.0.0.1:5000/dreichor/runtime'), { domain: '127.0.0.1:5000', path: 'dreichor/runtime' });
    for (const bad of [`${REPO}:v1`, `${REPO}@${DIGEST}`, 'owner/name', 'name', '', 'ghcr.io/X/y']) {
      assert.equal(parseRepository(bad), null, bad);
    }
  });
});
