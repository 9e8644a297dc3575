import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { spawnAgent } from '../support/agent-process.js';
import { AUTH_HEADERS, engine, image, removeContainersNamed, TOKEN, testEnv } from '../support/harness.js';
import { docker, freePort, publishImage, sandboxInfo } from '../support/sandbox.js';

/**
 * Secrets never leave the host through a failure reason: a runtime that prints its whole environment
 * (DATABASE_URL with its password, an API secret) and the agent's own service token secret, then
 * exits, is answered 502 with its last log lines, masked everywhere they go.
 */
const PASSWORD = 'Tr4d3r-pa55w0rd-XYZ';
const DATABASE_URL = `postgres://trader:${PASSWORD}@db.internal:5432/dreichor`;
const API_SECRET = 'es_live_9f8e7d6c5b4a';

interface FailedDeploy {
  /** Where the agent put what the runtime printed: response, status, state folder, its own output. */
  readonly places: readonly (readonly [string, string])[];
  readonly reason: string;
  /** What the runtime really printed, from `docker logs`. */
  readonly raw: string;
}

/** Publishes `script` as a runtime that fails its start check, deploys it, and collects every place. */
async function failedDeploy(tag: string, script: string, extraEnv: Readonly<Record<string, string>> = {}): Promise<FailedDeploy> {
  await publishImage(sandboxInfo(), tag, script);
  const port = await freePort();
  const { env, folders } = testEnv({ PORT: String(port), ...extraEnv });
  const runtimeEnv = join(folders.root, 'runtime.env');
  env['RUNTIME_ENV_FILE'] = runtimeEnv;
  writeFileSync(runtimeEnv, `DATABASE_URL=${DATABASE_URL}\nEXCHANGE_API_SECRET=${API_SECRET}\nSAFETY_MODE=on\n`);
  const agent = spawnAgent(env);
  const name = env['CONTAINER_NAME'] ?? '';
  try {
    await agent.answering();
    const res = await agent.api.deploy(image(tag));
    assert.equal(res.status, 502, res.text);
    assert.equal((await engine.inspect(name))?.State.Running, false, 'the failed container is not running');
    const raw = await docker(sandboxInfo(), 'logs', name);
    const status = await agent.api.status();
    await agent.stop();
    const stateFiles = readdirSync(folders.state)
      .map((f) => `${f}: ${readFileSync(join(folders.state, f), 'utf8')}`)
      .join('\n');
    return {
      reason: String(res.body['reason']),
      raw,
      places: [
        ['the response', res.text],
        ['the status', status.text],
        ['the state folder (state.json, audit.jsonl)', stateFiles],
        ['the agent output', agent.output()],
      ],
    };
  } finally {
    await agent.stop();
    await removeContainersNamed(name);
    rmSync(folders.root, { recursive: true, force: true });
  }
}

function assertNowhere(places: FailedDeploy['places'], secrets: readonly string[]): void {
  for (const [where, text] of places) {
    for (const secret of secrets) assert.ok(!text.includes(secret), `${where} holds a secret (${secret.slice(0, 3)}...)`);
  }
}

describe('secrets in a failed start check', () => {
  it('the runtime prints its environment and exits 1: no secret in the response, status, state, audit log or agent output; the log tail is there', async () => {
    const script = [
      'env',
      'echo "connecting to $DATABASE_URL"',
      `echo "login trader:${'$'}{DATABASE_URL#*trader:}" | cut -c1-40`,
      // A runtime that happens to print the agent's own service token secret.
      `echo "found token ${TOKEN.secret} in a file"`,
      'echo "fatal: cannot reach the database" >&2',
      'exit 1',
    ].join('; ');
    const { reason, raw, places } = await failedDeploy('prints-env', script);
    // The log tail is there, and useful.
    assert.match(reason, /exited with code 1/);
    assert.match(reason, /connecting to \[DATABASE_URL\]/);
    assert.match(reason, /EXCHANGE_API_SECRET=\[EXCHANGE_API_SECRET\]/);
    assert.match(reason, /found token \[CF_ACCESS_CLIENT_SECRET\] in a file/);
    assert.match(reason, /fatal: cannot reach the database/);
    assert.match(reason, /SAFETY_MODE=on/);
    // The container really printed them: the test is not passing for want of secrets.
    assert.ok(
      raw.includes(PASSWORD) && raw.includes(API_SECRET) && raw.includes(TOKEN.secret),
      'the runtime printed its secrets',
    );
    assert.match(places[2]?.[1] ?? '', /connecting to \[DATABASE_URL\]/, 'the audit log has the masked reason');
    assert.match(places[3]?.[1] ?? '', /connecting to \[DATABASE_URL\]/, 'the agent logged the failure');
    assertNowhere(places, [PASSWORD, DATABASE_URL, API_SECRET, TOKEN.secret, PASSWORD.slice(0, 8), PASSWORD.slice(-8)]);
  });

  it('the runtime prints its secrets encoded (Basic auth base64, hex, URL-encoded, \\u-escaped, wrapped): none survives', async () => {
    const script = [
      'PW=${DATABASE_URL#*trader:}; PW=${PW%%@*}',
      `echo "GET /health Authorization: Basic $(printf 'trader:%s' "$PW" | base64)"`,
      'echo "key as hex: $(printf %s "$EXCHANGE_API_SECRET" | xxd -p)"',
      `echo "KEY AS HEX: $(printf %s "$EXCHANGE_API_SECRET" | xxd -p | tr a-f A-F)"`,
      `echo "dsn=$(printf %s "$DATABASE_URL" | sed -e 's/:/%3A/g' -e 's#/#%2F#g' -e 's/@/%40/g')"`,
      `echo "{\\"dsn\\":\\"$(printf %s "$DATABASE_URL" | sed -e 's/:/\\\\u003a/g' -e 's/@/\\\\u0040/g')\\"}"`,
      'echo "dsn, wrapped:"; printf %s "$DATABASE_URL" | fold -w 16; echo',
      'exit 1',
    ].join('; ');
    const { raw, places } = await failedDeploy('prints-encoded', script, { FAILURE_LOG_LINES: '40' });
    const basic = Buffer.from(`trader:${PASSWORD}`).toString('base64');
    const hex = Buffer.from(API_SECRET).toString('hex');
    const urlEncoded = encodeURIComponent(DATABASE_URL);
    const uEscaped = DATABASE_URL.replaceAll(':', '\\u003a').replaceAll('@', '\\u0040');
    const wrapped = DATABASE_URL.slice(16, 32);
    const forms = [basic, hex, hex.toUpperCase(), urlEncoded, uEscaped, wrapped];
    for (const form of forms) assert.ok(raw.includes(form), `the runtime printed ${form.slice(0, 12)}...`);
    assertNowhere(places, [...forms, basic.slice(4, 20), hex.slice(8, 24)]);
  });

  it('FAILURE_LOG_LINES=0: no log line at all in the reason, and the reason says so', async () => {
    const { reason, places } = await failedDeploy('prints-env-0', 'echo "connecting to $DATABASE_URL"; exit 1', {
      FAILURE_LOG_LINES: '0',
    });
    assert.match(reason, /exited with code 1/);
    assert.match(reason, /Its log lines are not included \(FAILURE_LOG_LINES=0\)/);
    assert.doesNotMatch(reason, /connecting to/);
    assertNowhere(places, ['connecting to']);
  });
});

describe('secrets in request headers, on the built agent', () => {
  it('swapped token headers, a secret in cf-ray, the query or the path: the audit log and stdout hold markers, never the secret', async () => {
    const port = await freePort();
    const rotation = 'rotation-secret-ABCDEFGHIJ0123';
    const { env, folders } = testEnv({
      PORT: String(port),
      LOG_LEVEL: 'trace',
      CF_ACCESS_ROTATION_CLIENT_ID: 'rotation-client.access',
      CF_ACCESS_ROTATION_CLIENT_SECRET: rotation,
    });
    const agent = spawnAgent(env);
    try {
      await agent.answering();
      for (const secret of [TOKEN.secret, rotation]) {
        // The easy slip of a hand-written script: the two headers swapped.
        const swapped = {
          'Content-Type': 'application/json',
          'CF-Access-Client-Id': secret,
          'CF-Access-Client-Secret': TOKEN.id,
        };
        for (const path of ['/v1/deploy', '/v1/stop']) {
          const r = await agent.api.call('POST', path, { headers: swapped, body: { image: image('v1') } });
          assert.equal(r.status, 401, r.text);
        }
        // Its hex in the id header, and the secret in cf-ray and the query of a request that passes.
        const hex = Buffer.from(secret).toString('hex');
        const r = await agent.api.call('POST', `/v1/stop?secret=${secret}`, {
          headers: { ...AUTH_HEADERS, 'cf-ray': secret },
          body: {},
        });
        assert.equal(r.status, 200, r.text);
        const h = await agent.api.call('POST', '/v1/stop', {
          headers: { ...AUTH_HEADERS, 'CF-Access-Client-Id': `${hex}.access` },
          body: {},
        });
        assert.equal(h.status, 401, h.text);
      }
      await agent.stop();
      const audit = readFileSync(join(folders.state, 'audit.jsonl'), 'utf8');
      const claimed = audit
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as Record<string, unknown>)['claimed_client_id'])
        .filter((c) => c !== undefined);
      assert.deepEqual(claimed, Array(6).fill('[withheld: a configured secret]'), audit);
      assert.match(agent.output(), /"url":"\/v1\/stop"/, 'the request log has the path');
      for (const secret of [TOKEN.secret, rotation]) {
        const hex = Buffer.from(secret).toString('hex');
        for (const [where, text] of [
          ['audit.jsonl', audit],
          ['stdout', agent.output()],
        ] as const) {
          assert.ok(!text.includes(secret) && !text.includes(hex), `${where} holds a secret (${secret.slice(0, 3)}...)`);
        }
      }
    } finally {
      await agent.stop();
      rmSync(folders.root, { recursive: true, force: true });
    }
  });
});
