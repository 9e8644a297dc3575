import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { PER_MINUTE, RefusalThrottle } from '../../../src/http/refusals.js';
import type { RefusalSummary } from '../../../src/state/audit.js';

describe('refusals before authentication: one by one up to a rate, then counted', () => {
  let now = 0;
  let written: RefusalSummary[] = [];
  let throttle: RefusalThrottle;
  const settle = () => new Promise<void>((resolve) => setImmediate(resolve));
  /** Moves the clock and the mocked timers together. */
  const advance = async (ms: number) => {
    now += ms;
    mock.timers.tick(ms);
    await settle();
  };
  /** What the reply path does with one refusal. */
  const refuse = (endpoint = '/v1/deploy', status = 401): 'alone' | 'counted' => {
    if (throttle.admit()) return 'alone';
    throttle.count({ endpoint, status });
    return 'counted';
  };

  beforeEach(() => {
    mock.timers.enable({ apis: ['setTimeout'] });
    now = 1_000_000;
    written = [];
    throttle = new RefusalThrottle(
      async (summary) => {
        written.push(summary);
      },
      { now: () => now },
    );
  });
  afterEach(() => mock.timers.reset());

  it(`audits ${PER_MINUTE} a minute alone, counts the rest, and sums them up 5 s after the last`, async () => {
    const results = Array.from({ length: 2000 }, (_, i) =>
      refuse(i % 2 === 0 ? '/v1/deploy' : '/v1/stop', i % 3 === 0 ? 405 : 401),
    );
    assert.equal(results.filter((r) => r === 'alone').length, PER_MINUTE);
    await advance(4_900);
    assert.equal(written.length, 0, 'not before 5 s of quiet');
    await advance(200);
    assert.equal(written.length, 1);
    const summary = written[0] as RefusalSummary;
    assert.equal(summary.count, 2000 - PER_MINUTE);
    assert.equal(
      Object.values(summary.statuses).reduce((a, b) => a + b, 0),
      summary.count,
    );
    assert.equal(
      Object.values(summary.endpoints).reduce((a, b) => a + b, 0),
      summary.count,
    );
    assert.deepEqual(Object.keys(summary.endpoints).sort(), ['/v1/deploy', '/v1/stop']);
  });

  it('writes a summary at least once a minute while a flood goes on, and admits again after a minute', async () => {
    for (let i = 0; i < PER_MINUTE; i += 1) refuse();
    let counted = 0;
    // One refusal a second for 150 s: the quiet timer never fires, the minute timer does.
    for (let s = 0; s < 150; s += 1) {
      if (refuse() === 'counted') counted += 1;
      await advance(1_000);
    }
    assert.ok(written.length >= 2, `summaries during the flood: ${written.length}`);
    await advance(6_000);
    const summed = written.reduce((total, e) => total + e.count, 0);
    assert.equal(summed, counted, 'every counted refusal is in a summary');
    assert.ok(150 - counted >= PER_MINUTE * 2, 'each new minute lets some through one by one');
  });

  it('a summary that cannot be written keeps its counts for the next one', async () => {
    let fail = true;
    const errors: unknown[] = [];
    throttle = new RefusalThrottle(
      async (summary) => {
        if (fail) throw new Error('disk full');
        written.push(summary);
      },
      { now: () => now, onError: (e) => errors.push(e) },
    );
    for (let i = 0; i < PER_MINUTE + 30; i += 1) refuse();
    await advance(5_100);
    assert.equal(errors.length, 1);
    fail = false;
    for (let i = 0; i < 5; i += 1) refuse();
    await advance(5_100);
    assert.equal(
      written.reduce((total, e) => total + e.count, 0),
      35,
    );
  });
});
