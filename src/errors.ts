/**
 * The one error type of the agent. Everything that can go wrong while serving a request ends up as an
 * AgentError: an HTTP status and a reason written for the person reading the response or the audit
 * log. Anything else that escapes is a bug and is answered as a generic 500 without its details.
 */
export class AgentError extends Error {
  readonly status: number;
  readonly reason: string;

  constructor(status: number, reason: string, options?: { cause?: unknown }) {
    super(reason, options);
    this.name = 'AgentError';
    this.status = status;
    this.reason = reason;
  }
}

export const badRequest = (reason: string): AgentError => new AgentError(400, reason);
export const conflict = (reason: string): AgentError => new AgentError(409, reason);

/** A short, single-line description of any thrown value, for reasons and logs. */
export function describe(error: unknown): string {
  if (error instanceof AgentError) return error.reason;
  if (error instanceof Error) return error.message.replace(/\s+/g, ' ').trim();
  return String(error);
}
