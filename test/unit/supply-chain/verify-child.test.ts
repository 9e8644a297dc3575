import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AttestationPolicy } from '../../../src/config/verification.js';
import { runVerifyJob } from '../../../src/supply-chain/verify-child.js';
import type { VerifyReply } from '../../../src/supply-chain/verify-process.js';
import { cosignKey } from '../../support/cosign.js';

/**
 * The verifier child's own side (verify-child.ts), run in this process: what it answers for each job.
 * The agent spawns it with no environment, so a mutation tool's switch never reaches the real child:
 * its logic is tested here. The real child, end to end, is in verify-process.test.ts.
 */
const CLOSED = '127.0.0.1:1/dreichor/runtime'; // nothing listens on port 1: refused at once
const REQUEST = {
  repository: CLOSED,
  tagDigest: `sha256:${'1'.repeat(64)}`,
  runDigest: `sha256:${'1'.repeat(64)}`,
  credentials: null,
};
const ATTESTATION: AttestationPolicy = {
  mode: 'github-attestation',
  trustedRoots: [],
  repository: 'ceerkle/dreichor-trading',
  signerWorkflow: 'ceerkle/dreichor-trading/.github/workflows/build.yml',
  sourceRefs: null,
  predicateType: 'https://slsa.dev/provenance/v1',
  issuer: 'https://token.actions.githubusercontent.com',
};

const refusal = (reply: VerifyReply) => {
  assert.equal(reply.ok, false, JSON.stringify(reply));
  return reply as Extract<VerifyReply, { ok: false }>;
};

describe('the verifier child answering a job', () => {
  it('reads a cosign-key policy from its PEM and checks with it: the registry refusal, as an AgentError answers it', async () => {
    const key = cosignKey();
    const reply = refusal(
      await runVerifyJob({
        policy: { mode: 'cosign-key', publicKeyPem: key.publicKeyPem, fingerprint: 'f'.repeat(64) },
        request: REQUEST,
      }),
    );
    assert.equal(reply.status, 502);
    assert.equal(reply.code, 'registry_refused');
    assert.match(
      reply.reason,
      /^the registry could not be read for verification \(127\.0\.0\.1:1, GET \/v2\/dreichor\/runtime\//,
    );
    assert.equal(reply.cause, null);
  });

  it('checks a github-attestation policy as it came, with the registry credentials of the job', async () => {
    const reply = refusal(
      await runVerifyJob({
        policy: ATTESTATION,
        request: { ...REQUEST, credentials: { username: 'u', password: 'p', serveraddress: 'x' } },
      }),
    );
    assert.deepEqual([reply.status, reply.code], [502, 'registry_refused']);
  });

  it("answers a set-up failure with its cause's message, capped at 4096 characters", async () => {
    const broken = (keyDetails: string) => ({
      policy: { ...ATTESTATION, trustedRoots: [{ tlogs: [{ publicKey: { keyDetails } }] }] },
      request: REQUEST,
    });
    const short = refusal(await runVerifyJob(broken('NOT_A_KEY')));
    assert.deepEqual([short.status, short.code], [503, 'image_unverified']);
    assert.equal(short.cause, 'Unrecognized enum value NOT_A_KEY for enum PublicKeyDetails');
    const long = refusal(await runVerifyJob(broken('q'.repeat(5000))));
    assert.equal(long.cause, `Unrecognized enum value ${'q'.repeat(5000)} for enum PublicKeyDetails`.slice(0, 4096));
  });

  it('refuses with IMAGE_VERIFICATION=none: a 500, nothing checked', async () => {
    assert.deepEqual(await runVerifyJob({ policy: { mode: 'none' }, request: REQUEST }), {
      ok: false,
      status: 500,
      reason: 'internal error: the image verifier was started with IMAGE_VERIFICATION=none',
      code: 'internal',
      cause: null,
    });
  });

  it('answers a job of another shape, or a bug, as a bare 500 whose details stay in its cause (capped)', async () => {
    const jobs: [string, unknown][] = [
      ['nothing', undefined],
      ['a policy without a mode', { policy: {}, request: REQUEST }],
      ['a policy that is null', { policy: null, request: REQUEST }],
      ['a request with another field', { policy: ATTESTATION, request: { ...REQUEST, extra: 1 } }],
      ['a request without a digest', { policy: ATTESTATION, request: { ...REQUEST, runDigest: undefined } }],
      ['credentials as a string', { policy: ATTESTATION, request: { ...REQUEST, credentials: 'u:p' } }],
      ['a cosign key that is no PEM', { policy: { mode: 'cosign-key', publicKeyPem: 'no', fingerprint: 'f' }, request: REQUEST }],
    ];
    for (const [what, job] of jobs) {
      const reply = refusal(await runVerifyJob(job));
      assert.deepEqual([reply.status, reply.reason, reply.code], [500, 'internal error', 'internal'], what);
      // zod's list of what is wrong, or the key's own error: not a TypeError of a check that read what it had not checked.
      assert.match(reply.cause ?? '', what.startsWith('a cosign key') ? /^error:/ : /^\[/, what);
    }
    const huge = refusal(await runVerifyJob({ policy: ATTESTATION, request: { ...REQUEST, ['k'.repeat(5000)]: 1 } }));
    assert.equal(huge.cause?.length, 4096);
    assert.match(huge.cause ?? '', /^\[\s*\{/, "zod's own message, cut");
  });
});
