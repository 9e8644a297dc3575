import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnAgent } from '../support/agent-process.js';
import { engine, image, removeContainersNamed, testEnv } from '../support/harness.js';
import { freePort } from '../support/sandbox.js';

/**
 * The agent's own state as damaged, shared or hostile input, with the built agent on the real engine
 * (issue 26): one process per STATE_DIR, lost state never a fresh start, a journal never names a
 * container the agent then touches.
 */
const run = (env: Record<string, string>) =>
  spawnSync(process.execPath, ['dist/agent.js'], {
    env: { ...env, PATH: process.env['PATH'] ?? '' },
    encoding: 'utf8',
    timeout: 30_000,
  });

describe('hostile state', () => {
  it('a second agent on one STATE_DIR exits 2 naming the folder and the holder, before touching the engine', async () => {
    const port = await freePort();
    const { env, folders } = testEnv({ PORT: String(port) });
    const first = spawnAgent(env);
    try {
      await first.ready();
      const second = run({ ...env, PORT: String(await freePort()) });
      assert.equal(second.status, 2, second.stderr);
      assert.match(
        second.stderr,
        new RegExp(`STATE_DIR ${env['STATE_DIR']} is in use by another agent process \\(pid ${first.child.pid}\\)`),
      );
    } finally {
      await first.stop();
      rmSync(folders.root, { recursive: true, force: true });
    }
  });

  it('state.json removed while the audit log holds deploys: refuses to start (exit 2) naming the file', async () => {
    const port = await freePort();
    const { env, folders } = testEnv({ PORT: String(port) });
    const agent = spawnAgent(env);
    try {
      await agent.ready();
      assert.equal((await agent.api.deploy(image('v1'))).status, 200);
      await agent.stop();
      const stateFile = join(env['STATE_DIR'] ?? '', 'state.json');
      renameSync(stateFile, `${stateFile}.lost`);
      const again = run(env);
      assert.equal(again.status, 2, again.stderr);
      assert.match(again.stderr, new RegExp(`${stateFile} is missing, but .*audit.jsonl`));
    } finally {
      await agent.stop();
      await removeContainersNamed(env['CONTAINER_NAME'] ?? '');
      rmSync(folders.root, { recursive: true, force: true });
    }
  });

  it('a journal naming a foreign container: the container is not touched, and shown in status', async () => {
    const port = await freePort();
    const { env, folders } = testEnv({ PORT: String(port) });
    const name = env['CONTAINER_NAME'] ?? '';
    let agent = spawnAgent(env);
    let precious = '';
    try {
      await agent.ready();
      assert.equal((await agent.api.deploy(image('v1'))).status, 200);
      await agent.stop();
      // An unrelated stopped container, created by hand from the image now on the host.
      precious = await engine.create(`${name}-precious-db`, image('v1'), {});
      const journal = {
        operation: 'deploy',
        request_id: 'r-hostile',
        image: image('v2'),
        phase: 'created',
        since: new Date().toISOString(),
        old_container_id: null,
        new_container_id: precious,
      };
      writeFileSync(join(env['STATE_DIR'] ?? '', 'deploy-journal.json'), JSON.stringify(journal));
      agent = spawnAgent(env);
      await agent.ready();
      await sleep(3000); // the reconciler's first pass
      assert.ok(await engine.inspect(precious), 'the foreign container is still there');
      const status = await agent.api.status();
      const notOurs = status.body['not_ours'] as { id: string }[];
      assert.ok(
        notOurs.some((c) => c.id === precious),
        status.text,
      );
    } finally {
      await agent.stop();
      if (precious !== '') await engine.remove(precious);
      await removeContainersNamed(name);
      rmSync(folders.root, { recursive: true, force: true });
    }
  });
});
