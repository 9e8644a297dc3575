/**
 * What the start check does once a container has failed it: the stop's grace (what is left before
 * the bound, never more than STOP_TIMEOUT_SECONDS), the reason a person reads (how it failed, whether
 * it was stopped or killed, the image to roll back to, its last log lines), and what happens when the
 * engine fails on the way. Against the scripted engine; written against the mutants StrykerJS left
 * alive (docs/TESTING.md).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { startCheck } from '../../../src/deploy/start-check.js';
import type { ContainerInfo, StopOutcome } from '../../../src/engine/engine-port.js';
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
const ROLLBACK = 'registry.example:5000/dreichor/runtime:v1';

/** A container that has exited with `exitCode` at the first look; each later engine call scripted. */
class FailedContainer extends FakeEngine {
  inspections = 0;
  readonly stops: { seconds: number; signal: AbortSignal | undefined; slackMs: number | undefined }[] = [];
  readonly logCalls: number[] = [];
  /** Throws from the first inspection, when set. */
  inspectError: Error | null = null;
  /** The exit code the inspection after the stop shows (137: killed). */
  afterStopExit = 143;
  stopError: Error | null = null;
  logs: string | Error = 'boom: cannot connect to the database';

  constructor(private readonly exitCode = 1) {
    super();
  }

  override async inspectContainer(nameOrId: string, signal?: AbortSignal): Promise<ContainerInfo | null> {
    const c = await super.inspectContainer(nameOrId, signal);
    this.inspections += 1;
    if (this.inspections === 1 && this.inspectError !== null) throw this.inspectError;
    if (c === null) return null;
    return { ...c, running: false, exitCode: this.inspections === 1 ? this.exitCode : this.afterStopExit };
  }

  override async stop(id: string, seconds: number, signal?: AbortSignal, slackMs?: number): Promise<StopOutcome> {
    this.stops.push({ seconds, signal, slackMs });
    if (this.stopError !== null) throw this.stopError;
    return super.stop(id, seconds, signal, slackMs);
  }

  override async logsTail(id: string, lines: number, signal?: AbortSignal): Promise<string> {
    this.logCalls.push(lines);
    await super.logsTail(id, lines, signal);
    if (this.logs instanceof Error) throw this.logs;
    return this.logs;
  }
}

async function failure(
  engine: FailedContainer,
  options: { grace?: number; boundInMs?: number; rollback?: string | null; logLines?: number } = {},
) {
  const id = engine.seed('dreichor-runtime-dev').id;
  const bound = new AbortController().signal;
  const errors: string[] = [];
  const logger = pino({ level: 'error' }, { write: (line: string) => errors.push(line) });
  try {
    await startCheck(
      {
        config: { startCheckSeconds: 0.2, stopTimeoutSeconds: options.grace ?? 1, failureLogLines: options.logLines ?? 20 },
        engine,
        logger,
        timing: TIMING,
      },
      {
        id,
        hasHealthcheck: false,
        rollback: options.rollback === undefined ? ROLLBACK : options.rollback,
        bound,
        boundAt: Date.now() + (options.boundInMs ?? 5_000),
      },
    );
  } catch (error) {
    assert.ok(error instanceof AgentError, String(error));
    assert.equal(error.status, 502);
    assert.equal(error.code, 'start_check_failed');
    return { reason: error.reason, bound, errors };
  }
  assert.fail('the failed container counted as started');
}

describe('a container that failed its start check', () => {
  it('is stopped within its grace and the bound, and the reason says all a person needs', async () => {
    const engine = new FailedContainer(3);
    const { reason, bound } = await failure(engine);
    assert.equal(
      reason,
      `the new container exited with code 3 during the start check. It was stopped and kept for inspection. The image before it was ${ROLLBACK}: deploy it to roll back. Last log lines:\nboom: cannot connect to the database`,
    );
    assert.deepEqual(engine.stops, [{ seconds: 1, signal: bound, slackMs: TIMING.killSlackMs }]);
    assert.deepEqual(engine.logCalls, [20]);
  });

  it('gets as grace what is left before the bound, never more than STOP_TIMEOUT_SECONDS, never less than 0', async () => {
    const short = new FailedContainer();
    const { reason } = await failure(short, { grace: 10, boundInMs: 2_600 });
    assert.equal(short.stops[0]?.seconds, 2, '2.55 s left: 2 whole seconds');
    assert.match(
      reason,
      /\. It was stopped and kept for inspection\./,
      'stopped with less than its grace, not killed (exit 143)',
    );
    const slack = new FailedContainer();
    await failure(slack, { grace: 10, boundInMs: 3_040 });
    assert.equal(slack.stops[0]?.seconds, 2, 'the kill slack comes off what is left: 2.99 s, not 3.09 s');
    const none = new FailedContainer();
    await failure(none, { grace: 10, boundInMs: 40 });
    assert.equal(none.stops[0]?.seconds, 0, 'past the bound: no grace');
  });

  it('says it was killed when it exited 137 with less than its grace, and not otherwise', async () => {
    const killed = new FailedContainer();
    killed.afterStopExit = 137;
    const { reason } = await failure(killed, { grace: 10, boundInMs: 2_600 });
    assert.match(
      reason,
      /\. It did not stop within the 2 s left of DEPLOY_TIMEOUT_SECONDS \(its grace is 10 s\) and was killed; it is kept for inspection\. The image/,
    );
    const fullGrace = new FailedContainer();
    fullGrace.afterStopExit = 137;
    assert.match((await failure(fullGrace, { grace: 1 })).reason, /\. It was stopped and kept for inspection\. The image/);
  });

  it('when it cannot be stopped: says so, logs it, and does not inspect it again', async () => {
    const engine = new FailedContainer();
    engine.stopError = new Error('engine gone');
    const { reason, errors } = await failure(engine);
    assert.match(
      reason,
      /during the start check\. It could not be stopped \(POST \/v1\/stop stops it\) and is kept for inspection\. The image/,
    );
    assert.equal(engine.inspections, 1);
    assert.equal(errors.length, 1);
    assert.match(errors[0] ?? '', /could not stop the failed container/);
    assert.match(errors[0] ?? '', /engine gone/, 'the error itself is logged');
  });

  it('leaves the roll-back sentence out when nothing ran before', async () => {
    const { reason } = await failure(new FailedContainer(), { rollback: null });
    assert.match(reason, /It was stopped and kept for inspection\. Last log lines:\n/);
  });

  it('its log lines: none asked for, none there, unavailable, or the last 2000 characters', async () => {
    const none = new FailedContainer();
    assert.match(
      (await failure(none, { logLines: 0 })).reason,
      /roll back\. Its log lines are not included \(FAILURE_LOG_LINES=0\)\.$/,
    );
    assert.deepEqual(none.logCalls, []);

    const empty = new FailedContainer();
    empty.logs = '';
    assert.match((await failure(empty)).reason, /Last log lines:\n\(none\)$/);

    const broken = new FailedContainer();
    broken.logs = new Error('socket  hang\nup');
    assert.match((await failure(broken)).reason, /Last log lines:\n\(logs unavailable: socket hang up\)$/);

    const long = new FailedContainer();
    const lines = Array.from({ length: 300 }, (_, i) => `line ${i} ${'x'.repeat(20)}`);
    long.logs = lines.join('\n');
    const shown = (await failure(long)).reason.split('Last log lines:\n')[1] ?? '';
    assert.ok(shown.length <= 2000 && shown.length > 1900, `${shown.length} characters shown`);
    assert.ok(shown.endsWith(lines.at(-1) ?? ''));
    assert.ok(!shown.includes('line 0 '));
  });

  it('an inspection that hangs is given up before the bound, and fails the check', { timeout: 5_000 }, async () => {
    class Hanging extends FailedContainer {
      override async inspectContainer(nameOrId: string, signal?: AbortSignal): Promise<ContainerInfo | null> {
        if (this.inspections > 0) return super.inspectContainer(nameOrId, signal);
        this.inspections += 1;
        return new Promise((_resolve, reject) => {
          signal?.addEventListener('abort', () => reject(new Error('inspect aborted')), { once: true });
        });
      }
    }
    const { reason } = await failure(new Hanging(), { boundInMs: 300 });
    assert.match(reason, /^the new container could not be checked \(inspect aborted\)/);
  });

  it('an engine that cannot be asked fails the check, by the bound less the kill slack', async () => {
    const engine = new FailedContainer();
    engine.inspectError = new Error('connect  ECONNREFUSED');
    const { reason } = await failure(engine);
    assert.match(reason, /^the new container could not be checked \(connect ECONNREFUSED\)\. It was stopped/);
  });
});
