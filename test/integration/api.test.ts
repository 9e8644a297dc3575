import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { pino } from 'pino';
import { CONNECTION_LIMITS } from '../../src/http/connections.js';
import { AUTH_HEADERS, engine, eventually, image, startTestAgent, type TestAgent, TOKEN } from '../support/harness.js';
import { AUD, startAccessStandIn, TEAM } from '../support/jwks.js';

/** Every line the agent logs, to check that no secret reaches a log. */
function captureLogs(): { logger: pino.Logger; text: () => string } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString('utf8'));
      done();
    },
  });
  return { logger: pino({ level: 'trace' }, stream), text: () => lines.join('') };
}

describe('the HTTP contract', () => {
  let t: TestAgent;
  const logs = captureLogs();

  before(async () => {
    t = await startTestAgent(
      { CF_ACCESS_ROTATION_CLIENT_ID: 'next-client.access', CF_ACCESS_ROTATION_CLIENT_SECRET: 'next-secret-0123456789abcdef' },
      { logger: logs.logger },
    );
  });
  after(async () => {
    await t.cleanup();
  });

  const expectError = async (res: Promise<import('../support/harness.js').ApiResponse>, status: number, reason?: RegExp) => {
    const r = await res;
    assert.equal(r.status, status, r.text);
    assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
    assert.equal(r.body['status'], 'error');
    assert.equal(typeof r.body['reason'], 'string');
    assert.deepEqual(Object.keys(r.body).sort(), ['reason', 'status']);
    assert.doesNotMatch(r.text, /<html|\bat [\w.]+ \(|node_modules/i, 'no HTML, no stack trace');
    if (reason !== undefined) assert.match(String(r.body['reason']), reason);
    return r;
  };

  it('answers only its three endpoints: 404 elsewhere, 405 for a wrong method', async () => {
    for (const path of [
      '/',
      '/v1',
      '/v1/deploy/',
      '/V1/DEPLOY',
      '/v1//deploy',
      '/v1/%64eploy',
      '/v2/deploy',
      '/v1/status.json',
    ]) {
      await expectError(t.api.call('POST', path, { body: {} }), 404);
    }
    const r = await expectError(t.api.call('GET', '/v1/deploy'), 405);
    assert.equal(r.headers.get('allow'), 'POST');
    await expectError(t.api.call('POST', '/v1/status', { body: {} }), 405);
    await expectError(t.api.call('DELETE', '/v1/stop'), 405);
    await expectError(t.api.call('PUT', '/v1/deploy', { body: { image: image('v1') } }), 405);
  });

  it('401 without the right service token, whatever else is right', async () => {
    const body = { image: image('v1') };
    const cases: Record<string, string>[] = [
      { 'Content-Type': 'application/json' },
      { 'Content-Type': 'application/json', 'CF-Access-Client-Id': TOKEN.id },
      { 'Content-Type': 'application/json', 'CF-Access-Client-Secret': TOKEN.secret },
      { ...AUTH_HEADERS, 'CF-Access-Client-Secret': `${TOKEN.secret}x` },
      { ...AUTH_HEADERS, 'CF-Access-Client-Secret': TOKEN.secret.slice(0, -1) },
      { ...AUTH_HEADERS, 'CF-Access-Client-Id': 'someone-else.access' },
      // The rotation id with the primary secret: pairs are checked as pairs.
      { ...AUTH_HEADERS, 'CF-Access-Client-Id': 'next-client.access' },
      { 'Content-Type': 'application/json', Authorization: `Bearer ${TOKEN.secret}` },
    ];
    for (const headers of cases) {
      await expectError(t.api.call('POST', '/v1/deploy', { body, headers }), 401);
      await expectError(t.api.call('GET', '/v1/status', { headers }), 401);
    }
  });

  it('accepts the second token pair during a rotation window', async () => {
    const headers = {
      ...AUTH_HEADERS,
      'CF-Access-Client-Id': 'next-client.access',
      'CF-Access-Client-Secret': 'next-secret-0123456789abcdef',
    };
    const r = await t.api.call('GET', '/v1/status', { headers });
    assert.equal(r.status, 200, r.text);
  });

  it('415 without Content-Type: application/json, or with a compressed body', async () => {
    const noType: Record<string, string> = { 'CF-Access-Client-Id': TOKEN.id, 'CF-Access-Client-Secret': TOKEN.secret };
    await expectError(t.api.call('GET', '/v1/status', { headers: noType }), 415);
    await expectError(
      t.api.call('POST', '/v1/deploy', {
        raw: JSON.stringify({ image: image('v1') }),
        headers: { ...noType, 'Content-Type': 'text/plain' },
      }),
      415,
    );
    await expectError(
      t.api.call('POST', '/v1/deploy', {
        raw: 'image=x',
        headers: { ...noType, 'Content-Type': 'application/x-www-form-urlencoded' },
      }),
      415,
    );
    const gz = await fetch(`${t.agent.url}/v1/deploy`, {
      method: 'POST',
      headers: { ...AUTH_HEADERS, 'Content-Encoding': 'gzip' },
      body: gzipSync(JSON.stringify({ image: image('v1') })),
    });
    assert.equal(gz.status, 415);
    // Parameters are fine, and the media type is case-insensitive.
    const ok = await t.api.call('GET', '/v1/status', {
      headers: { ...noType, 'Content-Type': 'Application/JSON; charset=utf-8' },
    });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(
      (await t.api.call('GET', '/v1/status', { headers: { ...noType, 'Content-Type': 'application/json; charset="UTF-8"' } }))
        .status,
      200,
    );
  });

  it('415 for any charset but UTF-8, before the body is read: a UTF-16 body is not quietly decoded', async () => {
    const noType: Record<string, string> = { 'CF-Access-Client-Id': TOKEN.id, 'CF-Access-Client-Secret': TOKEN.secret };
    const utf16 = Buffer.from(`\ufeff${JSON.stringify({ image: image('v1') })}`, 'utf16le');
    for (const charset of ['utf-16le', 'UTF-16', 'latin1', 'iso-8859-1', '"utf-32"']) {
      const res = await fetch(`${t.agent.url}/v1/deploy`, {
        method: 'POST',
        headers: { ...noType, 'Content-Type': `application/json; charset=${charset}` },
        body: utf16,
      });
      assert.equal(res.status, 415, charset);
      assert.match(((await res.json()) as { reason: string }).reason, /must be UTF-8/);
    }
    assert.deepEqual(await engine.named(t.config.containerName), [], 'nothing was deployed');
  });

  it('413 for a body over 4 KiB', async () => {
    await expectError(t.api.deploy(image('v1'), { environment: 'x'.repeat(5000) }), 413);
    await expectError(t.api.call('POST', '/v1/deploy', { raw: `{"image":"${'a'.repeat(10_000)}"}` }), 413);
  });

  it('400 for malformed JSON, a body that is not an object, unknown fields or wrong types', async () => {
    for (const raw of ['{', '{"image":', 'null', '"text"', '42', 'true', '{"image":"a"}}']) {
      await expectError(t.api.call('POST', '/v1/deploy', { raw }), 400);
    }
    await expectError(t.api.call('POST', '/v1/deploy', { raw: '[]' }), 400);
    await expectError(t.api.call('POST', '/v1/deploy', { raw: '{}' }), 400, /image/);
    await expectError(t.api.call('POST', '/v1/deploy', { raw: '' }), 400, /image/);
    await expectError(t.api.deploy(42 as unknown as string), 400, /image/);
    for (const field of ['container_name', 'volumes', 'env', 'command', 'network', 'name', '__proto__', 'constructor']) {
      await expectError(
        t.api.call('POST', '/v1/deploy', { raw: `{"image":${JSON.stringify(image('v1'))},${JSON.stringify(field)}:"x"}` }),
        400,
        /does not accept/,
      );
    }
    await expectError(t.api.call('POST', '/v1/stop', { body: { force: true } }), 400, /does not accept/);
  });

  it('409 for a request meant for the other environment', async () => {
    await expectError(t.api.deploy(image('v1'), { environment: 'prod' }), 409, /dev agent.*"prod"/);
    await expectError(t.api.deploy(image('v1'), { environment: 'DEV' }), 409);
    await expectError(t.api.call('POST', '/v1/stop', { body: { environment: 'prod' } }), 409);
  });

  it('nothing refused above reached the engine', async () => {
    assert.deepEqual(await engine.named(t.config.containerName), []);
  });

  it('every deploy and stop request, refused or not, has its audit line, with no secret in it', async () => {
    // Every mutating request the agent saw (its own request log counts them) has a line of its own,
    // or, refused before authentication beyond the rate, is counted in a summary line.
    const completed = logs
      .text()
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as { msg?: string; req?: { id: string; url: string }; res?: { statusCode: number } })
      .filter((l) => l.msg === 'request completed' && /^\/v1\/(deploy|stop)$/.test(l.req?.url ?? ''));
    const requestIds = completed.map((l) => l.req?.id);
    assert.ok(requestIds.length > 30);
    const alone = new Set(t.auditLines().map((l) => l['request_id']));
    const counted = completed.filter((l) => !alone.has(l.req?.id));
    assert.ok(
      counted.every((l) => l.res?.statusCode === 401 || l.res?.statusCode === 405),
      'only refusals before authentication are counted',
    );
    if (counted.length > 0)
      await eventually('the summary of counted refusals', 8_000, () =>
        t.auditLines().some((l) => l['outcome'] === 'refusals-counted'),
      );
    const lines = t.auditLines();
    const summed = lines.filter((l) => l['outcome'] === 'refusals-counted').reduce((sum, l) => sum + Number(l['count']), 0);
    assert.equal(summed, counted.length, 'every counted refusal is in a summary');
    const mutating = lines.filter((l) => l['endpoint'] === '/v1/deploy' || l['endpoint'] === '/v1/stop');
    assert.deepEqual(
      mutating.map((l) => l['request_id']).sort(),
      completed
        .filter((l) => alone.has(l.req?.id))
        .map((l) => l.req?.id)
        .sort(),
    );
    for (const l of mutating) {
      assert.equal(l['outcome'], 'refused');
      assert.ok(typeof l['reason'] === 'string' && typeof l['request_id'] === 'string' && typeof l['duration_ms'] === 'number');
    }
    // Unauthenticated attempts are recorded with the id they claimed, never as an authenticated client.
    const unauthenticated = mutating.filter((l) => l['status'] === 401);
    assert.ok(unauthenticated.every((l) => l['client_id'] === null));
    assert.ok(unauthenticated.some((l) => l['claimed_client_id'] === 'someone-else.access'));
    const everything = JSON.stringify(lines) + logs.text();
    for (const secret of [TOKEN.secret, 'next-secret-0123456789abcdef']) {
      assert.ok(!everything.includes(secret), 'a secret reached the audit log or the agent log');
    }
    assert.ok(logs.text().includes('request completed'), 'the capture did see the request logs');
  });

  it('drops a client that sends its headers too slowly (slowloris) after the headers timeout', async () => {
    const { connect } = await import('node:net');
    const started = Date.now();
    const socket = connect(t.agent.port, '127.0.0.1');
    socket.setEncoding('utf8');
    let answer = '';
    socket.on('data', (chunk: string) => (answer += chunk));
    // A drip that races the server's close gets EPIPE: expected, not a failure.
    socket.on('error', () => undefined);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write('POST /v1/deploy HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    // One header byte a second, never finishing the headers.
    const drip = setInterval(() => socket.write('X'), 1000);
    const closed = await Promise.race([
      new Promise<boolean>((resolve) => socket.once('close', () => resolve(true))),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 20_000)),
    ]);
    clearInterval(drip);
    socket.destroy();
    assert.ok(closed, 'the agent closed the connection');
    // Node's headers timeout answers 408 (as JSON, parser-errors.ts) unless the idle sweep of
    // connections.ts, which has the same limit, closes the connection first: either way it is dropped.
    assert.match(answer, /^$|^HTTP\/1\.1 408 [\s\S]*\r\n\r\n\{"status":"error"/);
    const after = Date.now() - started;
    const limit = CONNECTION_LIMITS.headersTimeoutMs;
    assert.ok(after >= limit - 1_000, `not before the headers timeout of ${limit} ms (${after} ms)`);
  });

  it('sends no X-Powered-By and its own request id', async () => {
    const r = await t.api.status();
    assert.equal(r.headers.get('x-powered-by'), null);
    assert.match(r.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
  });
});

describe('image policy in prod', () => {
  it('refuses "latest" in any case, and an untagged image', async () => {
    const t = await startTestAgent({}, { environment: 'prod' });
    try {
      for (const tag of ['latest', 'LATEST', 'Latest']) {
        const r = await t.api.deploy(image(tag));
        assert.equal(r.status, 400, r.text);
        assert.match(String(r.body['reason']), /latest/);
      }
      assert.equal((await t.api.deploy(image('v1').replace(':v1', ''))).status, 400);
      assert.deepEqual(await engine.named(t.config.containerName), []);
    } finally {
      await t.cleanup();
    }
  });
});

describe('Cloudflare Access JWT at the origin', () => {
  it('when configured, every request needs a valid Access token as well as the service token', async () => {
    const access = await startAccessStandIn();
    const t = await startTestAgent({ CF_ACCESS_TEAM_DOMAIN: TEAM, CF_ACCESS_AUD: AUD, CF_ACCESS_CERTS_URL: access.certsUrl });
    try {
      const withJwt = async (jwt: string | null, headers: Record<string, string> = AUTH_HEADERS) =>
        t.api.call('GET', '/v1/status', {
          headers: jwt === null ? { ...headers } : { ...headers, 'Cf-Access-Jwt-Assertion': jwt },
        });
      assert.equal((await withJwt(await access.sign())).status, 200);
      assert.equal((await withJwt(null)).status, 401);
      assert.equal((await withJwt(await access.sign({ aud: 'other-app' }))).status, 401);
      // A valid JWT does not replace the service token.
      assert.equal(
        (await withJwt(await access.sign(), { ...AUTH_HEADERS, 'CF-Access-Client-Secret': 'wrong-secret-0123456789' })).status,
        401,
      );
      const refused = await t.api.call('POST', '/v1/deploy', {
        body: { image: image('v1') },
        headers: { ...AUTH_HEADERS, 'Cf-Access-Jwt-Assertion': await access.sign({ exp: 1 }) },
      });
      assert.equal(refused.status, 401);
      assert.deepEqual(await engine.named(t.config.containerName), []);
      assert.ok(!JSON.stringify(t.auditLines()).includes('eyJ'), 'no token in the audit log');
    } finally {
      await t.cleanup();
      await access.close();
    }
  });
});
