import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { AttestationPolicy, CosignKeyPolicy } from '../../../src/config/verification.js';
import { AgentError } from '../../../src/errors.js';
import { createImageVerifier, type VerifyRequest } from '../../../src/supply-chain/verifier.js';
import { ScriptedRegistry } from '../../support/scripted-registry.js';

/**
 * The check as the deploy calls it (verifier.ts), in the test's own thread: which digests are asked
 * about, the order of its refusals (a repository that does not parse, an abandoned deploy, a verifier
 * that cannot be set up), and that a failed set-up is tried again. The checks themselves are in the
 * attestation and cosign tests; here the registry holds no signature, so a reached check refuses.
 */
const TAG = `sha256:${'1'.repeat(64)}`;
const RUN = `sha256:${'2'.repeat(64)}`;
const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const COSIGN: CosignKeyPolicy = { mode: 'cosign-key', publicKey, fingerprint: `sha256:${'f'.repeat(64)}` };
const attestation = (trustedRoots: AttestationPolicy['trustedRoots']): AttestationPolicy => ({
  mode: 'github-attestation',
  trustedRoots,
  repository: 'o/r',
  signerWorkflow: 'o/r/.github/workflows/build.yml',
  sourceRefs: null,
  predicateType: 'https://slsa.dev/provenance/v1',
  issuer: 'https://token.actions.githubusercontent.com',
});
// sigstore-js refuses this root when it builds its trust material: a log key that is not bytes.
const BROKEN_ROOT = { tlogs: [{ publicKey: { rawBytes: 42 } }] };

let registry: ScriptedRegistry;
before(async () => {
  registry = await ScriptedRegistry.start();
});
after(() => registry.close());
beforeEach(() => registry.reset());
const request = (runDigest = TAG, repository = registry.repository): VerifyRequest => ({
  repository,
  tagDigest: TAG,
  runDigest,
  credentials: null,
});
const failure = async (promise: Promise<unknown> | undefined): Promise<AgentError> => {
  const error = await (promise ?? Promise.resolve('no verifier')).then(
    () => assert.fail('verified'),
    (e: unknown) => e,
  );
  assert.ok(error instanceof AgentError, String(error));
  return error;
};
const asked = () => registry.requests.filter((r) => r.includes('/referrers/')).map((r) => r.slice(-64, -63));

describe('the image verifier as the deploy calls it', () => {
  it('none configured: no verifier', () => {
    assert.equal(createImageVerifier({ mode: 'none' }), null);
  });

  it('asks about the tag once when it runs as it is, about both when an index entry runs', async () => {
    const verifier = createImageVerifier(COSIGN);
    assert.equal((await failure(verifier?.verify(request(), new AbortController().signal))).status, 422);
    assert.deepEqual(asked(), ['1']);
    registry.reset();
    assert.equal((await failure(verifier?.verify(request(RUN), new AbortController().signal))).status, 422);
    assert.deepEqual(asked(), ['1', '2']);
  });

  it('a repository that does not parse is an internal error; an abandoned deploy reads nothing', async () => {
    const verifier = createImageVerifier(COSIGN);
    const bad = await failure(verifier?.verify(request(TAG, 'UPPER/Case'), new AbortController().signal));
    assert.equal(bad.status, 500);
    assert.match(bad.reason, /IMAGE_REPOSITORY does not parse/);
    const gone = new AbortController();
    gone.abort(new AgentError(499, 'the caller went away'));
    const abandoned = await failure(verifier?.verify(request(), gone.signal));
    assert.equal(abandoned.status, 499);
    assert.deepEqual(registry.requests, []);
  });

  it('a trusted root that does not load: a 503 naming the file; the set-up is tried again at the next check', async () => {
    const roots: Record<string, unknown>[] = [BROKEN_ROOT];
    const verifier = createImageVerifier(attestation(roots));
    const error = await failure(verifier?.verify(request(), new AbortController().signal));
    assert.equal(error.status, 503);
    assert.equal(error.code, 'image_unverified');
    assert.match(
      error.reason,
      /^the image verifier could not be set up \(SIGSTORE_TRUSTED_ROOT_FILE: \S.{0,159}\); nothing was deployed$/,
    );
    assert.ok(error.cause !== undefined);
    assert.deepEqual(registry.requests, []);
    // The root is fixed (an empty one loads): the same verifier now reaches the registry.
    roots[0] = {};
    assert.equal((await failure(verifier?.verify(request(), new AbortController().signal))).status, 422);
    assert.deepEqual(asked(), ['1']);
  });
});
