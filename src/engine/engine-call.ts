import type { AgentError } from '../errors.js';
import type { Redactor } from '../policy/redact.js';
import { engineHttpStatus, translate } from './docker-errors.js';

/** How every call of src/docker.ts to the engine is made: with a deadline, its known answers as results. */

export interface CallOptions<K> {
  readonly timeoutMs?: number;
  /** Ends the call sooner: the caller gone, the deploy's time running out. */
  readonly outer?: AbortSignal | undefined;
  /** Engine statuses that are answers, not failures: 404 "no such container" is "gone". */
  readonly known?: Readonly<Record<number, K>>;
  /** Turns the engine's refusal (its message) into a more precise error. */
  readonly refused?: (message: string) => AgentError;
}

export interface CallDefaults {
  /** Deadline of a call that names none (EngineOptions.callTimeoutMs). */
  readonly timeoutMs: number;
  /** Masks secrets in the engine's error messages (EngineOptions.redact). */
  readonly redact: Redactor;
}

/**
 * Runs one engine call with a deadline, and an optional outer signal. The signal is handed to
 * dockerode to cancel the request, and also raced, because a few dockerode calls do not forward
 * it: a hung engine must never hang the agent.
 */
export async function callEngine<T, K = never>(
  what: string,
  fn: (signal: AbortSignal) => Promise<T>,
  options: CallOptions<K>,
  defaults: CallDefaults,
): Promise<T | K> {
  const timeoutMs = options.timeoutMs ?? defaults.timeoutMs;
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = options.outer === undefined ? timeout : AbortSignal.any([timeout, options.outer]);
  let onAbort: () => void = () => undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([fn(signal), aborted]);
  } catch (error) {
    const status = signal.aborted ? null : engineHttpStatus(error);
    if (status !== null && options.known !== undefined && Object.hasOwn(options.known, status)) return options.known[status] as K;
    throw translate(what, error, signal, timeoutMs, defaults.redact, options.refused);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}
