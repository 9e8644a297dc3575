import { REFUSALS_AUDITED_PER_MINUTE, type RefusalSummary } from '../state/audit.js';

/**
 * Audit of refusals before authentication, bounded. Security: every refused deploy or stop was an
 * fsynced audit line, so any local process could write to the agent's disk as fast as it could send
 * wrong tokens, and every deploy's own lines queued behind that flood. Now the first PER_MINUTE
 * refusals in any minute are audited one by one; the rest are counted, and a summary line (count,
 * first and last time, status codes, endpoints) is written at most QUIET_MS after the last one
 * counted, and at least every EVERY_MS while a flood goes on. Every refusal is in the log, alone or
 * in a count. Requests that passed authentication are never throttled.
 */
export const PER_MINUTE = REFUSALS_AUDITED_PER_MINUTE;
const WINDOW_MS = 60_000;
const QUIET_MS = 5_000;
const EVERY_MS = 60_000;

export interface Refusal {
  readonly endpoint: string;
  readonly status: number;
}

interface Pending {
  count: number;
  first: number;
  last: number;
  readonly statuses: Map<number, number>;
  readonly endpoints: Map<string, number>;
}

export interface RefusalThrottleOptions {
  readonly now?: () => number;
  /**
   * Writes a line when counting starts, before any summary: an agent killed during a flood leaves
   * on disk that refusals were being counted from then, so none goes unaccounted for.
   */
  readonly started?: (first: string, refusal: Refusal) => Promise<void>;
  /** Reports a summary that could not be written; its counts are kept for the next one. */
  readonly onError?: (error: unknown) => void;
}

export class RefusalThrottle {
  private readonly now: () => number;
  private readonly onError: (error: unknown) => void;
  private readonly started: (first: string, refusal: Refusal) => Promise<void>;
  /** When each refusal audited one by one in the last minute was admitted. */
  private admitted: number[] = [];
  private pending: Pending | null = null;
  private quietTimer: NodeJS.Timeout | null = null;
  private everyTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly write: (summary: RefusalSummary, reason: string) => Promise<void>,
    options: RefusalThrottleOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.onError = options.onError ?? (() => undefined);
    this.started = options.started ?? (() => Promise.resolve());
  }

  /** True when this refusal is to be audited one by one; false when it is only counted. */
  admit(): boolean {
    const now = this.now();
    this.admitted = this.admitted.filter((t) => now - t < WINDOW_MS);
    if (this.admitted.length >= PER_MINUTE) return false;
    this.admitted.push(now);
    return true;
  }

  /**
   * Counts a refusal that was not audited one by one, for the next summary line. When it starts a
   * count, resolves once the line saying so is written (or could not be), so that its answer is
   * never sent before the disk holds a trace of it.
   */
  count(refusal: Refusal): Promise<void> {
    const now = this.now();
    let started: Promise<void> = Promise.resolve();
    if (this.pending === null) {
      this.pending = { count: 0, first: now, last: now, statuses: new Map(), endpoints: new Map() };
      this.everyTimer = this.timer(EVERY_MS);
      started = this.started(new Date(now).toISOString(), refusal).catch(this.onError);
    }
    const p = this.pending;
    p.count += 1;
    p.last = now;
    p.statuses.set(refusal.status, (p.statuses.get(refusal.status) ?? 0) + 1);
    p.endpoints.set(refusal.endpoint, (p.endpoints.get(refusal.endpoint) ?? 0) + 1);
    if (this.quietTimer !== null) clearTimeout(this.quietTimer);
    this.quietTimer = this.timer(QUIET_MS);
    return started;
  }

  /** Writes the summary of what was counted, if anything was. */
  async flush(): Promise<void> {
    const p = this.pending;
    this.clearTimers();
    if (p === null) return;
    this.pending = null;
    const summary: RefusalSummary = {
      count: p.count,
      first: new Date(p.first).toISOString(),
      last: new Date(p.last).toISOString(),
      statuses: Object.fromEntries([...p.statuses].map(([status, n]) => [String(status), n])),
      endpoints: Object.fromEntries(p.endpoints),
    };
    try {
      await this.write(
        summary,
        `${p.count} refusals before authentication were counted, not audited one by one (more than ${PER_MINUTE} a minute)`,
      );
    } catch (error) {
      // Nothing is lost: the counts go back into the next summary.
      this.merge(p);
      throw error;
    }
  }

  /** Stops the timers and writes what is pending: at shutdown. */
  async close(): Promise<void> {
    await this.flush();
  }

  private merge(p: Pending): void {
    if (this.pending === null) {
      this.pending = p;
      this.everyTimer = this.timer(QUIET_MS);
      return;
    }
    const into = this.pending;
    into.count += p.count;
    for (const [s, n] of p.statuses) into.statuses.set(s, (into.statuses.get(s) ?? 0) + n);
    for (const [e, n] of p.endpoints) into.endpoints.set(e, (into.endpoints.get(e) ?? 0) + n);
    into.first = Math.min(into.first, p.first);
  }

  private timer(ms: number): NodeJS.Timeout {
    const timer = setTimeout(() => {
      this.flush().catch(this.onError);
    }, ms);
    // A pending summary must not keep a process alive on its own; close() writes it at shutdown.
    timer.unref();
    return timer;
  }

  private clearTimers(): void {
    if (this.quietTimer !== null) clearTimeout(this.quietTimer);
    if (this.everyTimer !== null) clearTimeout(this.everyTimer);
    this.quietTimer = null;
    this.everyTimer = null;
  }
}
