import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { Deployer } from '../../../src/deploy/deployer.js';
import { LABEL, OWNER } from '../../../src/deploy/runtime-spec.js';
import { stopBoundMs } from '../../../src/deploy/stop-sequence.js';
import { TIMING, type Timing } from '../../../src/deploy/time-bound.js';
import type { StopOutcome } from '../../../src/engine/engine-port.js';
import { AgentError } from '../../../src/errors.js';
import { AuditLog } from '../../../src/state/audit.js';
import { DeployJournal } from '../../../src/state/journal.js';
import type { StateStore } from '../../../src/state/state.js';
import { FakeEngine } from '../../support/fake-engine.js';
import { unitConfig, unitDeployer } from '../../support/unit-config.js';

/**
 * The emergency brake's branches one by one (stop-sequence.ts), each with the warning or error it
 * owes the operator: a slip in a branch changes what the answer says or what the engine is asked.
 */
const root = mkdtempSync(join(tmpdir(), 'dreichor-stop-paths-'));
after(() => rmSync(root, { recursive: true, force: true }));
const NAME = 'dreichor-runtime-dev';
// Short waits (production's are seconds): only the branches are checked here, not the waiting.
const SHORT: Timing = { ...TIMING, stopPatienceMs: 100, stopSlackMs: 50, killMs: 100 };
let n = 0;

/** An engine whose stop answers "stopped" but leaves the container running: someone started it again. */
class RestartingEngine extends FakeEngine {
  override async stop(id: string, timeoutSeconds: number, signal?: AbortSignal, slackMs?: number): Promise<StopOutcome> {
    this.calls.push(`stop ${id}`);
    await Promise.resolve([timeoutSeconds, signal, slackMs]);
    return 'stopped';
  }
}

/** An engine whose stop takes the container away with it (started with --rm): nothing left to check. */
class VanishingEngine extends FakeEngine {
  override async stop(id: string, timeoutSeconds: number, signal?: AbortSignal, slackMs?: number): Promise<StopOutcome> {
    const outcome = await super.stop(id, timeoutSeconds, signal, slackMs);
    for (const c of [...this.containers.values()]) if (c.id === id || c.name === id) this.containers.delete(c.id);
    return outcome;
  }
}

/** An engine at which the container is removed (on the host) right after its restart policy is updated or refused. */
class GoneAfterUpdateEngine extends FakeEngine {
  override async disableRestart(id: string, signal?: AbortSignal, timeoutMs?: number): Promise<'updated' | 'gone'> {
    try {
      return await super.disableRestart(id, signal, timeoutMs);
    } finally {
      for (const c of [...this.containers.values()]) if (c.id === id || c.name === id) this.containers.delete(c.id);
    }
  }
}

/** A journal on a disk that refuses the stop's own record and its clearing (an interrupted one reads fine). */
class RefusingJournal extends DeployJournal {
  override enter(): Promise<void> {
    return Promise.reject(new Error('journal write refused'));
  }
  override clear(): Promise<void> {
    return Promise.reject(new Error('journal removal refused'));
  }
}

async function setup(
  engine: FakeEngine = new FakeEngine(),
  disk: { readonly audit?: AuditLog; readonly journal?: (stateDir: string) => DeployJournal } = {},
): Promise<{ engine: FakeEngine; deployer: Deployer; store: StateStore; stateDir: string }> {
  n += 1;
  const config = unitConfig(join(root, `s${n}`), { STOP_TIMEOUT_SECONDS: '1' });
  const { deployer, store } = await unitDeployer(config, engine, {
    timing: SHORT,
    ...(disk.audit === undefined ? {} : { audit: disk.audit }),
    ...(disk.journal === undefined ? {} : { journal: disk.journal(config.stateDir) }),
  });
  return { engine, deployer, store, stateDir: config.stateDir };
}
const stop = (deployer: Deployer) => deployer.stop({ requestId: randomUUID(), clientId: 'client.access', endpoint: '/v1/stop' });
const refused = (message: string) => () => new AgentError(502, `the engine refused it: ${message}`);
const warningsOf = (result: { readonly warnings?: readonly string[] }) => (result.warnings ?? []).join('\n');
const failure = (promise: Promise<unknown>): Promise<AgentError> =>
  promise.then(
    () => assert.fail('a stop that stopped nothing answered 200'),
    (e: unknown) => {
      assert.ok(e instanceof AgentError, String(e));
      return e;
    },
  );

describe('the bound of a stop', () => {
  it('is the first phase (update, stop or kill, check) plus the shared deadline after it', () => {
    const t = { stopPatienceMs: 2_000, stopSlackMs: 3_000, killMs: 3_000 };
    // first: max(2 + 10 + 3 + 3 + 2, 6) = 20 s; after: 10 + 3 + 3 + 4 × 2 = 24 s.
    assert.equal(stopBoundMs(10, t), 44_000);
    // Three patiences outlast the stop when the engine is given no time: first = 3 × 10 s.
    assert.equal(stopBoundMs(0, { stopPatienceMs: 10_000, stopSlackMs: 0, killMs: 0 }), 30_000 + 40_000);
  });
});

describe('the emergency brake, branch by branch', () => {
  it('nothing at the fixed name: the engine says so at the first update, no stop is asked, nothing removed', async () => {
    const { engine, deployer, stateDir } = await setup();
    const result = await stop(deployer);
    assert.equal(result.status, 'stopped');
    assert.equal(result.removed, false);
    assert.equal(result.warnings, undefined);
    assert.equal(result.also_stopped, undefined);
    assert.ok(!engine.calls.some((c) => c.startsWith('stop ') || c.startsWith('kill ')), engine.calls.join(', '));
    // The write-ahead records ran, and the stop's journal was cleared after it.
    assert.match(readFileSync(join(stateDir, 'audit.jsonl'), 'utf8'), /"\/v1\/stop"/);
    assert.equal(existsSync(join(stateDir, 'deploy-journal.json')), false);
  });

  it("the write-ahead records: the stop's journal on disk by the time the runtime is checked, the accepted line, then cleared", async () => {
    const seen: string[] = [];
    let journalFile = '';
    // Records what the journal holds when the engine is first asked to check the runtime (after the stop).
    const watching = new (class extends FakeEngine {
      override async inspectContainer(nameOrId: string, signal?: AbortSignal) {
        seen.push(readFileSync(journalFile, 'utf8'));
        return super.inspectContainer(nameOrId, signal);
      }
    })();
    const { engine, deployer, stateDir } = await setup(watching);
    journalFile = join(stateDir, 'deploy-journal.json');
    engine.seed(NAME);
    const requestId = randomUUID();
    await deployer.stop({ requestId, clientId: 'client.access', endpoint: '/v1/stop' });
    const journal: unknown = JSON.parse(seen[0] ?? 'null');
    assert.ok(typeof journal === 'object' && journal !== null);
    assert.deepEqual(
      Object.fromEntries(Object.entries(journal).filter(([k]) => ['operation', 'request_id', 'image', 'phase'].includes(k))),
      { operation: 'stop', request_id: requestId, image: '', phase: 'stopping' },
    );
    const accepted = readFileSync(join(stateDir, 'audit.jsonl'), 'utf8')
      .split('\n')
      .filter((l) => l.includes('"accepted"'))
      .map((l): unknown => JSON.parse(l));
    assert.equal(accepted.length, 1);
    assert.deepEqual(
      Object.fromEntries(
        Object.entries(accepted[0] ?? {}).filter(([k]) => ['request_id', 'client_id', 'endpoint', 'image'].includes(k)),
      ),
      { request_id: requestId, client_id: 'client.access', endpoint: '/v1/stop', image: null },
    );
    assert.equal(existsSync(join(stateDir, 'deploy-journal.json')), false);
  });

  it("an interrupted operation's journal it cannot record: stopped all the same, and that journal kept as it is", async () => {
    const { engine, deployer, stateDir } = await setup();
    const runtime = engine.seed(NAME);
    // A journal of a newer agent: refused by the reader, so the stop must neither write over it nor clear it.
    const journal = join(stateDir, 'deploy-journal.json');
    writeFileSync(journal, '{"version":999}\n');
    const result = await stop(deployer);
    assert.equal(runtime.running, false);
    assert.match(warningsOf(result), /the record of an interrupted operation could not be written \(/);
    assert.equal(readFileSync(journal, 'utf8'), '{"version":999}\n');
  });

  it('the restart policy refused before and after the stop: stopped and removed, both refusals in the answer', async () => {
    const { engine, deployer } = await setup();
    const runtime = engine.seed(NAME, true, { restartPolicy: 'always' });
    engine.fail('disableRestart', refused('update refused'));
    const result = await stop(deployer);
    assert.equal(result.removed, true);
    assert.equal(engine.containers.has(runtime.id), false);
    const warnings = warningsOf(result);
    assert.match(warnings, /restart policy of dreichor-runtime-dev could not be set to "no" before its stop \(.*update refused/);
    assert.match(warnings, /restart policy of dreichor-runtime-dev could not be set to "no" \(.*update refused/);
    assert.ok(engine.calls.includes(`disableRestart ${runtime.id}`), 'tried again by its id after the stop');
  });

  it('a restart policy already "no": not updated again after the stop', async () => {
    const { engine, deployer } = await setup();
    const runtime = engine.seed(NAME, true, { restartPolicy: 'no' });
    const result = await stop(deployer);
    assert.equal(result.warnings, undefined, warningsOf(result));
    assert.ok(!engine.calls.includes(`disableRestart ${runtime.id}`), engine.calls.join(', '));
  });

  it('the stop refused and the kill refused: a 502 that names both; a kill out of time: a 504', async () => {
    const refusedBoth = await setup();
    refusedBoth.engine.seed(NAME);
    refusedBoth.engine.fail('stop', refused('stop refused'));
    refusedBoth.engine.fail('kill', refused('kill refused'));
    const error = await failure(stop(refusedBoth.deployer));
    assert.equal(error.status, 502);
    assert.match(error.reason, /stop: .*stop refused.*; kill: .*kill refused.*docker kill dreichor-runtime-dev/);

    const slow = await setup();
    slow.engine.seed(NAME);
    slow.engine.fail('stop', refused('stop refused'));
    slow.engine.hold('kill');
    const late = await failure(stop(slow.deployer));
    assert.equal(late.status, 504, late.reason);
  });

  it('the stop and the kill refused, but the engine says it no longer runs: 200 with a warning', async () => {
    const { engine, deployer } = await setup();
    const runtime = engine.seed(NAME, false);
    engine.fail('stop', refused('stop refused'));
    engine.fail('kill', refused('kill refused'));
    const result = await stop(deployer);
    assert.equal(result.removed, true);
    assert.equal(engine.containers.has(runtime.id), false);
    assert.match(
      warningsOf(result),
      /stop and kill of dreichor-runtime-dev failed \(.*stop refused.*kill refused.*\), but it no longer runs/,
    );
  });

  it('the stop and the kill refused, and nothing is at the fixed name any more: 200, nothing removed', async () => {
    const { engine, deployer } = await setup();
    for (const m of ['disableRestart', 'stop', 'kill'] as const) engine.fail(m, refused(m));
    const result = await stop(deployer);
    assert.equal(result.removed, false);
    assert.match(warningsOf(result), /but it no longer runs/);
    assert.ok(!engine.calls.some((c) => c.startsWith('remove ')));
  });

  it('the check after the stop refused and the removal by name refused: both said, POST /v1/stop again', async () => {
    const { engine, deployer } = await setup();
    const runtime = engine.seed(NAME);
    engine.fail('inspectContainer', refused('inspect refused'));
    engine.fail('remove', refused('remove refused'));
    const result = await stop(deployer);
    assert.equal(runtime.running, false);
    assert.equal(result.removed, true);
    const warnings = warningsOf(result);
    assert.match(warnings, /could not be checked after the engine stopped it \(.*inspect refused/);
    assert.match(warnings, /is stopped but could not be removed \(.*remove refused.*\); POST \/v1\/stop again/);
  });

  it('a check that never answers: given up after the patience, and the answer says how long it waited', async () => {
    const { engine, deployer } = await setup();
    const runtime = engine.seed(NAME);
    engine.hold('inspectContainer');
    const result = await stop(deployer);
    assert.equal(engine.containers.has(runtime.id), false, 'removed by its name');
    assert.match(warningsOf(result), /could not be checked after the engine stopped it \(.*no answer within 0\.1 s\)/);
  });

  it('the removal refused after the check: handed to the background clean-up, and the answer says so', async () => {
    const { engine, deployer } = await setup();
    const runtime = engine.seed(NAME);
    engine.fail('remove', refused('remove refused'));
    const result = await stop(deployer);
    assert.equal(runtime.running, false);
    assert.match(
      warningsOf(result),
      /could not be removed yet \(.*remove refused.*removed in the background \(status: leftovers\)/,
    );
  });

  it('running again after its stop: killed by its id; if that kill is refused, a 502', async () => {
    const again = await setup(new RestartingEngine());
    const runtime = again.engine.seed(NAME);
    const result = await stop(again.deployer);
    assert.ok(again.engine.calls.includes(`kill ${runtime.id}`), again.engine.calls.join(', '));
    assert.equal(runtime.running, false);
    assert.equal(result.removed, true);

    const stubborn = await setup(new RestartingEngine());
    stubborn.engine.seed(NAME);
    stubborn.engine.fail('kill', refused('kill refused'));
    const error = await failure(stop(stubborn.deployer));
    assert.equal(error.status, 502);
    assert.match(error.reason, /runs again after its stop and could not be killed \(.*kill refused/);
  });

  it('at the fixed name, a container labelled for another environment: stopped by its name, never removed', async () => {
    const { engine, deployer } = await setup();
    const alien = engine.seed(NAME, true, {
      labels: { [LABEL.owner]: OWNER, [LABEL.environment]: 'prod', [LABEL.containerName]: NAME },
    });
    const result = await stop(deployer);
    assert.equal(alien.running, false);
    assert.equal(engine.containers.has(alien.id), true);
    // There was a container to stop: the answer says so even though it is left in place.
    assert.equal(result.removed, true);
    assert.match(warningsOf(result), /carries the labels of the prod environment: stopped by its name, but not removed/);
  });

  it('at the fixed name, a container with no labels at all (made by hand): stopped and removed', async () => {
    const { engine, deployer } = await setup();
    const handMade = engine.seed(NAME, true, { labels: {} });
    const result = await stop(deployer);
    assert.equal(result.removed, true);
    assert.equal(engine.containers.has(handMade.id), false, engine.calls.join(', '));
    assert.doesNotMatch(warningsOf(result), /environment|removed/);
  });

  it('gone between its stop and the check (a --rm container): nothing to remove, removed: true', async () => {
    const { engine, deployer } = await setup(new VanishingEngine());
    engine.seed(NAME);
    const result = await stop(deployer);
    assert.equal(result.removed, true);
    assert.doesNotMatch(warningsOf(result), /checked|removed/);
    assert.ok(!engine.calls.some((c) => c.startsWith('remove ')), engine.calls.join(', '));
  });

  it('the stop, the kill and then the check all refused: still the 502 that names both, not a crash', async () => {
    const { engine, deployer } = await setup();
    engine.seed(NAME);
    for (const m of ['stop', 'kill', 'inspectContainer'] as const) engine.fail(m, refused(`${m} refused`));
    const error = await failure(stop(deployer));
    assert.equal(error.status, 502);
    assert.match(error.reason, /stop: .*stop refused.*; kill: .*kill refused.*may still be running/);
  });

  it("the write-ahead records refused (the stop's journal, the accepted line, the journal's clearing): stopped, each named", async () => {
    // The accepted line refused by the log itself; every other line (the outcome) still written.
    const stateDir = join(root, `audit-${n}`);
    mkdirSync(stateDir, { recursive: true });
    const audit = await AuditLog.open(join(stateDir, 'audit.jsonl'));
    after(() => audit.close());
    audit.accepted = () => Promise.reject(new Error('audit append refused'));
    const { engine, deployer } = await setup(new FakeEngine(), { audit, journal: (dir) => new RefusingJournal(dir) });
    const runtime = engine.seed(NAME);
    const result = await stop(deployer);
    assert.equal(runtime.running, false);
    assert.equal(result.removed, true);
    const warnings = warningsOf(result);
    assert.match(warnings, /^the stop could not be journaled \(.*journal write refused/m);
    assert.match(warnings, /^the accepted line could not be written to the audit log \(.*audit append refused/m);
    assert.match(warnings, /^the stop journal could not be cleared \(.*journal removal refused/m);
  });

  it("a refused removal of the runtime reaches the background clean-up's list (status: leftovers)", async () => {
    const { engine, deployer, store } = await setup();
    const runtime = engine.seed(NAME);
    engine.fail('remove', refused('remove refused'));
    // The background pass drops the runtime from the list at once (at the fixed name, it is no
    // leftover): held at its first list, so that the list is seen as the stop left it.
    const release = engine.hold('listByLabels');
    await stop(deployer);
    assert.deepEqual([...store.leftovers], [runtime.id]);
    assert.deepEqual(
      deployer.leftovers.map((l) => [l.id, l.name]),
      [[runtime.id, NAME]],
    );
    release();
    await deployer.reconcileNow();
    await deployer.shutdown();
  });

  it('a refused removal of another container of ours reaches the background clean-up, and stays there', async () => {
    const { engine, deployer, store } = await setup();
    engine.seed(NAME);
    const staged = engine.seed(`${NAME}-staging-0a1b2c3d`, true, {
      labels: { [LABEL.owner]: OWNER, [LABEL.environment]: 'dev', [LABEL.containerName]: NAME },
    });
    engine.fail('remove', refused('remove refused'));
    const result = await stop(deployer);
    assert.deepEqual(result.also_stopped, [staged.name]);
    assert.equal(staged.running, false);
    await deployer.reconcileNow();
    // Still refused in the pass: kept to be removed later (the runtime, at the fixed name, is not).
    assert.deepEqual([...store.leftovers], [staged.id]);
    assert.deepEqual(
      deployer.leftovers.map((l) => [l.id, l.name]),
      [[staged.id, staged.name]],
    );
    await deployer.shutdown();
  });

  it('gone between the restart policy and the stop: the engine\'s "gone" is the answer, nothing checked or removed', async () => {
    const { engine, deployer } = await setup(new GoneAfterUpdateEngine());
    engine.seed(NAME);
    const result = await stop(deployer);
    assert.equal(result.removed, false);
    assert.ok(!engine.calls.some((c) => c.startsWith('inspectContainer ')), engine.calls.join(', '));
  });

  it('the restart policy refused, then nothing at the fixed name to stop: no warning about a policy of nothing', async () => {
    const { engine, deployer } = await setup(new GoneAfterUpdateEngine());
    engine.seed(NAME, true, { restartPolicy: 'always' });
    engine.fail('disableRestart', refused('update refused'));
    const result = await stop(deployer);
    assert.equal(result.removed, false);
    // Only the policy's warning is looked at: a loaded disk may add the write-ahead records' own.
    assert.doesNotMatch(warningsOf(result), /restart policy/);
  });
});
