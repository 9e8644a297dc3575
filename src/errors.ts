/**
 * The one error type of the agent. Everything that can go wrong while serving a request ends up as an
 * AgentError: an HTTP status, a reason written for the person reading the response or the audit log,
 * and a code for the program that handles it. Anything else that escapes is a bug and is answered as a
 * generic 500 without its details.
 */
export type ErrorCode =
  | 'bad_request'
  | 'unauthorized'
  | 'not_found'
  | 'method_not_allowed'
  | 'conflict'
  | 'busy'
  | 'wrong_environment'
  | 'tag_moved'
  | 'pin_mismatch'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'caller_gone'
  | 'internal'
  | 'unrecorded'
  | 'engine_refused'
  | 'registry_refused'
  | 'image_unverified'
  | 'no_platform_image'
  | 'start_check_failed'
  | 'engine_unreachable'
  | 'keys_unavailable'
  | 'audit_unwritable'
  | 'audit_replaced'
  | 'state_refused'
  | 'shutting_down'
  | 'timeout';

// The code a status stands for when the site that throws has nothing more precise to say.
const BY_STATUS: Readonly<Record<number, ErrorCode>> = {
  400: 'bad_request',
  401: 'unauthorized',
  404: 'not_found',
  405: 'method_not_allowed',
  409: 'conflict',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  502: 'engine_refused',
  503: 'engine_unreachable',
  504: 'timeout',
};

export class AgentError extends Error {
  readonly status: number;
  readonly reason: string;
  readonly code: ErrorCode;

  constructor(status: number, reason: string, options?: { code?: ErrorCode; cause?: unknown }) {
    super(reason, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AgentError';
    this.status = status;
    this.reason = reason;
    this.code = options?.code ?? BY_STATUS[status] ?? 'internal';
  }
}

/**
 * The agent refuses to start on this state (another process holds STATE_DIR, the state was lost, a
 * newer schema, another environment's files): restarting cannot fix it, so the process exits 2.
 */
export const stateRefusal = (reason: string, cause?: unknown): AgentError =>
  new AgentError(500, reason, { code: 'state_refused', cause });

export const badRequest = (reason: string): AgentError => new AgentError(400, reason);
export const conflict = (reason: string, code: ErrorCode = 'conflict'): AgentError => new AgentError(409, reason, { code });

/** A short, single-line description of any thrown value, for reasons and logs. */
export function describe(error: unknown): string {
  if (error instanceof AgentError) return error.reason;
  if (error instanceof Error) return error.message.replace(/\s+/g, ' ').trim();
  return String(error);
}
