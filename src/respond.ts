import type { Response } from 'express';
import type { Logger } from 'pino';
import type { AuditLog } from './audit.js';
import { describe } from './errors.js';
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
}

export type ErrorBody = { readonly status: 'error'; readonly reason: string };
export type Reply = (res: Response, status: number, body: object) => Promise<void>;

const AUDIT = 'audit';

export function setAuditContext(res: Response, context: AuditContext): void {
  res.locals[AUDIT] = context;
}

export function auditContext(res: Response): AuditContext | undefined {
  return res.locals[AUDIT] as AuditContext | undefined;
}

export function clientIdOf(res: Response): string | null {
  const id: unknown = res.locals['clientId'];
  return typeof id === 'string' ? id : null;
}

function outcomeOf(status: number, body: object): string {
  if (status === 200 && 'status' in body && typeof body.status === 'string') return body.status;
  if (status === 499) return 'abandoned';
  return status < 500 ? 'refused' : 'failed';
}

export function createReply(audit: AuditLog, refusals: RefusalThrottle, logger: Logger): Reply {
  return async (res, status, body) => {
    const context = auditContext(res);
    // A refusal before authentication beyond the rate is counted for a summary line, not written
    // alone: see refusals.ts. One that passed authentication is always written alone.
    const counted = context !== undefined && clientIdOf(res) === null && !refusals.admit();
    if (context !== undefined && counted) refusals.count({ endpoint: context.endpoint, status });
    if (context !== undefined && !counted) {
      const reason = 'reason' in body && typeof body.reason === 'string' ? body.reason : null;
      try {
        await audit.append({
          request_id: context.requestId,
          client_id: clientIdOf(res),
          // Who tried, when authentication failed: forensics only, never trusted.
          ...(context.claimedClientId === null || clientIdOf(res) !== null ? {} : { claimed_client_id: context.claimedClientId }),
          endpoint: context.endpoint,
          image: context.image,
          outcome: outcomeOf(status, body),
          status,
          reason,
          duration_ms: Date.now() - context.startedAt,
        });
      } catch (error) {
        logger.error({ err: error, requestId: context.requestId }, 'audit line not written');
        if (status === 200) {
          // The action happened; say so, and say that it is unrecorded, rather than a plain success.
          status = 500;
          body = { status: 'error', reason: `the request succeeded (${JSON.stringify(body)}) but its audit line could not be written: ${describe(error)}` } satisfies ErrorBody;
        }
      }
    }
    // A caller that went away gets nothing; the audit line above is what remains of its request.
    if (res.headersSent || res.destroyed) return;
    res.status(status).json(body);
  };
}
