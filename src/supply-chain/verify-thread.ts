import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { z } from 'zod';
import type { VerificationPolicy } from '../config/verification.js';
import { AgentError } from '../errors.js';
import { createImageVerifier, type VerifyRequest } from './verifier.js';
import type { VerifyReply } from './verify-worker.js';

/**
 * The worker side of verify-worker.ts: runs one supply-chain check with the job it was started with,
 * posts the outcome, and is terminated. It needs no abort signal of its own: the agent terminates
 * the worker when the deploy is abandoned.
 */
const jobSchema = z.object({
  policy: z.custom<VerificationPolicy>((p) => typeof p === 'object' && p !== null && 'mode' in p),
  request: z.strictObject({
    repository: z.string(),
    tagDigest: z.string(),
    index: z.boolean(),
    credentials: z.custom<VerifyRequest['credentials']>((c) => c === null || typeof c === 'object'),
  }),
});

export async function runVerifyJob(data: unknown): Promise<VerifyReply> {
  try {
    const job = jobSchema.parse(data);
    const verifier = createImageVerifier(job.policy);
    if (verifier === null)
      throw new AgentError(500, 'internal error: the image verifier was started with IMAGE_VERIFICATION=none');
    return { ok: true, provenance: await verifier.verify(job.request, new AbortController().signal) };
  } catch (error) {
    if (!(error instanceof AgentError)) throw error; // a bug: the worker's 'error' event carries it to the agent
    const cause = error.cause === undefined ? null : error.cause instanceof Error ? error.cause.message : String(error.cause);
    return { ok: false, status: error.status, reason: error.reason, code: error.code, cause: cause?.slice(0, 4096) ?? null };
  }
}

if (!isMainThread && parentPort !== null) {
  const port = parentPort;
  void runVerifyJob(workerData).then((reply) => port.postMessage(reply));
}
