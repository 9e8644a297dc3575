import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, beforeEach, describe, it } from 'node:test';
import { FRESH_MS, MAX_AGE_MS, StatusView } from '../../../src/deploy/status-view.js';
import { AuditLog } from '../../../src/state/audit.js';
import { StateStore } from '../../../src/state/state.js';
import { FakeEngine } from '../../support/fake-engine.js';
import { unitConfig } from '../../support/unit-config.js';

/** Status never waits on the engine while it holds a recent enough answer, and never outlives a change. */
const root = mkdtempSync(join(tmpdir(), 'dreichor-status-test-'));
after(() => rmSync(root, { recursive: true, force: true }));
const NAME = 'dreichor-runtime-dev';
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('the status view', () => {
  let engine: FakeEngine;
  let view: StatusView;
  let now = 1_000_000;
  const inspections = () => engine.calls.filter((c) => c === 'inspectContainer').length;

  beforeEach(async () => {
    const dir = mkdtempSync(join(root, 's-'));
    const config = unitConfig(dir);
    engine = new FakeEngine();
    engine.seed(NAME);
    const store = await StateStore.open(config.stateDir);
    const audit = await AuditLog.open(join(config.stateDir, 'audit.jsonl'));
    view = new StatusView({
      config,
      engine,
      store,
      audit,
      activity: () => ({ operation: null, phase: null, phaseSince: null }),
      now: () => now,
    });
  });

  it('concurrent callers share one inspection, and reuse it while it is fresh', async () => {
    const answers = await Promise.all(Array.from({ length: 20 }, () => view.status()));
    assert.equal(inspections(), 1);
    assert.ok(answers.every((a) => a.running && a.inspection_age_ms === 0));
    now += FRESH_MS - 1;
    await view.status();
    assert.equal(inspections(), 1);
  });

  it('a stale answer is served at once while one refresh runs, even when the engine stalls', async () => {
    await view.status();
    now += FRESH_MS + 50;
    const release = engine.hold('inspectContainer');
    const answers = await Promise.all(Array.from({ length: 20 }, () => view.status()));
    assert.ok(
      answers.every((a) => a.running && a.inspection_age_ms === FRESH_MS + 50),
      'served from the last inspection, saying how old',
    );
    assert.equal(inspections(), 2, 'one background refresh for all of them');
    release();
    await settle();
    assert.equal((await view.status()).inspection_age_ms, 0, 'the refresh serves the next callers');
  });

  it('past the maximum age, callers wait for a new inspection, and share it', async () => {
    await view.status();
    now += MAX_AGE_MS;
    const release = engine.hold('inspectContainer');
    let answered = 0;
    const pending = Promise.all(Array.from({ length: 5 }, () => view.status().then(() => (answered += 1))));
    await settle();
    assert.equal(answered, 0, 'nobody got an answer older than the maximum age');
    release();
    await pending;
    assert.equal(inspections(), 2);
  });

  it('a change by the agent discards the last inspection: the next answer is taken after it', async () => {
    await view.status();
    const old = [...engine.containers.values()][0];
    if (old === undefined) throw new Error('no container');
    old.running = false;
    view.invalidate();
    const answer = await view.status();
    assert.equal(answer.running, false);
    assert.equal(inspections(), 2);
  });

  it('ages inspections on a monotonic clock: a wall clock stepped back an hour does not keep a stale answer', async (t) => {
    const dir = mkdtempSync(join(root, 'm-'));
    const config = unitConfig(dir);
    const store = await StateStore.open(config.stateDir);
    const audit = await AuditLog.open(join(config.stateDir, 'audit.jsonl'));
    // The wall clock is the test's from here on (timers are not): the view is built on it.
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
    const real = new StatusView({
      config,
      engine,
      store,
      audit,
      activity: () => ({ operation: null, phase: null, phaseSince: null }),
    });
    assert.equal((await real.status()).running, true);
    t.mock.timers.setTime(Date.now() - 3_600_000); // an NTP step back, or an operator's date -s
    const runtime = [...engine.containers.values()][0];
    assert.ok(runtime);
    runtime.running = false; // the runtime crashes meanwhile
    await new Promise((resolve) => setTimeout(resolve, MAX_AGE_MS + 50));
    assert.equal((await real.status()).running, false, 'a fresh inspection, whatever the wall clock says');
  });
});
