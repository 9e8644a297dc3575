import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { spawnAgent } from '../support/agent-process.js';
import { eventually, image, readAudit, testEnv } from '../support/harness.js';
import { freePort, PrivateEngine, removeEngineFolder } from '../support/sandbox.js';

/**
 * The record of a crashed deploy is never lost, and does not wait for the engine. The agent is killed
 * mid-deploy, the host comes back with the engine still down: the agent records the interrupted
 * deploy at start, from its journal alone, before any deploy could write a journal of its own; a
 * deploy tried then fails (503) and does not hide the record. Once the engine is back, the leftovers
 * are cleaned up.
 */
describe('a crashed deploy, then a restart while the engine is still down', () => {
  it('the interrupted deploy reaches the audit log and the status once the engine is back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'e-'));
    const own = new PrivateEngine(dir);
    const port = await freePort();
    const { env, folders } = testEnv({ PORT: String(port), DOCKER_HOST: own.dockerHost });
    const stateDir = env['STATE_DIR'] ?? '';
    const journal = join(stateDir, 'deploy-journal.json');
    const signal = join(folders.root, 'paused');
    let agent = spawnAgent(
      { ...env, PAUSE_AT: 'created', PAUSE_IN_DEPLOY: '2', PAUSE_SIGNAL_FILE: signal },
      { args: ['--import', 'tsx', 'test/support/pausing-agent.ts'] },
    );
    try {
      await own.start();
      await agent.answering();
      assert.equal((await agent.api.deploy(image('v1'))).status, 200);
      const pending = agent.api.deploy(image('v2')).catch(() => null);
      await eventually('the deploy reached "created"', 20_000, () => existsSync(signal));
      const interrupted = (JSON.parse(readFileSync(journal, 'utf8')) as { request_id: string }).request_id;
      agent.child.kill('SIGKILL');
      await pending;

      // The host comes back, but the engine does not (yet).
      await own.stop();
      agent = spawnAgent(env);
      await agent.answering();
      await eventually('the interrupted deploy is recorded at start, engine or not', 10_000, () =>
        readAudit(stateDir).some((l) => l['endpoint'] === 'startup-recovery' && l['request_id'] === interrupted),
      );
      const refused = await agent.api.deploy(image('v3'));
      assert.equal(refused.status, 503, refused.text);

      await own.start();
      const line = readAudit(stateDir).find((l) => l['endpoint'] === 'startup-recovery');
      assert.match(String(line?.['reason']), /was interrupted while the new container was created/);
      const status = await agent.api.status();
      assert.equal(status.status, 200, status.text);
      const last = status.body['last_interrupted'] as Record<string, unknown>;
      assert.equal(last['request_id'], interrupted);
      assert.equal(last['outcome'], 'interrupted');
      // The deploy tried after the crash is the last deploy; the interrupted one does not hide it.
      assert.equal((status.body['last_deploy'] as Record<string, unknown>)['image'], image('v3'));
      assert.equal(existsSync(journal), false, 'cleared once recorded');
      const leftovers = await eventually(
        'the staging container is cleaned up once the engine is back',
        30_000,
        async () => ((await agent.api.status()).body['leftovers'] as unknown[]).length === 0,
      );
      assert.equal(leftovers, undefined);
    } finally {
      await agent.stop();
      await own.stop();
      await removeEngineFolder(dir);
      rmSync(folders.root, { recursive: true, force: true });
    }
  });
});
