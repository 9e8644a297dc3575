import { Worker } from 'node:worker_threads';
import { z } from 'zod';
import type { VerificationPolicy } from '../config/verification.js';
import { AgentError, type ErrorCode } from '../errors.js';
import { type Provenance, provenanceSchema } from './provenance.js';
import type { ImageVerifier, VerifyRequest } from './verifier.js';

/**
 * The supply-chain check run in a worker thread, one per deploy, terminated once it has answered.
 *
 * Memory: the check loads @sigstore/verify, its protobuf types and the parsed trusted root; loaded in
 * the agent's own heap they stayed there for its life (103.5 MiB after verified deploys, over the
 * 100 MiB bound; see BENCHMARKS.md). A worker is an isolate of its own: terminated, its whole heap
 * is given back. A worker rather than a child process: it starts in about 30 ms, a process in 40 to
 * 200 ms here, and it shares the agent's code pages instead of faulting in its own (measured).
 *
 * What crosses the boundary is a structured clone (the policy, the request; the provenance or the
 * error's status, reason and code), checked on the way back, so a deploy sees the same AgentError
 * (422 naming the check, 502 for the registry, 503 for a trusted root that does not load) as when the
 * check ran in the agent's thread. Bounded: the deploy's abort (its deadline, the caller gone)
 * terminates the worker, its registry connections with it, and the deploy sees the abort's reason.
 */
export interface VerifyJob {
  /** A cosign-key policy's KeyObject is cloned into the worker as one (Node.js documents it). */
  readonly policy: VerificationPolicy;
  readonly request: VerifyRequest;
}

/** What the worker posts back: one message, then it is terminated. */
export type VerifyReply =
  | { readonly ok: true; readonly provenance: Provenance }
  | {
      readonly ok: false;
      readonly status: number;
      readonly reason: string;
      readonly code: string;
      readonly cause: string | null;
    };

const replySchema = z.discriminatedUnion('ok', [
  z.strictObject({ ok: z.literal(true), provenance: provenanceSchema }),
  z.strictObject({
    ok: z.literal(false),
    status: z.number().int().min(400).max(599),
    reason: z.string().max(4096),
    code: z.string().max(64),
    cause: z.string().max(4096).nullable(),
  }),
]);

export function createVerifierInWorker(policy: VerificationPolicy): ImageVerifier | null {
  if (policy.mode === 'none') return null;
  return { verify: (request, signal) => verifyInWorker({ policy, request }, signal) };
}

export function verifyInWorker(job: VerifyJob, signal: AbortSignal): Promise<Provenance> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<Provenance>((resolve, reject) => {
    const worker = new Worker(threadEntry(), { workerData: job });
    let settled = false;
    const settle = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      void worker.terminate();
      outcome();
    };
    const onAbort = (): void => settle(() => reject(signal.reason));
    signal.addEventListener('abort', onAbort, { once: true });
    worker.once('message', (message: unknown) => settle(() => answer(message, resolve, reject)));
    // An exception the check did not turn into an AgentError is a bug: answered 500, as in-thread.
    worker.once('error', (error) => settle(() => reject(error)));
    worker.once('exit', (code) =>
      settle(() =>
        reject(
          new AgentError(
            500,
            `internal error: the image verifier stopped (exit code ${code}) before it answered; nothing was deployed`,
            {
              code: 'image_unverified',
            },
          ),
        ),
      ),
    );
  });
}

function answer(message: unknown, resolve: (p: Provenance) => void, reject: (e: unknown) => void): void {
  const reply = replySchema.safeParse(message);
  if (!reply.success) {
    reject(new AgentError(500, 'internal error: the image verifier answered something unreadable; nothing was deployed'));
  } else if (reply.data.ok) {
    resolve(reply.data.provenance);
  } else {
    const { status, reason, cause } = reply.data;
    const code = reply.data.code as ErrorCode; // written by verify-thread.ts from an AgentError's own code
    reject(new AgentError(status, reason, { code, ...(cause === null ? {} : { cause: new Error(cause) }) }));
  }
}

/**
 * Where the worker starts. In the bundle (CommonJS: import.meta is empty) it is the bundle itself,
 * dist/agent.js, whose entry (src/main.ts) runs the check instead of the agent in a worker thread:
 * the install stays one file. From source (tests, under tsx) it is verify-thread.ts.
 */
function threadEntry(): string | URL {
  const here: string | undefined = import.meta.url;
  return typeof here === 'string' ? new URL('./verify-thread.ts', here) : __filename;
}
