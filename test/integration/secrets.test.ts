import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { spawnAgent } from '../support/agent-process.js';
import { engine, image, removeContainersNamed, TOKEN, testEnv } from '../support/harness.js';
import { docker, freePort, publishImage, sandboxInfo } from '../support/sandbox.js';

/**
 * Secrets never leave the host through a failure reason: a runtime that prints its whole environment
 * (DATABASE_URL with its password, an API secret) and the agent's own service token secret, then
 * exits, is answered 502 with its last log lines, masked everywhere they go.
 */
const PASSWORD = 'Tr4d3r-pa55w0rd-XYZ';
const DATABASE_URL = `postgres://trader:${PASSWORD}@db.internal:5432/dreichor`;
const API_SECRET = 'es_live_9f8e7d6c5b4a';

describe('secrets in a failed start check', () => {
  it('the runtime prints its environment and exits 1: no secret in the response, status, state, audit log or agent output; the log tail is there', async () => {
    const tag = 'prints-env';
    const script = [
      'env',
      'echo "connecting to $DATABASE_URL"',
      `echo "login trader:${'$'}{DATABASE_URL#*trader:}" | cut -c1-40`,
      // A runtime that happens to print the agent's own service token secret.
      `echo "found token ${TOKEN.secret} in a file"`,
      'echo "fatal: cannot reach the database" >&2',
      'exit 1',
    ].join('; ');
    await publishImage(sandboxInfo(), tag, script);
    const port = await freePort();
    const { env, folders } = testEnv({ PORT: String(port) });
    const runtimeEnv = join(folders.root, 'runtime.env');
    env['RUNTIME_ENV_FILE'] = runtimeEnv;
    writeFileSync(runtimeEnv, `DATABASE_URL=${DATABASE_URL}\nEXCHANGE_API_SECRET=${API_SECRET}\nSAFETY_MODE=on\n`);
    const agent = spawnAgent(env);
    const name = env['CONTAINER_NAME'] ?? '';
    try {
      await agent.answering();
      const res = await agent.api.deploy(image(tag));
      assert.equal(res.status, 502, res.text);
      const reason = String(res.body['reason']);
      // The log tail is there, and useful.
      assert.match(reason, /exited with code 1/);
      assert.match(reason, /connecting to \[DATABASE_URL\]/);
      assert.match(reason, /EXCHANGE_API_SECRET=\[EXCHANGE_API_SECRET\]/);
      assert.match(reason, /found token \[CF_ACCESS_CLIENT_SECRET\] in a file/);
      assert.match(reason, /fatal: cannot reach the database/);
      assert.match(reason, /SAFETY_MODE=on/);

      // The container really printed them: the test is not passing for want of secrets.
      const raw = await docker(sandboxInfo(), 'logs', name);
      assert.ok(
        raw.includes(PASSWORD) && raw.includes(API_SECRET) && raw.includes(TOKEN.secret),
        'the runtime printed its secrets',
      );
      assert.equal((await engine.inspect(name))?.State.Running, false, 'the failed container is not running');

      const status = await agent.api.status();
      const stateFiles = readdirSync(folders.state)
        .map((f) => `${f}: ${readFileSync(join(folders.state, f), 'utf8')}`)
        .join('\n');
      assert.match(String((status.body['last_deploy'] as Record<string, unknown>)['reason']), /connecting to \[DATABASE_URL\]/);
      assert.match(stateFiles, /connecting to \[DATABASE_URL\]/, 'the audit log has the masked reason');
      await agent.stop();
      const places: [string, string][] = [
        ['the response', res.text],
        ['the status', status.text],
        ['the state folder (state.json, audit.jsonl)', stateFiles],
        ['the agent output', agent.output()],
      ];
      assert.match(agent.output(), /connecting to \[DATABASE_URL\]/, 'the agent logged the failure');
      for (const [where, text] of places) {
        for (const secret of [PASSWORD, DATABASE_URL, API_SECRET, TOKEN.secret, PASSWORD.slice(0, 8), PASSWORD.slice(-8)]) {
          assert.ok(!text.includes(secret), `${where} holds a secret (${secret.slice(0, 3)}...)`);
        }
      }
    } finally {
      await agent.stop();
      await removeContainersNamed(name);
      rmSync(folders.root, { recursive: true, force: true });
    }
  });
});
