import { createPublicKey } from 'node:crypto';
import type { VerificationPolicy } from '../config/verification.js';
import { AgentError } from '../errors.js';
import * as z from '../zod.js';
import { createImageVerifier, type VerifyRequest } from './verifier.js';
import { VERIFY_CHILD_ARGUMENT, type VerifyReply, type WirePolicy } from './verify-process.js';

/**
 * The child side of verify-process.ts: receives one job on the IPC channel, runs the supply-chain
 * check, sends the outcome and exits. It needs no abort signal of its own: the agent kills it when
 * the deploy is abandoned.
 */
const jobSchema = z.object({
  policy: z.custom<WirePolicy>((p) => typeof p === 'object' && p !== null && 'mode' in p),
  request: z.strictObject({
    repository: z.string(),
    tagDigest: z.string(),
    runDigest: z.string(),
    credentials: z.custom<VerifyRequest['credentials']>((c) => c === null || typeof c === 'object'),
  }),
});

export async function runVerifyJob(data: unknown): Promise<VerifyReply> {
  try {
    const job = jobSchema.parse(data);
    const wire = job.policy;
    const policy: VerificationPolicy =
      wire.mode === 'cosign-key'
        ? { mode: 'cosign-key', publicKey: createPublicKey(wire.publicKeyPem), fingerprint: wire.fingerprint }
        : wire;
    const verifier = createImageVerifier(policy);
    if (verifier === null)
      throw new AgentError(500, 'internal error: the image verifier was started with IMAGE_VERIFICATION=none');
    return { ok: true, provenance: await verifier.verify(job.request, new AbortController().signal) };
  } catch (error) {
    // Anything but an AgentError is a bug: answered 500 without its details, as in the agent's thread.
    if (!(error instanceof AgentError)) {
      const text = error instanceof Error ? error.message : String(error);
      return { ok: false, status: 500, reason: 'internal error', code: 'internal', cause: text.slice(0, 4096) };
    }
    const cause = error.cause === undefined ? null : error.cause instanceof Error ? error.cause.message : String(error.cause);
    return { ok: false, status: error.status, reason: error.reason, code: error.code, cause: cause?.slice(0, 4096) ?? null };
  }
}

if (process.argv.includes(VERIFY_CHILD_ARGUMENT)) {
  const send = process.send?.bind(process);
  if (send === undefined) {
    process.stderr.write(`${VERIFY_CHILD_ARGUMENT} is for the agent itself: it needs the agent's IPC channel\n`);
    process.exit(2);
  }
  process.once('message', (job: unknown) => {
    void runVerifyJob(job).then((reply) => send(reply, () => process.exit(0)));
  });
}
