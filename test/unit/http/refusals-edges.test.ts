import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { PER_MINUTE, type Refusal, RefusalThrottle } from '../../../src/http/refusals.js';
import type { RefusalSummary } from '../../../src/state/audit.js';

// The throttle's edges, which refusals.test.ts's floods pass over: the minute's exact end, the line
// written when counting starts, the summary's fields, the timers' exact delays, a failed summary's retry.
describe('refusal throttle: edges', () => {
  let now = 0;
  let written: { summary: RefusalSummary; reason: string }[] = [];
  let failWrites = 0;
  let startedLines: { first: string; refusal: Refusal }[] = [];
  let errors: unknown[] = [];
  let throttle: RefusalThrottle;
  const settle = () => new Promise<void>((resolve) => setImmediate(resolve));
  const advance = async (ms: number) => {
    now += ms;
    mock.timers.tick(ms);
    await settle();
  };
  const fill = () => {
    for (let i = 0; i < PER_MINUTE; i += 1) assert.equal(throttle.admit(), true);
  };

  beforeEach(() => {
    mock.timers.enable({ apis: ['setTimeout'] });
    now = Date.UTC(2026, 0, 1);
    written = [];
    failWrites = 0;
    startedLines = [];
    errors = [];
    throttle = new RefusalThrottle(
      async (summary, reason) => {
        if (failWrites > 0) {
          failWrites -= 1;
          throw new Error('disk full');
        }
        written.push({ summary, reason });
      },
      {
        now: () => now,
        onError: (e) => errors.push(e),
        started: async (first, refusal) => {
          startedLines.push({ first, refusal });
        },
      },
    );
  });
  afterEach(() => mock.timers.reset());

  it('admits again exactly a minute after the first admitted, not a millisecond before', () => {
    fill();
    assert.equal(throttle.admit(), false);
    now += 59_999;
    assert.equal(throttle.admit(), false);
    now += 1;
    for (let i = 0; i < PER_MINUTE; i += 1) assert.equal(throttle.admit(), true);
    assert.equal(throttle.admit(), false, 'a whole new minute, no more');
  });

  it('writes the starting line once, with the first refusal and its time, before count resolves', async () => {
    let release = () => {};
    const slow = new RefusalThrottle(async () => {}, {
      now: () => now,
      started: (first, refusal) => {
        startedLines.push({ first, refusal });
        return new Promise<void>((resolve) => {
          release = resolve;
        });
      },
    });
    let resolved = false;
    void slow.count({ endpoint: '/v1/stop', status: 405 }).then(() => {
      resolved = true;
    });
    await slow.count({ endpoint: '/v1/deploy', status: 401 });
    assert.deepEqual(startedLines, [{ first: '2026-01-01T00:00:00.000Z', refusal: { endpoint: '/v1/stop', status: 405 } }]);
    await settle();
    assert.equal(resolved, false, 'the first count waits for its starting line');
    release();
    await settle();
    assert.equal(resolved, true);
    await slow.close();
  });

  it('a starting line that cannot be written is reported, and the count goes on', async () => {
    const failing = new RefusalThrottle(async (summary) => void written.push({ summary, reason: '' }), {
      now: () => now,
      onError: (e) => errors.push(e),
      started: () => Promise.reject(new Error('disk full')),
    });
    await failing.count({ endpoint: '/v1/deploy', status: 401 });
    assert.equal(errors.length, 1);
    await failing.close();
    assert.equal(written[0]?.summary.count, 1);
  });

  it('sums up counts, times, statuses and endpoints, with a reason naming the count and the rate', async () => {
    await throttle.count({ endpoint: '/v1/deploy', status: 401 });
    now += 1_500;
    await throttle.count({ endpoint: '/v1/deploy', status: 405 });
    now += 1_500;
    await throttle.count({ endpoint: '/v1/stop', status: 401 });
    await throttle.close();
    assert.equal(written.length, 1);
    assert.deepEqual(written[0], {
      summary: {
        count: 3,
        first: '2026-01-01T00:00:00.000Z',
        last: '2026-01-01T00:00:03.000Z',
        statuses: { '401': 2, '405': 1 },
        endpoints: { '/v1/deploy': 2, '/v1/stop': 1 },
      },
      reason: `3 refusals before authentication were counted, not audited one by one (more than ${PER_MINUTE} a minute)`,
    });
    assert.equal(startedLines.length, 1);
    await throttle.close();
    assert.equal(written.length, 1, 'nothing pending: nothing written');
  });

  it('waits 5 s after the last refusal counted, each new one starting the wait again', async () => {
    await throttle.count({ endpoint: '/v1/deploy', status: 401 });
    await advance(4_000);
    await throttle.count({ endpoint: '/v1/deploy', status: 401 });
    await advance(4_999);
    assert.equal(written.length, 0);
    await advance(1);
    assert.equal(written.length, 1);
    await advance(120_000);
    assert.equal(written.length, 1, 'the minute timer was stopped with the summary');
  });

  it('writes a summary exactly a minute after counting started while the flood goes on', async () => {
    for (let s = 0; s < 15; s += 1) {
      await throttle.count({ endpoint: '/v1/deploy', status: 401 });
      await advance(s === 14 ? 3_999 : 4_000);
    }
    assert.equal(written.length, 0);
    await advance(1);
    assert.equal(written.length, 1);
    assert.equal(written[0]?.summary.count, 15);
  });

  it('retries a failed summary 5 s later, and merges it into one counted meanwhile', async () => {
    failWrites = 1;
    await throttle.count({ endpoint: '/v1/deploy', status: 401 });
    await advance(5_000);
    assert.equal(errors.length, 1);
    await advance(4_999);
    assert.equal(written.length, 0);
    await advance(1);
    assert.equal(written[0]?.summary.count, 1, 'retried after 5 s, not a minute');

    failWrites = 1;
    await throttle.count({ endpoint: '/v1/deploy', status: 401 });
    const firstTime = new Date(now).toISOString();
    await advance(5_000);
    assert.equal(errors.length, 2);
    await throttle.count({ endpoint: '/v1/stop', status: 405 });
    await throttle.close();
    assert.deepEqual(written[1]?.summary, {
      count: 2,
      first: firstTime,
      last: new Date(now).toISOString(),
      statuses: { '401': 1, '405': 1 },
      endpoints: { '/v1/deploy': 1, '/v1/stop': 1 },
    });
  });

  it('merges a failed summary into refusals counted while it was being written', async () => {
    let reject: (e: Error) => void = () => {};
    const lines: RefusalSummary[] = [];
    let calls = 0;
    const slow = new RefusalThrottle(
      (summary) => {
        calls += 1;
        if (calls > 1) return Promise.resolve(void lines.push(summary));
        return new Promise<void>((_resolve, rejectWrite) => {
          reject = rejectWrite;
        });
      },
      { now: () => now },
    );
    await slow.count({ endpoint: '/v1/deploy', status: 401 });
    const firstTime = new Date(now).toISOString();
    now += 1_000;
    await slow.count({ endpoint: '/v1/deploy', status: 405 });
    const failing = slow.flush();
    now += 1_000;
    await slow.count({ endpoint: '/v1/deploy', status: 401 });
    await slow.count({ endpoint: '/v1/stop', status: 401 });
    reject(new Error('disk full'));
    await assert.rejects(failing, /disk full/);
    await slow.close();
    assert.deepEqual(lines, [
      {
        count: 4,
        first: firstTime,
        last: new Date(now).toISOString(),
        statuses: { '401': 3, '405': 1 },
        endpoints: { '/v1/deploy': 3, '/v1/stop': 1 },
      },
    ]);
  });

  it("a summary written stops its timers: the next count's waits start afresh", async () => {
    // The quiet timer of a summary written by close() must not end the next count's wait early.
    await throttle.count({ endpoint: '/v1/deploy', status: 401 });
    await advance(1_000);
    await throttle.close();
    await advance(2_000);
    await throttle.count({ endpoint: '/v1/deploy', status: 401 });
    await advance(4_999);
    assert.equal(written.length, 1);
    await advance(1);
    assert.equal(written.length, 2);
    // Nor the minute timer of a summary written by its quiet timer the next minute's.
    await advance(30_000);
    for (let s = 0; s < 15; s += 1) {
      await throttle.count({ endpoint: '/v1/deploy', status: 401 });
      await advance(4_000);
    }
    assert.equal(written.length, 3, 'one summary a minute after the count started, not at the old timer');
    assert.equal(written[2]?.summary.count, 15);
  });

  it('close() reports a summary that cannot be written', async () => {
    failWrites = 1;
    await throttle.count({ endpoint: '/v1/deploy', status: 401 });
    await assert.rejects(throttle.close(), /disk full/);
    await throttle.close();
    assert.equal(written[0]?.summary.count, 1);
  });
});
