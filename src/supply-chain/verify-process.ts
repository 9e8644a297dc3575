import { spawn } from 'node:child_process';
import type { VerificationPolicy } from '../config/verification.js';
import { AgentError, type ErrorCode } from '../errors.js';
import * as z from '../zod.js';
import { type Provenance, provenanceSchema } from './provenance.js';
import type { ImageVerifier, VerifyRequest } from './verifier.js';

/**
 * The supply-chain check run in a child process of its own, one per deploy, ended once it has answered.
 *
 * Memory: the check loads @sigstore/verify, its protobuf types and the parsed trusted root; loaded in
 * the agent's own heap they stayed there for its life (103.5 MiB after verified deploys, over the
 * 100 MiB bound). A process that exits gives all of it back. Not a worker thread: measured on
 * Node.js 24, a terminated worker left 30 to 40 MiB of RSS behind in the agent (its thread's malloc
 * arena and stack, the code pages it touched), more than the libraries it was meant to take away.
 *
 * What crosses the boundary is plain JSON over the IPC channel (the policy, the request; the
 * provenance or the error's status, reason and code), checked on the way back, so a deploy sees the
 * same AgentError (422 naming the check, 502 for the registry, 503 for a trusted root that does not
 * load) as when the check ran in the agent's thread. Bounded: the deploy's abort (its deadline, the
 * caller gone) kills the process, and the deploy sees the abort's own reason, as before.
 */
export interface VerifyJob {
  readonly policy: WirePolicy;
  readonly request: VerifyRequest;
}

/** The policy as JSON: the cosign public key as PEM (a KeyObject does not cross a process boundary). */
export type WirePolicy =
  | Exclude<VerificationPolicy, { mode: 'cosign-key' }>
  | { readonly mode: 'cosign-key'; readonly publicKeyPem: string; readonly fingerprint: string };

/** What the child sends back: one message, then it exits. */
export type VerifyReply =
  | { readonly ok: true; readonly provenance: Provenance }
  | {
      readonly ok: false;
      readonly status: number;
      readonly reason: string;
      readonly code: string;
      readonly cause: string | null;
    };

/** The child's only argument (src/main.ts). Not a command for operators: it needs the IPC channel. */
export const VERIFY_CHILD_ARGUMENT = '--internal-verify-image';

const replySchema = z.discriminatedUnion('ok', [
  z.strictObject({ ok: z.literal(true), provenance: provenanceSchema }),
  z.strictObject({
    ok: z.literal(false),
    status: z.int().check(z.minimum(400), z.maximum(599)),
    reason: z.string().check(z.maxLength(4096)),
    code: z.string().check(z.maxLength(64)),
    cause: z.nullable(z.string().check(z.maxLength(4096))),
  }),
]);

export function createVerifierInProcess(policy: VerificationPolicy): ImageVerifier | null {
  if (policy.mode === 'none') return null;
  const wire: WirePolicy =
    policy.mode === 'cosign-key'
      ? {
          mode: 'cosign-key',
          publicKeyPem: policy.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
          fingerprint: policy.fingerprint,
        }
      : policy;
  return { verify: (request, signal) => verifyInChild({ policy: wire, request }, signal) };
}

export function verifyInChild(job: VerifyJob, signal: AbortSignal): Promise<Provenance> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<Provenance>((resolve, reject) => {
    const [command = process.execPath, ...args] = childCommand();
    // Security: no environment. The agent's secrets (service token, registry password) stay in the
    // agent; the check gets the one credential it needs, the registry's, in its job.
    const child = spawn(command, args, { env: {}, stdio: ['ignore', 'ignore', 'inherit', 'ipc'], serialization: 'json' });
    let settled = false;
    const settle = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      outcome();
    };
    const onAbort = (): void => settle(() => reject(signal.reason));
    signal.addEventListener('abort', onAbort, { once: true });
    child.once('message', (message: unknown) => settle(() => answer(message, resolve, reject)));
    // `on`, not `once`: a child that cannot start emits a second error, the job's send failing (EPIPE),
    // and an 'error' event nobody listens to is an uncaught exception, which ends the agent.
    child.on('error', (error) =>
      settle(() =>
        reject(
          new AgentError(500, `internal error: the image verifier could not be started (${error.message}); nothing was deployed`),
        ),
      ),
    );
    child.once('exit', (code, killedBy) =>
      settle(() =>
        reject(
          new AgentError(
            500,
            `internal error: the image verifier stopped (${killedBy ?? `exit code ${code}`}) before it answered; nothing was deployed`,
            { code: 'image_unverified' },
          ),
        ),
      ),
    );
    child.send(job);
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
    const code = reply.data.code as ErrorCode; // written by verify-child.ts from an AgentError's own code
    reject(new AgentError(status, reason, { code, ...(cause === null ? {} : { cause: new Error(cause) }) }));
  }
}

/**
 * What the child runs. In the bundle (CommonJS: import.meta is empty) it is the bundle itself,
 * dist/agent.js, on the agent's Node.js; its entry (src/main.ts) runs the check instead of the agent,
 * so the install stays one file. From source (tests, under tsx) it is verify-child.ts.
 */
function childCommand(): string[] {
  const here: string | undefined = import.meta.url;
  if (typeof here === 'string') {
    return [process.execPath, '--import', 'tsx', new URL('./verify-child.ts', here).pathname, VERIFY_CHILD_ARGUMENT];
  }
  // Without the unit's memory flags: the check is short-lived, and its memory goes with it.
  return [process.execPath, __filename, VERIFY_CHILD_ARGUMENT];
}
