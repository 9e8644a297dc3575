import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  closeSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type AgentProcess, spawnAgent } from '../support/agent-process.js';
import { engine, image, removeContainersNamed, testEnv } from '../support/harness.js';
import { freePort } from '../support/sandbox.js';

/**
 * The agent's own state as damaged, shared or hostile input, with the built agent on the real engine
 * (issue 26): one process per STATE_DIR, lost state never a fresh start, a journal never names a
 * container the agent then touches, STATE_DIR checked, the state file bounded. Each test failed on the
 * agent before issue 26 (e7d1ac0): DREICHOR_AGENT_ENTRY points these tests at another build.
 */
const ENTRY = process.env['DREICHOR_AGENT_ENTRY'] ?? 'dist/agent.js';

const run = (env: Record<string, string>, timeout = 15_000) =>
  spawnSync(process.execPath, [ENTRY], {
    env: { ...env, PATH: process.env['PATH'] ?? '' },
    encoding: 'utf8',
    timeout,
  });

const start = (env: Record<string, string>) => spawnAgent(env, { args: [ENTRY] });

/** A dev agent that deployed v1 and was stopped (its runtime still runs): the state to damage. */
async function deployedThenStopped() {
  const { env, folders } = testEnv({ PORT: String(await freePort()) });
  const agent = start(env);
  await agent.ready();
  assert.equal((await agent.api.deploy(image('v1'))).status, 200);
  await agent.stop();
  const stateDir = env['STATE_DIR'] ?? '';
  const cleanup = async () => {
    await removeContainersNamed(env['CONTAINER_NAME'] ?? '');
    rmSync(folders.root, { recursive: true, force: true });
  };
  return { env, stateDir, stateFile: join(stateDir, 'state.json'), cleanup };
}

describe('hostile state', () => {
  it('a second agent on one STATE_DIR exits 2 naming the folder and the holder, before touching the engine', async () => {
    const { env, folders } = testEnv({ PORT: String(await freePort()) });
    const first = start(env);
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

  it('dev and prod given one STATE_DIR: the second refuses (exit 2), naming the state file and both owners', async () => {
    const s = await deployedThenStopped();
    const prodName = (s.env['CONTAINER_NAME'] ?? '').replace('-dev-', '-prod-');
    try {
      const prod = run({ ...s.env, ENVIRONMENT: 'prod', CONTAINER_NAME: prodName });
      assert.equal(prod.status, 2, prod.stderr);
      assert.match(prod.stderr, new RegExp(`${s.stateFile} belongs to environment dev .*not to this agent \\(environment prod`));
      assert.deepEqual(await engine.named(prodName), [], 'the refused agent created nothing');
    } finally {
      await s.cleanup();
    }
  });

  it('state.json removed while the audit log holds deploys: refuses to start (exit 2) naming the file', async () => {
    const s = await deployedThenStopped();
    try {
      renameSync(s.stateFile, `${s.stateFile}.lost`);
      const again = run(s.env);
      assert.equal(again.status, 2, again.stderr);
      assert.match(again.stderr, new RegExp(`${s.stateFile} is missing, but .*audit.jsonl`));
    } finally {
      await s.cleanup();
    }
  });

  it('state.json a dangling symbolic link: damage, not a fresh install (exit 2 naming it)', async () => {
    const s = await deployedThenStopped();
    try {
      rmSync(s.stateFile);
      symlinkSync(join(s.stateDir, 'not-there.json'), s.stateFile);
      const again = run(s.env);
      assert.equal(again.status, 2, again.stderr);
      assert.match(again.stderr, new RegExp(`${s.stateFile} is a symbolic link`));
    } finally {
      await s.cleanup();
    }
  });

  it("state.json and the audit log gone, the fixed name still carrying the agent's labels: refuses (exit 2)", async () => {
    const s = await deployedThenStopped();
    try {
      rmSync(s.stateFile);
      rmSync(join(s.stateDir, 'audit.jsonl'));
      const again = run(s.env);
      assert.equal(again.status, 2, again.stderr);
      assert.match(
        again.stderr,
        new RegExp(`${s.stateFile} is missing, but the container ${s.env['CONTAINER_NAME']} carries this agent's labels`),
      );
      assert.equal((await engine.inspect(s.env['CONTAINER_NAME'] ?? ''))?.State.Running, true, 'the runtime untouched');
    } finally {
      await s.cleanup();
    }
  });

  it('STATE_DIR writable by others, or owned by another user: exit 2 naming it', async () => {
    const { env, folders } = testEnv({ PORT: String(await freePort()) });
    const dir = env['STATE_DIR'] ?? '';
    try {
      mkdirSync(dir);
      chmodSync(dir, 0o777);
      const open = run(env);
      assert.equal(open.status, 2, open.stderr);
      assert.match(open.stderr, new RegExp(`STATE_DIR ${dir} has mode 777`));
      chmodSync(dir, 0o700);
      chownSync(dir, 65534, 65534);
      const foreign = run(env);
      assert.equal(foreign.status, 2, foreign.stderr);
      assert.match(foreign.stderr, new RegExp(`STATE_DIR ${dir} is owned by uid 65534`));
    } finally {
      rmSync(folders.root, { recursive: true, force: true });
    }
  });

  it('a state.json of a newer schema (a downgrade): exit 2 naming the file and both versions', async () => {
    const { env, folders } = testEnv({ PORT: String(await freePort()) });
    const dir = env['STATE_DIR'] ?? '';
    try {
      mkdirSync(dir, { mode: 0o700 });
      const file = join(dir, 'state.json');
      writeFileSync(file, JSON.stringify({ version: 99, tags: {}, last_deploy: null }), { mode: 0o600 });
      const again = run(env);
      assert.equal(again.status, 2, again.stderr);
      assert.match(
        again.stderr,
        new RegExp(`${file} was written by a newer agent \\(state schema 99; this agent knows schema \\d+ at most\\)`),
      );
    } finally {
      rmSync(folders.root, { recursive: true, force: true });
    }
  });

  it('a valid state.json of 153 MB: refused at once, naming the file and its size', async () => {
    const s = await deployedThenStopped();
    try {
      // Valid JSON of the old shape, its bulk in one string: an old agent parsed it and went on.
      const fd = openSync(s.stateFile, 'w', 0o600);
      writeSync(fd, '{"version":1,"tags":{},"last_deploy":{"image":"x","outcome":"failed","reason":"');
      const chunk = Buffer.alloc(1024 * 1024, 'a');
      for (let i = 0; i < 153; i += 1) writeSync(fd, chunk);
      writeSync(fd, '","at":"2026-01-01T00:00:00Z","request_id":"r","image_digest":null}}');
      closeSync(fd);
      const began = Date.now();
      const again = run(s.env);
      const took = Date.now() - began;
      assert.equal(again.status, 2, again.stderr);
      assert.match(again.stderr, new RegExp(`${s.stateFile} is \\d+ bytes, more than the \\d+ bytes`));
      assert.ok(took < 5_000, `refused in ${took} ms`);
    } finally {
      await s.cleanup();
    }
  });

  it('a journal naming the prod runtime and an unrelated stopped container: neither is touched, both shown in status', async () => {
    const s = await deployedThenStopped();
    const name = s.env['CONTAINER_NAME'] ?? '';
    const prodName = name.replace('-dev-', '-prod-');
    // The image the runtime runs, by id: the deploy pulled it by digest, so no tag names it locally.
    const imageId = (await engine.inspect(name))?.Image ?? '';
    let agent: AgentProcess | null = null;
    let precious = '';
    let prodRuntime = '';
    try {
      // The other environment's runtime, labelled as the prod agent labels it, running.
      prodRuntime = await engine.create(prodName, imageId, {
        'io.dreichor.owner': 'dreichor-deploy-agent',
        'io.dreichor.environment': 'prod',
        'io.dreichor.container-name': prodName,
        'io.dreichor.image': image('v1'),
      });
      await engine.start(prodRuntime);
      // An unrelated stopped container, created by hand from the image now on the host.
      precious = await engine.create(`${name}-precious-db`, imageId, {});
      const journal = {
        operation: 'deploy',
        request_id: 'r-hostile',
        image: image('v2'),
        phase: 'starting',
        since: new Date().toISOString(),
        old_container_id: prodRuntime,
        new_container_id: precious,
      };
      writeFileSync(join(s.stateDir, 'deploy-journal.json'), JSON.stringify(journal));
      const a = start(s.env);
      agent = a;
      await a.ready();
      await sleep(3000); // the reconciler's first pass
      assert.ok(await engine.inspect(precious), 'the foreign stopped container is still there');
      assert.equal((await engine.inspect(prodRuntime))?.State.Running, true, 'prod runs');
      const status = await a.api.status();
      const notOurs = (status.body['not_ours'] ?? []) as { id: string }[];
      assert.ok(
        notOurs.some((c) => c.id === precious),
        status.text,
      );
      const stop = await a.api.stop();
      assert.equal(stop.status, 200, stop.text);
      assert.ok(!stop.text.includes(prodName), stop.text);
      assert.equal((await engine.inspect(prodRuntime))?.State.Running, true, 'prod still runs after the dev stop');
      assert.ok(await engine.inspect(precious), 'the foreign container survived the stop');
    } finally {
      await agent?.stop();
      if (precious !== '') await engine.remove(precious);
      if (prodRuntime !== '') await engine.remove(prodRuntime);
      await s.cleanup();
    }
  });
});
