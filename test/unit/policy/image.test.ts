import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AgentError } from '../../../src/errors.js';
import { type ImagePolicy, parseImageReference, parseRepository } from '../../../src/policy/image.js';

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
    assert.deepEqual(parseImageReference(`${REPO}:v1.2.3`, prod), {
      repository: REPO,
      tag: 'v1.2.3',
      digest: null,
      reference: `${REPO}:v1.2.3`,
    });
    assert.deepEqual(parseImageReference(`${REPO}:sha-0a1b2c3@${DIGEST}`, prod), {
      repository: REPO,
      tag: 'sha-0a1b2c3',
      digest: DIGEST,
      reference: `${REPO}:sha-0a1b2c3@${DIGEST}`,
    });
    assert.equal(parseImageReference(`${REPO}:latest`, dev).tag, 'latest');
  });

  it('refuses another repository, however close', () => {
    for (const other of [
      'ghcr.io/ceerkle/dreichor-trading/runtime-evil:v1',
      'ghcr.io/ceerkle/dreichor-trading/runtim:v1',
      'ghcr.io/ceerkle/dreichor-trading/runtime/x:v1',
      'ghcr.io/ceerkle/dreichor-trading:v1',
      'docker.io/ceerkle/dreichor-trading/runtime:v1',
      'evil.io/ghcr.io/ceerkle/dreichor-trading/runtime:v1',
      'ghcr.io:443/ceerkle/dreichor-trading/runtime:v1',
    ]) {
      refused(other, dev, /not from the repository/);
    }
    // Shorthands without a registry host are not even references here.
    for (const shorthand of ['ceerkle/dreichor-trading/runtime:v1', 'runtime:v1'])
      refused(shorthand, dev, /not a valid image reference/);
  });

  it('never reveals the allowed repository in a refusal', () => {
    for (const other of ['ghcr.io/x/y:v1', `${REPO}-evil:v1`, 'not a reference']) {
      assert.throws(
        () => parseImageReference(other, dev),
        (e: unknown) => e instanceof AgentError && e.status === 400 && !e.reason.includes(REPO),
        other,
      );
    }
  });

  it('refuses a missing tag, "latest" in prod, and malformed references', () => {
    refused(REPO, dev, /must name a tag/);
    refused(`${REPO}@${DIGEST}`, dev, /must name a tag/);
    for (const tag of ['latest', 'LATEST', 'Latest', 'lAtEsT']) refused(`${REPO}:${tag}`, prod, /latest/);
    for (const bad of [
      '',
      ' ',
      `${REPO}:`,
      `${REPO}:v1 `,
      ` ${REPO}:v1`,
      `${REPO}:v1\n`,
      `${REPO}:v1\0`,
      `${REPO}:-v1`,
      `${REPO}:.v1`,
      `${REPO}:${'a'.repeat(129)}`,
      `${REPO}:v1@sha256:abc`,
      `${REPO}:v1@sha256:${'A'.repeat(64)}`,
      `${REPO}:v1@sha512:${'a'.repeat(128)}`,
      `${REPO}:v1@md5:${'a'.repeat(32)}`,
      `${REPO}:v1:v2`,
      `${REPO.toUpperCase()}:v1`,
      'x'.repeat(600),
    ]) {
      refused(bad);
    }
  });

  // These took seconds to hours in the backtracking grammar of @swimlane/docker-reference, which the
  // agent used before: a deploy body could pin a CPU. The bound is the test's timeout, not a timing.
  it('answers in linear time on inputs built to make a backtracking parser explode', { timeout: 10_000 }, () => {
    const shapes = (n: number) => [
      `${REPO}:-${'v1'.repeat(n)}`,
      `${REPO}:${'a'.repeat(n)}!`,
      `${REPO}:${'a-'.repeat(n)}`,
      `${REPO}/${'a-'.repeat(n)}!:v1`,
      `${REPO}/${'a_'.repeat(n)}_:v1`,
      `${'a.'.repeat(n)}!/x:v1`,
      `${REPO}:${'a'.repeat(n)}@sha256:${'a'.repeat(n)}!`,
      `${'ghcr.io/'.repeat(n)}x:v1`,
    ];
    for (const n of [16, 64, 200]) {
      for (const input of shapes(n)) {
        for (let i = 0; i < 100; i += 1) {
          try {
            parseImageReference(input.slice(0, 512), dev);
          } catch {
            // refused, as it should be
          }
          parseRepository(input.slice(0, 255));
        }
      }
    }
  });

  it('parses configured repositories and nothing else', () => {
    assert.deepEqual(parseRepository(REPO), { domain: 'ghcr.io', path: 'ceerkle/dreichor-trading/runtime' });
    assert.deepEqual(parseRepository('127.0.0.1:5000/dreichor/runtime'), { domain: '127.0.0.1:5000', path: 'dreichor/runtime' });
    assert.deepEqual(parseRepository('localhost/a__b/c-d.e'), { domain: 'localhost', path: 'a__b/c-d.e' });
    for (const bad of [
      `${REPO}:v1`,
      `${REPO}@${DIGEST}`,
      'owner/name',
      'name',
      '',
      'ghcr.io/X/y',
      'ghcr.io/',
      'ghcr.io//x',
      'ghcr.io/x/',
      'ghcr.io/-x',
      'ghcr.io/x_',
      'ghcr.io/a___b',
      'ghcr.io:99999/x',
      '-ghcr.io/x',
      'ghcr.io:80:80/x',
    ]) {
      assert.equal(parseRepository(bad), null, bad);
    }
  });
});
