/**
 * The start check on its own, against the scripted engine: a container counts as started only while
 * it runs (or once it reports healthy). A container that has exited has not started, whatever its exit
 * code: a runtime that exits 0 at once (a wrong entry point, a `--help`) is as down as one that crashed.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { type StartCheckRun, startCheck } from '../../../src/deploy/start-check.js';
import type { ContainerInfo } from '../../../src/engine/engine-port.js';
import { AgentError } from '../../../src/errors.js';
import { FakeEngine } from '../../support/fake-engine.js';

const TIMING = {
  answerReserveMs: 50,
  marginSeconds: 0.1,
  killSlackMs: 50,
  pollMs: 20,
  stopPatienceMs: 100,
  stopSlackMs: 100,
  killMs: 100,
};
const CHECK_SECONDS = 0.2;

/** The scripted engine, with what the container does over time: its state at each inspection. */
class ScriptedContainer extends FakeEngine {
  inspections = 0;
  constructor(private readonly script: (n: number, c: ContainerInfo) => ContainerInfo | null) {
    super();
  }
  override async inspectContainer(nameOrId: string, signal?: AbortSignal): Promise<ContainerInfo | null> {
    const c = await super.inspectContainer(nameOrId, signal);
    this.inspections += 1;
    return c === null ? null : this.script(this.inspections, c);
  }
}

async function check(engine: FakeEngine, hasHealthcheck = false) {
  const id = engine.seed('dreichor-runtime-dev').id;
  const run: StartCheckRun = {
    id,
    hasHealthcheck,
    rollback: 'registry.example:5000/dreichor/runtime:v1',
    bound: new AbortController().signal,
    boundAt: Date.now() + 5_000,
  };
  const deps = {
    config: { startCheckSeconds: CHECK_SECONDS, stopTimeoutSeconds: 1, failureLogLines: 20 },
    engine,
    logger: pino({ level: 'silent' }),
    timing: TIMING,
  };
  const started = performance.now();
  try {
    const c = await startCheck(deps, run);
    return { outcome: 'started' as const, running: c.running, ms: performance.now() - started, reason: '' };
  } catch (error) {
    assert.ok(error instanceof AgentError, String(error));
    assert.equal(error.status, 502);
    assert.equal(error.code, 'start_check_failed');
    return { outcome: 'failed' as const, running: false, ms: performance.now() - started, reason: error.reason };
  }
}

const exited = (code: number) => (_n: number, c: ContainerInfo) => ({ ...c, running: false, status: 'exited', exitCode: code });

describe('the start check', () => {
  it('a container that keeps running for START_CHECK_SECONDS has started, not before', async () => {
    const r = await check(new FakeEngine());
    assert.equal(r.outcome, 'started');
    assert.ok(r.ms >= CHECK_SECONDS * 1000 - 5, `returned after ${r.ms} ms`);
  });

  for (const code of [0, 1, 137]) {
    it(`a container that exited with code ${code} has not started: 502, its logs and the image to roll back to`, async () => {
      const r = await check(new ScriptedContainer(exited(code)));
      assert.equal(r.outcome, 'failed', `exit ${code} counted as started`);
      assert.match(r.reason, new RegExp(`exited with code ${code} during the start check`));
      assert.match(r.reason, /runtime:v1: deploy it to roll back/);
      assert.match(r.reason, /Last log lines:\nboom: cannot connect to the database/);
    });
  }

  it('a container that exits with code 0 in the middle of the check, or just before its last look, has not started', async () => {
    // By time, not by inspection: on a loaded machine the check may look fewer times than it would idle.
    // The last look comes after the whole START_CHECK_SECONDS, so an exit at that very moment is seen.
    for (const atMs of [1, 60, 150, CHECK_SECONDS * 1000]) {
      const from = performance.now();
      const engine = new ScriptedContainer((n, c) => (performance.now() - from >= atMs ? exited(0)(n, c) : c));
      const r = await check(engine);
      assert.equal(r.outcome, 'failed', `exit 0 after ${atMs} ms (${engine.inspections} inspections) counted as started`);
      assert.match(r.reason, /exited with code 0/);
    }
  });

  it('a container that disappears has not started', async () => {
    const r = await check(new ScriptedContainer(() => null));
    assert.equal(r.outcome, 'failed');
    assert.match(r.reason, /disappeared during the start check/);
  });

  it('with a HEALTHCHECK: healthy at once has started; unhealthy, never healthy, or healthy but exited has not', async () => {
    const healthy = await check(new ScriptedContainer((_n, c) => ({ ...c, health: 'healthy' })), true);
    assert.equal(healthy.outcome, 'started');
    assert.ok(healthy.ms < CHECK_SECONDS * 1000, 'healthy ends the check at once');
    const unhealthy = await check(new ScriptedContainer((_n, c) => ({ ...c, health: 'unhealthy' })), true);
    assert.match(unhealthy.reason, /reported unhealthy/);
    const starting = await check(new ScriptedContainer((_n, c) => ({ ...c, health: 'starting' })), true);
    assert.match(starting.reason, /did not become healthy within 0.2 s/);
    const gone = await check(new ScriptedContainer((n, c) => ({ ...exited(0)(n, c), health: 'healthy' })), true);
    assert.match(gone.reason, /exited with code 0/);
  });
});
