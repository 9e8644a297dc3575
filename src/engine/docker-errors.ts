import { AgentError, describe } from '../errors.js';
import type { Redactor } from '../policy/redact.js';

/**
 * What a failed engine call means for a person: 503 the engine cannot be reached, 504 it did not
 * answer in time (or the deploy's own deadline fired), 502 it, or the registry behind it, refused.
 */
type EngineErrorLike = Error & { statusCode?: number; code?: string; json?: unknown };

/** The engine's HTTP status behind a raw dockerode error, if it answered at all. */
export function engineHttpStatus(error: unknown): number | null {
  if (typeof error !== 'object' || error === null || !('statusCode' in error)) return null;
  return typeof error.statusCode === 'number' ? error.statusCode : null;
}

/** The engine's own message for a refusal, without dockerode's "(HTTP code N) ..." prefix. */
export function engineMessage(error: unknown): string {
  const json = (error as EngineErrorLike).json;
  if (typeof json === 'object' && json !== null && 'message' in json && typeof json.message === 'string') return json.message;
  return describe(error).replace(/^\(HTTP code \d+\) [\w ]+ - /, '');
}

const UNREACHABLE = new Set(['ENOENT', 'ECONNREFUSED', 'EACCES', 'ECONNRESET', 'EPIPE']);

/**
 * Translates a failed call. `refused` may turn an engine refusal into a more precise error (a
 * registry's answer, say); otherwise it is a 502 naming the operation.
 */
export function translate(
  what: string,
  error: unknown,
  signal: AbortSignal,
  timeoutMs: number,
  redact: Redactor,
  refused?: (message: string) => AgentError,
): Error {
  if (error instanceof AgentError) return error;
  const cause = masked(error, redact);
  if (signal.aborted) {
    const reason: unknown = signal.reason;
    if (reason instanceof AgentError) return reason;
    if (reason instanceof DOMException && reason.name === 'TimeoutError') {
      return new AgentError(504, `the Docker engine did not complete the ${what} within ${Math.round(timeoutMs / 1000)} s`, {
        cause,
      });
    }
    return new AgentError(504, `the ${what} was abandoned`, { cause });
  }
  const code = (error as EngineErrorLike).code;
  if (code !== undefined && UNREACHABLE.has(code)) {
    return new AgentError(503, `the Docker engine cannot be reached (${code}) during the ${what}`, { cause });
  }
  if (engineHttpStatus(error) !== null) {
    const message = redact(engineMessage(error));
    return refused?.(message) ?? new AgentError(502, `the Docker engine refused the ${what}: ${message}`, { cause });
  }
  return new AgentError(502, `the ${what} failed: ${redact(describe(error))}`, { cause });
}

/**
 * The raw engine error, as the cause an AgentError carries: its message masked, its code and status
 * kept. Security: loggers print causes, and an engine message can quote what the runtime printed.
 */
function masked(error: unknown, redact: Redactor): Error {
  const copy = new Error(redact(describe(error)));
  const { code, statusCode } = error as EngineErrorLike;
  return Object.assign(copy, code === undefined ? {} : { code }, statusCode === undefined ? {} : { statusCode });
}

// A registry refusing credentials shows up with one of these phrases, depending on registry and engine.
const AUTH_FAILURE = /unauthorized|authentication required|denied|no basic auth credentials|incorrect username or password/i;
const NOT_FOUND = /manifest unknown|not found|no such/i;

/** A registry's refusal of a pull or a tag look-up, in words an operator can act on. */
export function registryFailure(what: string, message: string, tag?: string): AgentError {
  const clean = message.replace(/\s+/g, ' ').trim().slice(0, 500);
  if (AUTH_FAILURE.test(clean)) {
    return new AgentError(502, `the registry refused the credentials for the ${what} (${clean})`, { code: 'registry_refused' });
  }
  if (tag !== undefined && NOT_FOUND.test(clean)) {
    return new AgentError(502, `the tag ${tag} was not found in the registry (${clean}); the running container was not touched`, {
      code: 'registry_refused',
    });
  }
  return new AgentError(502, `the ${what} failed: ${clean}`, { code: 'registry_refused' });
}
