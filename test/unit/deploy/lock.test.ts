/**
 * The operation lock on its own: one deploy or stop at a time, refused (never queued) when busy or
 * shutting down, a release that counts once. Written against the mutants StrykerJS left alive
 * (docs/TESTING.md).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import { OperationLock } from '../../../src/deploy/lock.js';
import { AgentError } from '../../../src/errors.js';

const refusedWith = (status: number, code: string, reason: string) => (error: unknown) => {
  assert.ok(error instanceof AgentError, String(error));
  assert.equal(error.status, status);
  assert.equal(error.code, code);
  assert.equal(error.reason, reason);
  return true;
};

describe('OperationLock', () => {
  it('refuses a second operation while one runs, naming it, and takes the next after the release', () => {
    let changes = 0;
    const lock = new OperationLock(() => {
      changes += 1;
    });
    assert.equal(lock.busy, null);
    const release = lock.acquire('deploy');
    assert.equal(lock.busy, 'deploy');
    assert.equal(changes, 1, 'the status changes when an operation starts');
    assert.throws(
      () => lock.acquire('stop'),
      refusedWith(409, 'busy', 'a deploy is in progress; only one deploy or stop runs at a time'),
    );
    assert.equal(lock.busy, 'deploy', 'a refused operation leaves the lock as it was');
    assert.equal(changes, 1);
    release();
    assert.equal(lock.busy, null);
    assert.equal(changes, 2, 'and when it ends');
    const stop = lock.acquire('stop');
    assert.throws(
      () => lock.acquire('deploy'),
      refusedWith(409, 'busy', 'a stop is in progress; only one deploy or stop runs at a time'),
    );
    stop();
  });

  it('counts a release once: a second call does not free the lock another operation holds', () => {
    let changes = 0;
    const lock = new OperationLock(() => {
      changes += 1;
    });
    const first = lock.acquire('deploy');
    first();
    const second = lock.acquire('stop');
    first();
    assert.equal(lock.busy, 'stop');
    assert.equal(changes, 3);
    assert.throws(() => lock.acquire('deploy'), /a stop is in progress/);
    second();
    assert.equal(lock.busy, null);
  });

  it('at shutdown refuses new operations (503) and resolves once the one in progress has ended', async () => {
    const idle = new OperationLock();
    assert.equal(idle.isClosing, false);
    await idle.shutdown();
    assert.equal(idle.isClosing, true);
    assert.throws(
      () => idle.acquire('deploy'),
      refusedWith(503, 'shutting_down', 'the agent is shutting down; try again when it is back'),
    );

    const lock = new OperationLock();
    const release = lock.acquire('deploy');
    let ended = false;
    const waiting = lock.shutdown().then(() => {
      ended = true;
    });
    const second = lock.shutdown();
    await tick();
    assert.equal(ended, false, 'shutdown waits for the deploy in progress');
    assert.throws(() => lock.acquire('stop'), /shutting down/, 'shutting down wins over busy');
    release();
    await waiting;
    await second;
    assert.equal(ended, true);
    release();
  });
});
