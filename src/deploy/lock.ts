import { AgentError } from '../errors.js';

/**
 * One deploy, stop or clean-up at a time per agent. A second one is refused at once (409), never
 * queued: a caller must learn that the runtime is busy, not wait behind a deploy it did not ask for.
 * At shutdown new operations are refused (503) and the one in progress is waited for.
 */
export type Operation = 'deploy' | 'stop';

export class OperationLock {
  private current: Operation | null = null;
  private closing = false;
  private idleWaiters: (() => void)[] = [];

  /** `onChange` runs when an operation starts and when it ends: what the status shows changes then. */
  constructor(private readonly onChange: () => void = () => undefined) {}

  /** Takes the lock for `operation`; returns the release. Throws 503 when closing, 409 when busy. */
  acquire(operation: Operation): () => void {
    if (this.closing)
      throw new AgentError(503, 'the agent is shutting down; try again when it is back', { code: 'shutting_down' });
    if (this.current !== null) {
      throw new AgentError(409, `a ${this.current} is in progress; only one deploy or stop runs at a time`, { code: 'busy' });
    }
    this.current = operation;
    this.onChange();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.current = null;
      this.onChange();
      for (const wake of this.idleWaiters.splice(0)) wake();
    };
  }

  /** The operation in progress, if any. */
  get busy(): Operation | null {
    return this.current;
  }

  get isClosing(): boolean {
    return this.closing;
  }

  /** Refuses new operations from now on; resolves when the one in progress has ended. */
  shutdown(): Promise<void> {
    this.closing = true;
    if (this.current === null) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}
