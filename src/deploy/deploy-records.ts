import type { Logger } from 'pino';
import { AgentError, describe } from '../errors.js';
import type { ImageReference } from '../policy/image.js';
import type { AuditLog } from '../state/audit.js';
import type { LastDeploy, StateStore } from '../state/state.js';
import type { DeployContext, RequestContext } from './operations.js';

/**
 * What a deploy writes about itself, and how a write the disk refuses is answered: before the point
 * of no return it ends the deploy with nothing touched (503); after it, it is a warning and the deploy
 * goes on (only the engine can fail it there). The sequence itself is in deployer.ts.
 */

/**
 * Written right after the journal's first entry and before anything is done: no deploy ever happens
 * unrecorded. If this line cannot be written the deploy is refused; an agent killed between the two
 * leaves the journal, and recovery records the request as interrupted. The HTTP layer appends the
 * outcome line.
 */
export async function recordAccepted(audit: AuditLog, context: RequestContext, image: string | null): Promise<void> {
  try {
    await audit.accepted({ requestId: context.requestId, clientId: context.clientId, endpoint: context.endpoint, image });
  } catch (error) {
    throw new AgentError(503, `refused: ${describe(error)}; nothing is deployed unrecorded`, {
      code: 'audit_unwritable',
      cause: error,
    });
  }
}

export interface Outcome {
  readonly outcome: LastDeploy['outcome'];
  readonly reason: string | null;
  readonly digest: string | null;
}

/**
 * Records how the deploy ended (and, when it succeeded, adds it to the history behind previous_image
 * and image retention). The state holds it at once; a write the disk refuses is a warning.
 */
export async function remember(
  deps: { readonly store: StateStore; readonly logger: Logger },
  image: ImageReference,
  context: DeployContext,
  { outcome, reason, digest }: Outcome,
  warnings: string[],
): Promise<void> {
  const at = new Date().toISOString();
  const last = { image: image.reference, outcome, reason, at, request_id: context.requestId, image_digest: digest };
  await (outcome === 'deployed' && digest !== null
    ? deps.store.recordDeployed({ image: image.reference, digest, at, request_id: context.requestId }, last)
    : deps.store.setLastDeploy(last)
  ).catch((error: unknown) => {
    deps.logger.error({ err: error }, 'could not record the last deploy');
    warnings.push(`the state file could not be written (${describe(error)}); the status is right until the agent restarts`);
  });
}

/** A write the disk refused before the point of no return: the deploy ends, with nothing touched. */
export function diskRefusal(what: string, error: unknown): AgentError {
  const code = (error as NodeJS.ErrnoException).code ?? describe(error);
  return new AgentError(
    503,
    `refused: ${what} could not be written (${code}); nothing is deployed unrecorded, the running container was not touched`,
    { code: 'audit_unwritable', cause: error },
  );
}

/** The error of a failed deploy, with what else went wrong on the way. */
export function withWarnings(error: unknown, warnings: readonly string[]): unknown {
  if (warnings.length === 0 || !(error instanceof AgentError)) return error;
  return new AgentError(error.status, `${error.reason} Also: ${warnings.join('; ')}.`, { code: error.code, cause: error });
}
