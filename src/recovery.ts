import type { Logger } from 'pino';
import type { AuditLog } from './audit.js';
import type { Config } from './config.js';
import type { EnginePort } from './engine-port.js';
import type { DeployJournal, DeployPhase } from './journal.js';
import type { OperationLock } from './lock.js';
import { ownedBy } from './runtime-spec.js';
import type { StateStore } from './state.js';

/**
 * Start-up recovery: what an interrupted deploy (agent killed mid-deploy) left behind. Containers of
 * this environment and container name other than the runtime, staged or replaced and never running,
 * are removed; the
 * interrupted deploy is recorded in the status and the audit log. The runtime container itself is
 * never started or stopped here: that is an operator's decision.
 *
 * Recovery needs the engine. It starts in the background at start-up, so the agent listens at once
 * even when the engine is down; a deploy or stop waits for it, and retries it if it failed; and a
 * timer retries it until the engine answers.
 */
const PHASES: Readonly<Record<DeployPhase, string>> = {
  pulling: 'pulling the image (nothing was touched)',
  created: 'the new container was created beside the old one',
  stopping: 'stopping the old container',
  starting: 'starting the new container (the old one was already stopped and moved aside)',
  checking: 'checking the new container after its start',
};

// When a clean-up could not run (engine down), it is retried this often, for at most this long.
const RETRY_MS = 2_000;
const RETRY_FOR_MS = 10 * 60_000;

export interface RecoveryDeps {
  readonly config: Config;
  readonly engine: EnginePort;
  readonly store: StateStore;
  readonly audit: AuditLog;
  readonly journal: DeployJournal;
  readonly lock: OperationLock;
  readonly logger: Logger;
}

export class Recovery {
  private attempt: Promise<void> | null = null;
  private retryTimer: NodeJS.Timeout | null = null;

  constructor(private readonly deps: RecoveryDeps) {}

  /** At start-up: recover now, or, if the engine is not there yet, keep trying in the background. */
  start(): void {
    this.ensure().catch((error: unknown) => {
      this.deps.logger.warn({ err: error }, 'start-up recovery postponed until the engine answers');
      this.retry();
    });
  }

  /** Resolves once recovery has run; runs it again if the last attempt failed. */
  ensure(): Promise<void> {
    if (this.attempt === null) {
      const attempt = this.recover();
      this.attempt = attempt;
      attempt.catch(() => {
        if (this.attempt === attempt) this.attempt = null;
      });
    }
    return this.attempt;
  }

  /**
   * Clean-up must run again (a staging container could not be removed): retried in the background
   * until the engine answers. It holds the lock while it runs, because a deploy's own staging
   * container must never be taken for a leftover.
   */
  retry(until = Date.now() + RETRY_FOR_MS): void {
    this.attempt = null;
    if (this.retryTimer !== null || Date.now() > until) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      const { lock } = this.deps;
      if (this.attempt !== null || lock.isClosing) return;
      if (lock.busy !== null) {
        this.retry(until);
        return;
      }
      const release = lock.acquire('recovery');
      this.ensure()
        .catch(() => this.retry(until))
        .finally(release);
    }, RETRY_MS);
    this.retryTimer.unref();
  }

  /** At shutdown: no more retries. */
  stop(): void {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  private async recover(): Promise<void> {
    const { config, engine, journal, store, audit, logger } = this.deps;
    const interrupted = await journal.read();
    const owned = await engine.listByLabels(ownedBy(config));
    const leftovers = owned.filter((c) => c.name !== config.containerName);
    const removed: string[] = [];
    const leftRunning: string[] = [];
    for (const c of leftovers) {
      if (c.state === 'running') {
        // Staging containers are never started, so this is not ours to decide; say so loudly.
        leftRunning.push(c.name);
        continue;
      }
      if ((await engine.remove(c.id)) === 'removed') removed.push(c.name);
    }
    if (interrupted === null && removed.length === 0 && leftRunning.length === 0) return;

    const runtime = owned.find((c) => c.name === config.containerName);
    const which =
      runtime?.id === interrupted?.new_container_id
        ? ' (the new one)'
        : runtime?.id === interrupted?.old_container_id
          ? ' (the old one)'
          : '';
    const found = runtime === undefined ? 'no runtime container' : `runtime container ${runtime.state}${which}`;
    const reason = [
      interrupted === null
        ? ''
        : `deploy ${interrupted.request_id} of ${interrupted.image} was interrupted while ${PHASES[interrupted.phase]}; found ${found}, left as it is`,
      removed.length > 0 ? `removed leftovers (staged or replaced containers): ${removed.join(', ')}` : '',
      leftRunning.length > 0 ? `left running, needs an operator: ${leftRunning.join(', ')}` : '',
    ]
      .filter((part) => part !== '')
      .join('; ');
    logger.warn({ interrupted, removed, leftRunning }, 'start-up recovery');
    // Status first, then the audit line, then the journal: once the line is there, status already
    // tells the truth; and a crash in between leaves the journal, so the next start does it again.
    if (interrupted !== null) {
      const record = {
        image: interrupted.image,
        outcome: 'interrupted',
        reason,
        at: new Date().toISOString(),
        request_id: interrupted.request_id,
        image_digest: null,
      } as const;
      await store.setInterrupted(record, interrupted.since);
    }
    await audit.recovered({ requestId: interrupted?.request_id ?? null, image: interrupted?.image ?? null, reason });
    if (interrupted !== null) await journal.clear();
  }
}
