import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import {
  appendFileSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { spawnAgent } from '../support/agent-process.js';
import { engine, eventually, image, removeContainersNamed, testEnv } from '../support/harness.js';
import { freePort, publishImage, sandboxInfo } from '../support/sandbox.js';

/**
 * The audit log as damaged or replaced input, and the lost state rebuilt from it, with the built agent
 * on the real engine (issue 26). Each test failed on the agent before issue 26 (e7d1ac0):
 * DREICHOR_AGENT_ENTRY points these tests at another build.
 */
const ENTRY = process.env['DREICHOR_AGENT_ENTRY'] ?? 'dist/agent.js';

const run = (env: Record<string, string>, args: string[] = [], timeout = 15_000) =>
  spawnSync(process.execPath, [ENTRY, ...args], {
    env: { ...env, PATH: process.env['PATH'] ?? '' },
    encoding: 'utf8',
    timeout,
  });

const start = (env: Record<string, string>) => spawnAgent(env, { args: [ENTRY] });

const runningNamed = async (name: string) => (await engine.named(name)).filter((c) => c.State === 'running');

/** Fills the file system at `dir` to its last byte. */
function fillUp(dir: string): void {
  for (let i = 0; i < 10_000; i += 1) {
    try {
      writeFileSync(join(dir, `filler-${i}`), Buffer.alloc(i === 0 ? 2 * 1024 * 1024 : 512));
    } catch {
      if (i > 0) return;
    }
  }
}

/** A dev agent's folders after `deploys` (each answered 200), the agent stopped, its runtime running. */
async function afterDeploys(tags: string[], overrides: Record<string, string> = {}) {
  const { env, folders } = testEnv({ PORT: String(await freePort()), ...overrides });
  const agent = start(env);
  try {
    await agent.ready();
    for (const tag of tags) assert.equal((await agent.api.deploy(image(tag))).status, 200);
  } finally {
    await agent.stop();
  }
  const stateDir = env['STATE_DIR'] ?? '';
  return {
    env,
    stateDir,
    auditFile: join(stateDir, 'audit.jsonl'),
    stateFile: join(stateDir, 'state.json'),
    cleanup: async () => {
      await removeContainersNamed(env['CONTAINER_NAME'] ?? '');
      rmSync(folders.root, { recursive: true, force: true });
    },
  };
}

describe('hostile audit log', () => {
  it('audit.jsonl deleted while the agent runs: a deploy answers 503, the stop still stops', async () => {
    const { env, folders } = testEnv({ PORT: String(await freePort()) });
    const name = env['CONTAINER_NAME'] ?? '';
    const agent = start(env);
    try {
      await agent.ready();
      assert.equal((await agent.api.deploy(image('v1'))).status, 200);
      const before = await engine.inspect(name);
      rmSync(join(env['STATE_DIR'] ?? '', 'audit.jsonl'));
      const deploy = await agent.api.deploy(image('v2'));
      assert.equal(deploy.status, 503, deploy.text);
      assert.match(deploy.text, /the audit log was deleted/);
      assert.equal((await engine.inspect(name))?.Id, before?.Id, 'the runtime untouched');
      await agent.api.stop();
      assert.deepEqual(await runningNamed(name), [], 'the stop stopped the runtime');
    } finally {
      await agent.stop();
      await removeContainersNamed(name);
      rmSync(folders.root, { recursive: true, force: true });
    }
  });

  it("audit.jsonl replaced by a symbolic link: the start refuses, the link's target untouched", async () => {
    const s = await afterDeploys(['v1']);
    const target = join(s.stateDir, '..', 'elsewhere.jsonl');
    try {
      // A copy of the log with a torn last line: an old agent "repaired" it in place, through the link.
      copyFileSync(s.auditFile, target);
      appendFileSync(target, '{"time":"2026-');
      const bytes = readFileSync(target);
      rmSync(s.auditFile);
      symlinkSync(target, s.auditFile);
      const again = run(s.env);
      assert.equal(again.status, 2, again.stderr);
      assert.match(again.stderr, new RegExp(`${s.auditFile} is a symbolic link`));
      assert.deepEqual(readFileSync(target), bytes, 'the target is byte for byte what it was');
    } finally {
      await s.cleanup();
    }
  });

  for (const damage of ['an edited middle line', 'two swapped lines'] as const) {
    it(`${damage}: the agent starts, and status says audit_intact false naming the line`, async () => {
      const s = await afterDeploys(['v1', 'v2']);
      const lines = readFileSync(s.auditFile, 'utf8').split('\n');
      assert.ok(lines.length > 4, 'enough lines');
      if (damage === 'an edited middle line') lines[1] = (lines[1] ?? '').replace('"time":"2', '"time":"1');
      else [lines[1], lines[2]] = [lines[2] ?? '', lines[1] ?? ''];
      writeFileSync(s.auditFile, lines.join('\n'));
      const agent = start(s.env);
      try {
        await agent.ready();
        await eventually('the start-up verification ends', 10_000, async () => {
          return (await agent.api.status()).body['audit_intact'] === false;
        }).catch(() => undefined);
        const status = await agent.api.status();
        assert.equal(status.body['audit_intact'], false, status.text);
        assert.match(String(status.body['audit_problem']), /line 2/);
      } finally {
        await agent.stop();
        await s.cleanup();
      }
    });
  }

  it('a torn last line with the disk full: the agent starts, and its stop stops the runtime', async () => {
    const mountPoint = mkdtempSync(join(tmpdir(), 'dreichor-full-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mountPoint]);
    const stateDir = join(mountPoint, 'state');
    mkdirSync(stateDir, { mode: 0o700 });
    let s: Awaited<ReturnType<typeof afterDeploys>> | null = null;
    let agent: ReturnType<typeof start> | null = null;
    try {
      s = await afterDeploys(['v1'], { STATE_DIR: stateDir });
      appendFileSync(s.auditFile, '{"time":"2026-12-05T10:00:00.000Z","request_id":"torn');
      fillUp(mountPoint);
      agent = start(s.env);
      await agent.ready();
      const stop = await agent.api.stop();
      assert.ok(stop.status === 200 || stop.status === 500, stop.text);
      assert.deepEqual(await runningNamed(s.env['CONTAINER_NAME'] ?? ''), [], 'stopped on the full disk');
    } finally {
      await agent?.stop();
      await s?.cleanup();
      execFileSync('umount', [mountPoint]);
      rmSync(mountPoint, { recursive: true, force: true });
    }
  });

  it('state-rebuild restores tag records and rollback history from the verified log; the agent starts and refuses a re-pushed tag', async () => {
    const info = sandboxInfo();
    const tag = `rb-${process.pid}`;
    const first = await publishImage(info, tag);
    const s = await afterDeploys([tag, 'v1']);
    try {
      const before = JSON.parse(readFileSync(s.stateFile, 'utf8')) as {
        tags: Record<string, { digest: string }>;
        deployments: { image: string }[];
      };
      assert.equal(before.tags[tag]?.digest, first);
      renameSync(s.stateFile, `${s.stateFile}.lost`);
      const rebuilt = run(s.env, ['state-rebuild']);
      assert.equal(rebuilt.status, 0, rebuilt.stderr + rebuilt.stdout);
      const after = JSON.parse(readFileSync(s.stateFile, 'utf8')) as typeof before;
      assert.equal(after.tags[tag]?.digest, first, 'the tag record restored');
      assert.equal(after.tags['v1']?.digest, before.tags['v1']?.digest);
      assert.deepEqual(
        after.deployments.map((d) => d.image),
        before.deployments.map((d) => d.image),
        'the rollback history restored',
      );
      const second = await publishImage(info, tag); // the same tag, another image
      assert.notEqual(second, first);
      const agent = start(s.env);
      try {
        await agent.ready();
        const res = await agent.api.deploy(image(tag));
        assert.equal(res.status, 409, res.text);
        const back = await agent.api.deploy(image('v1'));
        assert.equal(back.status, 200, back.text);
        // The way back is the restored history's: the last successful image other than this one.
        assert.equal(back.body['previous_image'], image(tag));
      } finally {
        await agent.stop();
      }
    } finally {
      await s.cleanup();
    }
  });
});
