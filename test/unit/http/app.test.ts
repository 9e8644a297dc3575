/**
 * The HTTP refusals through the real app (createApp, every middleware in its order) with the scripted
 * engine, on an ephemeral loopback port: what the integration tier proves against a real engine, here
 * in a fraction of a second, so that a slip in a body schema or the Content-Type check fails the fast tier.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Deployer } from '../../../src/deploy/deployer.js';
import {
  type AppServer,
  SERVICE_AUTH as AUTH,
  JSON_TYPE,
  RUNTIME_NAME as NAME,
  rawRequest,
  startAppServer,
} from '../../support/app-server.js';
import type { FakeEngine } from '../../support/fake-engine.js';
import { UNIT_REPOSITORY } from '../../support/unit-config.js';

describe('the HTTP app: refusals before anything acts', () => {
  let app: AppServer;
  let engine: FakeEngine;
  let deployer: Deployer;
  let dir = '';
  let base = '';
  let deployedHooks = 0;

  before(async () => {
    app = await startAppServer('app', { afterDeployed: () => (deployedHooks += 1) });
    ({ engine, deployer, dir, base } = app);
  });
  after(() => app.close());

  /** Sends one request; returns the status, the reason, and the engine calls it caused. */
  const send = async (path: string, headers: Record<string, string>, body: string | undefined, method = 'POST') => {
    const before = engine.calls.length;
    const res = await fetch(`${base}${path}`, { method, headers, ...(body === undefined ? {} : { body }) });
    const json = (await res.json()) as { reason?: string };
    return { status: res.status, reason: json.reason ?? '', engineCalls: engine.calls.slice(before) };
  };
  const deployBody = (extra: Record<string, unknown> = {}) => JSON.stringify({ image: `${UNIT_REPOSITORY}:v2`, ...extra });

  it('refuses a body that is not declared JSON with 415, on deploy and stop, before the engine is asked', async () => {
    for (const [path, body] of [
      ['/v1/deploy', deployBody()],
      ['/v1/stop', '{}'],
    ] as const) {
      for (const type of ['text/plain', 'text/plain; charset=utf-8', 'application/x-www-form-urlencoded', 'application/jsonp']) {
        const r = await send(path, { ...AUTH, 'content-type': type }, body);
        assert.equal(r.status, 415, `${path} as ${type}: ${r.reason}`);
        assert.match(r.reason, /Content-Type must be application\/json/);
        assert.deepEqual(r.engineCalls, [], `${path} as ${type} reached the engine`);
      }
      const none = await send(path, AUTH, body);
      assert.equal(none.status, 415, `${path} without a Content-Type`);
      const utf16 = await send(path, { ...AUTH, 'content-type': 'application/json; charset=utf-16' }, body);
      assert.equal(utf16.status, 415, `${path} declared UTF-16`);
      assert.match(utf16.reason, /UTF-8/);
    }
  });

  it('refuses a deploy body with any field beyond image and environment with 400 naming the field', async () => {
    for (const extra of [{ name: 'other' }, { env: ['A=1'] }, { volumes: ['/:/host'] }, { command: ['sh'] }]) {
      const r = await send('/v1/deploy', { ...AUTH, ...JSON_TYPE }, deployBody(extra));
      assert.equal(r.status, 400, `${JSON.stringify(extra)}: ${r.reason}`);
      assert.match(r.reason, /fields the agent does not accept/);
      assert.ok(r.reason.includes(JSON.stringify(Object.keys(extra)[0])), r.reason);
      assert.deepEqual(r.engineCalls, [], `${JSON.stringify(extra)} reached the engine`);
    }
  });

  it('refuses a stop body with any field beyond environment with 400 naming the field, and stops nothing', async () => {
    for (const extra of [{ force: true }, { container: NAME }, { environment: 'dev', all: true }]) {
      const r = await send('/v1/stop', { ...AUTH, ...JSON_TYPE }, JSON.stringify(extra));
      assert.equal(r.status, 400, `${JSON.stringify(extra)}: ${r.reason}`);
      assert.match(r.reason, /fields the agent does not accept/);
      assert.deepEqual(r.engineCalls, [], `${JSON.stringify(extra)} reached the engine`);
    }
    assert.equal([...engine.containers.values()].find((c) => c.name === NAME)?.running, true);
  });

  it('refuses without credentials (401) and other methods (405), and a body of the wrong types (400)', async () => {
    assert.equal((await send('/v1/deploy', JSON_TYPE, deployBody())).status, 401);
    assert.equal((await send('/v1/stop', { ...JSON_TYPE, 'cf-access-client-id': 'client.access' }, '{}')).status, 401);
    assert.equal((await send('/v1/deploy', AUTH, undefined, 'GET')).status, 405);
    assert.equal((await send('/v1/nothing', AUTH, undefined, 'GET')).status, 404);
    const wrongType = await send('/v1/deploy', { ...AUTH, ...JSON_TYPE }, JSON.stringify({ image: 5 }));
    assert.equal(wrongType.status, 400);
    assert.match(wrongType.reason, /^image: /);
    const wrongEnv = await send('/v1/deploy', { ...AUTH, ...JSON_TYPE }, deployBody({ environment: 'prod' }));
    assert.equal(wrongEnv.status, 409, wrongEnv.reason);
    assert.deepEqual(engine.calls, [], 'a refused request reached the engine');
  });

  it('says which field is wrong and why, and audits a refused deploy with the image it named', async () => {
    const reason = async (path: string, body: string) => (await send(path, { ...AUTH, ...JSON_TYPE }, body)).reason;
    assert.equal(await reason('/v1/deploy', JSON.stringify({ image: 5 })), 'image: is required and must be a string');
    assert.equal(await reason('/v1/deploy', '{}'), 'image: is required and must be a string');
    assert.equal(await reason('/v1/deploy', JSON.stringify({ image: 'x'.repeat(513) })), 'image: must be at most 512 characters');
    assert.equal(await reason('/v1/deploy', deployBody({ environment: 7 })), 'environment: must be a string');
    assert.equal(await reason('/v1/stop', JSON.stringify({ environment: 7 })), 'environment: must be a string');
    assert.match(await reason('/v1/stop', '[]'), /^request body: /);
    const long = 'k'.repeat(100);
    assert.equal(
      await reason('/v1/stop', JSON.stringify({ [long]: 1, b: 2 })),
      `request body has fields the agent does not accept: "${'k'.repeat(64)}", "b"`,
    );
    const mismatch = `prod-${'x'.repeat(40)}`;
    assert.equal(
      await reason('/v1/deploy', deployBody({ environment: mismatch })),
      `this is the dev agent but the request is for environment "${mismatch.slice(0, 32)}"`,
    );
    const stopElsewhere = await send('/v1/stop', { ...AUTH, ...JSON_TYPE }, JSON.stringify({ environment: 'prod' }));
    assert.equal(stopElsewhere.status, 409, 'a stop meant for another environment');
    assert.equal(stopElsewhere.reason, 'this is the dev agent but the request is for environment "prod"');
    // The audit line of that refusal names the image the request asked for.
    const lines = readFileSync(join(dir, 'app-audit.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const refused = lines.filter((l) => l['status'] === 409 && l['endpoint'] === '/v1/deploy');
    assert.ok(refused.length > 0, 'the 409 has no audit line');
    assert.equal(refused.at(-1)?.['image'], `${UNIT_REPOSITORY}:v2`);
    assert.deepEqual(engine.calls, [], 'a refused request reached the engine');
  });

  it('a caller that leaves during the pull abandons the deploy at once: nothing is created', async () => {
    const release = engine.hold('pull');
    try {
      const leave = new AbortController();
      const answer = fetch(`${base}/v1/deploy`, {
        method: 'POST',
        headers: { ...AUTH, ...JSON_TYPE },
        body: deployBody(),
        signal: leave.signal,
      }).catch(() => 'left');
      for (const until = Date.now() + 5_000; !engine.calls.some((c) => c.startsWith('pull')) && Date.now() < until; ) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.ok(
        engine.calls.some((c) => c.startsWith('pull')),
        'the deploy never reached its pull',
      );
      const left = performance.now();
      leave.abort();
      assert.equal(await answer, 'left');
      while (deployer.busy && performance.now() - left < 5_000) await new Promise((resolve) => setTimeout(resolve, 10));
      assert.ok(
        performance.now() - left < 1_500,
        `the deploy went on ${Math.round(performance.now() - left)} ms after its caller left`,
      );
      assert.ok(!engine.calls.some((c) => c.startsWith('create')), 'a container was created for a caller that left');
    } finally {
      release();
      engine.calls.length = 0;
    }
  });

  it('status: 200 with the runtime for a client, by the fast path or the ordinary chain; refused as the others are', async () => {
    const raw = async (method: string, path: string, headers: Record<string, string>, body?: string) => {
      const r = await rawRequest(base, method, path, headers, body);
      return { ...r, type: String(r.headers['content-type']), id: String(r.headers['x-request-id'] ?? '') };
    };
    for (const path of ['/v1/status', '/v1/status?verbose=1']) {
      const ok = await raw('GET', path, { ...AUTH, ...JSON_TYPE });
      assert.equal(ok.status, 200, `${path}: ${JSON.stringify(ok.json)}`);
      assert.equal(ok.type, 'application/json; charset=utf-8');
      assert.match(ok.id, /^[0-9a-f-]{36}$/);
      assert.equal(ok.json['running'], true, path);
    }
    assert.equal((await raw('GET', '/v1/status', JSON_TYPE)).status, 401);
    assert.equal((await raw('GET', '/v1/status', { ...JSON_TYPE, 'cf-access-client-id': 'client.access' })).status, 401);
    assert.equal((await raw('GET', '/v1/status', { ...AUTH, 'content-type': 'text/plain' })).status, 415);
    assert.equal((await raw('POST', '/v1/status', { ...AUTH, ...JSON_TYPE }, '{}')).status, 405);
    const extra = await raw('GET', '/v1/status', { ...AUTH, ...JSON_TYPE }, JSON.stringify({ force: true }));
    assert.equal(extra.status, 400, JSON.stringify(extra));
    assert.match(String(extra.json['reason']), /fields the agent does not accept: "force"/, JSON.stringify(extra));
    const own = await raw('GET', '/v1/status', { ...AUTH, ...JSON_TYPE }, JSON.stringify({ environment: 'dev' }));
    assert.equal(own.status, 200);
    assert.equal(own.json['running'], true);
    assert.deepEqual(
      engine.calls.filter((c) => !c.startsWith('inspectContainer')),
      [],
      'status only looks',
    );
  });

  // Last: it acts. The same app, the same headers and a clean body go through, so the refusals above
  // come from the checks they name, not from a harness that refuses everything.
  it('accepts the same requests when they are right: a deploy, then a stop', async () => {
    assert.equal(deployedHooks, 0, 'image retention ran after a refused or abandoned deploy');
    const deployed = await send('/v1/deploy', { ...AUTH, 'content-type': 'application/json; charset=UTF-8' }, deployBody());
    assert.equal(deployed.status, 200, deployed.reason);
    assert.equal(deployedHooks, 1, 'image retention is scheduled once after a deploy that answered 200');
    // Its outcome line keeps what the tag resolved to and what runs: state-rebuild restores from them.
    const outcome = readFileSync(join(dir, 'app-audit.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l['outcome'] === 'deployed');
    assert.equal(outcome.length, 1);
    assert.match(String(outcome[0]?.['tag_digest']), /^sha256:[0-9a-f]{64}$/);
    assert.match(String(outcome[0]?.['image_digest']), /^sha256:[0-9a-f]{64}$/);
    const stopped = await fetch(`${base}/v1/stop`, {
      method: 'POST',
      headers: { ...AUTH, ...JSON_TYPE },
      body: JSON.stringify({ environment: 'dev' }),
    });
    assert.equal(stopped.status, 200, await stopped.clone().text());
    assert.equal(
      [...engine.containers.values()].some((c) => c.running),
      false,
    );
    // The deployer's audit line of that stop (accepted) carries the request's own id, client and
    // endpoint: the route hands them on, so the audit trail says who stopped the runtime, and how.
    const requestId = stopped.headers.get('x-request-id');
    const lines = readFileSync(join(dir, 'state', 'audit.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l['request_id'] === requestId);
    assert.deepEqual(
      lines.map((l) => l['outcome']),
      ['accepted'],
      `the stop's line, by its request id ${requestId}`,
    );
    for (const line of lines) {
      assert.equal(line['client_id'], 'client.access');
      assert.equal(line['endpoint'], '/v1/stop');
    }
  });
});
