import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEPLOY_PHASES, type DeployPhase } from '../../src/state/journal.js';
import { spawnAgent } from '../support/agent-process.js';
import {
  Api,
  type EngineSummary,
  engine,
  eventually,
  image,
  maxRunningDuring,
  readAudit,
  removeContainersNamed,
  testEnv,
} from '../support/harness.js';
import { freePort } from '../support/sandbox.js';

/**
 * SIGKILL in the middle of a deploy, at each of its phases, then a restart of the built agent. After
 * it: never two runtime containers running at once, at most one container, no staging leftover, a
 * truthful status, an audit line for the interrupted deploy, and nothing started or stopped by the
 * agent on its own.
 */
const EXPECT: Record<DeployPhase, { oldUntouched: boolean; runtimeRunning: boolean | null }> = {
  pulling: { oldUntouched: true, runtimeRunning: true },
  created: { oldUntouched: true, runtimeRunning: true },
  // The engine may or may not finish a stop whose caller died; either way, one container at most.
  stopping: { oldUntouched: false, runtimeRunning: null },
  starting: { oldUntouched: false, runtimeRunning: false },
  checking: { oldUntouched: false, runtimeRunning: true },
};

const spawnChild = (args: string[], env: Record<string, string>): ChildProcess => spawnAgent(env, { args }).child;

async function listening(api: Api): Promise<void> {
  await eventually('the agent listens', 20_000, async () => (await api.status().catch(() => null))?.status === 200);
}

const snapshot = async (name: string) => new Map((await engine.named(name)).map((c: EngineSummary) => [c.Id, c.State]));

describe('SIGKILL during a deploy, then a restart', () => {
  for (const phase of DEPLOY_PHASES) {
    it(`killed while ${phase}`, async () => {
      const port = await freePort();
      const { env, folders } = testEnv({ PORT: String(port), STOP_TIMEOUT_SECONDS: '2', START_CHECK_SECONDS: '2' });
      const name = env['CONTAINER_NAME'] ?? '';
      const api = new Api(`http://127.0.0.1:${port}`);
      const signal = join(folders.root, 'paused');
      let agent = spawnChild(['--import', 'tsx', 'test/support/pausing-agent.ts'], {
        ...env,
        PAUSE_AT: phase,
        PAUSE_IN_DEPLOY: '2',
        PAUSE_SIGNAL_FILE: signal,
      });
      try {
        await listening(api);
        assert.equal((await api.deploy(image('v1'))).status, 200);
        const old = await engine.inspect(name);
        assert.ok(old);

        let afterKill = new Map<string, string>();
        const maxRunning = await maxRunningDuring(name, async () => {
          const pending = api.deploy(image('v2')).catch(() => null);
          await eventually(`the deploy reached ${phase}`, 20_000, () => existsSync(signal));
          agent.kill('SIGKILL');
          await pending;
          await sleep(2500); // let the engine finish whatever it was asked before the kill
          afterKill = await snapshot(name);

          agent = spawnChild(['dist/agent.js'], env);
          await listening(api);
          await eventually('recovery recorded', 20_000, () =>
            readAudit(env['STATE_DIR'] ?? '').some((l) => l['endpoint'] === 'startup-recovery'),
          );
          // The record is written at start from the journal alone; the clean-up follows in the background.
          await eventually('leftovers cleaned up', 20_000, async () => (await engine.named(name)).length <= 1);
        });

        assert.ok(maxRunning <= 1, `never two running at once (saw ${maxRunning})`);
        const containers = await engine.named(name);
        assert.ok(containers.length <= 1, `at most one container: ${containers.map((c) => c.Names.join()).join(', ')}`);
        assert.ok(
          containers.every((c) => !c.Names.some((n) => n.includes('-staging-'))),
          'no staging leftover',
        );
        // The restarted agent started and stopped nothing: every container still there is as it was.
        for (const c of containers) assert.equal(c.State, afterKill.get(c.Id), `container ${c.Id.slice(0, 12)} changed state`);

        const runtime = await engine.inspect(name);
        const expected = EXPECT[phase];
        if (expected.oldUntouched) {
          assert.equal(runtime?.Id, old.Id);
          assert.equal(runtime?.State.StartedAt, old.State.StartedAt);
        }
        if (expected.runtimeRunning !== null) assert.equal(runtime?.State.Running ?? false, expected.runtimeRunning);

        const status = await api.status();
        assert.equal(status.body['running'], runtime?.State.Running ?? false, 'status tells the truth');
        const last = status.body['last_deploy'] as Record<string, unknown>;
        assert.equal(last['outcome'], 'interrupted');
        assert.equal(last['image'], image('v2'));
        const recovery = readAudit(env['STATE_DIR'] ?? '').find((l) => l['endpoint'] === 'startup-recovery');
        assert.match(String(recovery?.['reason']), /was interrupted while/);
        process.stdout.write(
          `# observed: killed while ${phase}: ${(await engine.named(name)).length} container(s), running=${String(runtime?.State.Running ?? false)}; audit: ${String(recovery?.['reason'])}\n`,
        );
        assert.equal(existsSync(join(env['STATE_DIR'] ?? '', 'deploy-journal.json')), false, 'the journal is cleared');
        // And it works again: the next deploy goes through.
        assert.equal((await api.deploy(image('v3'))).status, 200);
      } finally {
        agent.kill('SIGKILL');
        await removeContainersNamed(name);
        rmSync(folders.root, { recursive: true, force: true });
      }
    });
  }
});
