import type { Response } from 'express';
import type { Logger } from 'pino';
import { AgentError, describe, type ErrorCode } from '../errors.js';
import type { AuditLog, Outcome } from '../state/audit.js';
import type { RefusalThrottle } from './refusals.js';

/**
 * The one way a response leaves the agent. For the mutating endpoints it first appends the request's
 * audit line and waits until it is on disk, so no answer is ever given for an unrecorded request.
 */
export interface AuditContext {
  readonly requestId: string;
  readonly endpoint: string;
  readonly startedAt: number;
  /** The requested image, once the body was read. */
  image: string | null;
  /** The client id sent with a request that failed authentication, for forensics. */
  claimedClientId: string | null;
  /**
   * A deploy that answered 200: the digest its tag pointed at and the image's own. On its audit line,
   * so that a lost state.json can be rebuilt from the log (state-rebuild).
   */
  digests?: { readonly tag: string; readonly image: string };
}

export type ErrorBody = { readonly status: 'error'; readonly reason: string };
export type Reply = (res: Response, status: number, body: object, code?: ErrorCode) => Promise<void>;

const AUDIT = 'audit';
const CLIENT = 'clientId';

export function setAuditContext(res: Response, context: AuditContext): void {
  res.locals[AUDIT] = context;
}

export function auditContext(res: Response): AuditContext | undefined {
  return res.locals[AUDIT] as AuditContext | undefined;
}

/** Marks the request as authenticated by this client id (auth.ts, once every check has passed). */
export function setClientId(res: Response, clientId: string): void {
  res.locals[CLIENT] = clientId;
}

/** The client id that authenticated the request, or null when none did. */
export function clientIdOf(res: Response): string | null {
  const id: unknown = res.locals[CLIENT];
  return typeof id === 'string' ? id : null;
}

/** For handlers behind authentication: the caller. Its absence is a bug, never a request's doing. */
export function authenticatedClient(res: Response): string {
  const id = clientIdOf(res);
  if (id === null)
    throw new AgentError(500, 'internal error: a request reached a handler without authentication', { code: 'internal' });
  return id;
}

function outcomeOf(status: number, body: object, code: ErrorCode | undefined): Outcome {
  if (status === 200) return 'status' in body && body.status === 'stopped' ? 'stopped' : 'deployed';
  if (code === 'caller_gone') return 'abandoned';
  return status < 500 ? 'refused' : 'failed';
}

export function createReply(audit: AuditLog, refusals: RefusalThrottle, logger: Logger): Reply {
  return async (res, status, body, code) => {
    const context = auditContext(res);
    const clientId = clientIdOf(res);
    // A refusal before authentication beyond the rate is counted for a summary line, not written
    // alone: see refusals.ts. One that passed authentication is always written alone.
    const counted = context !== undefined && clientId === null && !refusals.admit();
    if (context !== undefined && counted) await refusals.count({ endpoint: context.endpoint, status });
    if (context !== undefined && !counted) {
      const reason = 'reason' in body && typeof body.reason === 'string' ? body.reason : null;
      try {
        await audit.outcome({
          requestId: context.requestId,
          clientId,
          // Who tried, when authentication failed: forensics only, never trusted.
          claimedClientId: clientId === null ? context.claimedClientId : null,
          endpoint: context.endpoint,
          image: context.image,
          outcome: outcomeOf(status, body, code),
          status,
          reason,
          durationMs: Date.now() - context.startedAt,
          // Supply chain: who built what was deployed, on the deploy's outcome line.
          ...('provenance' in body && typeof body.provenance === 'object' && body.provenance !== null
            ? { provenance: body.provenance }
            : {}),
          ...(status === 200 && context.digests !== undefined ? { digests: context.digests } : {}),
        });
      } catch (error) {
        logger.error({ err: error, requestId: context.requestId }, 'audit line not written');
        if (status === 200) {
          // The action happened; say so, and say that it is unrecorded, rather than a plain success.
          status = 500;
          body = {
            status: 'error',
            reason: `the request succeeded (${JSON.stringify(body)}) but its audit line could not be written: ${describe(error)}`,
          } satisfies ErrorBody;
        }
      }
    }
    // A caller that went away gets nothing; the audit line above is what remains of its request.
    if (res.headersSent || res.destroyed) return;
    res.status(status).json(body);
  };
}
