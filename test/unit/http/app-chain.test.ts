/**
 * The ordinary chain of createApp (http/app.ts), past the status fast path: which requests get an
 * audit line and with what, what the body parser's failures are answered with, what an unexpected
 * error leaves in the log, and what the answers do not carry (X-Powered-By, ETag). The real app over
 * the scripted engine on a loopback port, well under a second.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { pino } from 'pino';
import { AgentError } from '../../../src/errors.js';
import { type AppServer, JSON_TYPE, rawRequest, SERVICE_AUTH, startAppServer } from '../../support/app-server.js';
import { UNIT_REPOSITORY } from '../../support/unit-config.js';

const RIGHT = { ...SERVICE_AUTH, ...JSON_TYPE };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

type Line = Record<string, unknown> & { level: number; msg: string };

describe('the app chain', () => {
  const lines: Line[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Line) });
  let app: AppServer;
  before(async () => {
    app = await startAppServer('app-chain', { logger });
  });
  after(() => app.close());

  /** The app's audit lines of refusals (the deployer writes its own file). */
  const auditLines = () =>
    readFileSync(app.auditPath, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const lineOf = (id: unknown) => auditLines().filter((l) => l['request_id'] === id);

  it('a charset named utf8 is refused alike on a deploy and a status, with the reason that says what to send', async () => {
    const utf8 = { ...SERVICE_AUTH, 'content-type': 'application/json; charset=utf8' };
    const deploy = await rawRequest(app.base, 'POST', '/v1/deploy', utf8, JSON.stringify({ image: `${UNIT_REPOSITORY}:v2` }));
    const status = await rawRequest(app.base, 'GET', '/v1/status', utf8);
    for (const r of [deploy, status]) {
      assert.equal(r.status, 415, JSON.stringify(r.json));
      assert.match(String(r.json['reason']), /charset=utf-8, or no charset/);
    }
  });

  it('a refused deploy, stop or wrong method on them is audited with its id, endpoint, status and time', async () => {
    const before = Date.now();
    for (const [method, path, body, status] of [
      ['POST', '/v1/deploy', JSON.stringify({ image: `${UNIT_REPOSITORY}:v2`, environment: 'prod' }), 409],
      ['POST', '/v1/stop', JSON.stringify({ environment: 'prod' }), 409],
      ['GET', '/v1/deploy', undefined, 405],
      ['DELETE', '/v1/stop', undefined, 405],
    ] as const) {
      const r = await rawRequest(app.base, method, path, RIGHT, body);
      assert.equal(r.status, status, `${method} ${path}: ${JSON.stringify(r.json)}`);
      const id = r.headers['x-request-id'];
      assert.match(String(id), UUID);
      const audited = lineOf(id);
      assert.equal(audited.length, 1, `${method} ${path} has one audit line by its request id`);
      const line = audited[0] ?? {};
      assert.equal(line['endpoint'], path, `${method} ${path}`);
      assert.equal(line['status'], status);
      assert.equal(line['outcome'], 'refused');
      assert.equal(line['reason'], r.json['reason']);
      // The method is checked before authentication: a 405 has no client.
      assert.equal(line['client_id'], method === 'POST' ? 'client.access' : null, `${method} ${path}`);
      assert.equal(line['image'], path === '/v1/deploy' && method === 'POST' ? `${UNIT_REPOSITORY}:v2` : null);
      const duration = line['duration_ms'];
      assert.ok(typeof duration === 'number' && duration >= 0 && duration <= Date.now() - before, String(duration));
    }
  });

  it('a refusal before authentication keeps the claimed client id; status and unknown paths are not audited', async () => {
    const claimed = await rawRequest(app.base, 'POST', '/v1/stop', {
      ...RIGHT,
      'cf-access-client-secret': 'another-secret-of-length',
    });
    assert.equal(claimed.status, 401);
    const [line] = lineOf(claimed.headers['x-request-id']);
    assert.equal(line?.['claimed_client_id'], 'client.access');
    assert.equal(line?.['client_id'], null);
    const count = auditLines().length;
    for (const [method, path, headers] of [
      ['GET', '/v1/status', JSON_TYPE],
      ['POST', '/v1/status', RIGHT],
      ['GET', '/v1/nothing', RIGHT],
    ] as const) {
      const r = await rawRequest(app.base, method, path, headers);
      assert.ok(r.status >= 400, `${method} ${path}`);
    }
    assert.equal(auditLines().length, count, 'no audit line for status or an unknown path');
  });

  it('says which method a path accepts, and which endpoints there are', async () => {
    const wrong = await rawRequest(app.base, 'GET', '/v1/stop', RIGHT);
    assert.deepEqual([wrong.status, wrong.json['reason']], [405, '/v1/stop accepts POST only']);
    const none = await rawRequest(app.base, 'GET', '/v1/nothing', RIGHT);
    assert.deepEqual(
      [none.status, none.json['reason']],
      [404, 'no such endpoint; the agent serves POST /v1/deploy, GET /v1/status and POST /v1/stop'],
    );
  });

  it("the body parser's refusals: too large 413, not a JSON object 400, compressed 415", async () => {
    const reason = async (body: string, headers: Record<string, string> = RIGHT) =>
      (await rawRequest(app.base, 'POST', '/v1/stop', headers, body)).json['reason'];
    const big = JSON.stringify({ environment: 'dev', pad: 'x'.repeat(4096) });
    assert.equal(await reason(big), 'request body is larger than 4096 bytes');
    // Just under the limit, the body is read (and its extra field refused by the schema).
    assert.match(String(await reason(JSON.stringify({ pad: 'x'.repeat(4080) }))), /fields the agent does not accept/);
    for (const notAnObject of ['nope', '5', '"dev"', 'null']) {
      assert.equal(await reason(notAnObject), 'request body is not a JSON object', notAnObject);
    }
    const gzipped = gzipSync('{}').toString('latin1');
    const compressed = await rawRequest(app.base, 'POST', '/v1/stop', { ...RIGHT, 'content-encoding': 'gzip' }, gzipped);
    assert.deepEqual([compressed.status, compressed.json['reason']], [415, 'compressed request bodies are not accepted']);
  });

  it('a bug behind a route: 500 without its details, logged whole at error and as a failed request at warn', async () => {
    const stop = app.deployer.stop;
    lines.length = 0;
    Object.assign(app.deployer, { stop: () => Promise.reject(new Error('a bug with details')) });
    try {
      const r = await rawRequest(app.base, 'POST', '/v1/stop', RIGHT, '{}');
      assert.deepEqual(
        [r.status, r.json],
        [500, { status: 'error', reason: 'internal error; the details are in the agent log' }],
      );
      const id = r.headers['x-request-id'];
      const bug = lines.find((l) => l.msg === 'unexpected error');
      assert.equal(bug?.level, 50);
      assert.equal(bug?.['requestId'], id);
      assert.equal((bug?.['err'] as { message?: string } | undefined)?.message, 'a bug with details');
      const failed = lines.find((l) => l.msg === 'request failed');
      assert.deepEqual(
        [failed?.level, failed?.['requestId'], failed?.['status'], failed?.['reason']],
        [40, id, 500, 'internal error; the details are in the agent log'],
      );
      // A known failure of 500 or more is logged as failed too, with its own reason; a refusal is not.
      lines.length = 0;
      Object.assign(app.deployer, { stop: () => Promise.reject(new AgentError(503, 'the engine is unreachable')) });
      const known = await rawRequest(app.base, 'POST', '/v1/stop', RIGHT, '{}');
      assert.deepEqual([known.status, known.json['reason']], [503, 'the engine is unreachable']);
      assert.deepEqual(
        lines.filter((l) => l.msg === 'request failed').map((l) => [l.level, l['status'], l['reason']]),
        [[40, 503, 'the engine is unreachable']],
      );
      assert.equal(
        lines.some((l) => l.msg === 'unexpected error'),
        false,
      );
      lines.length = 0;
      Object.assign(app.deployer, { stop: () => Promise.reject(new AgentError(409, 'busy')) });
      assert.equal((await rawRequest(app.base, 'POST', '/v1/stop', RIGHT, '{}')).status, 409);
      assert.equal(
        lines.some((l) => l.msg === 'request failed'),
        false,
        'a 409 is not a failure',
      );
    } finally {
      Object.assign(app.deployer, { stop });
    }
  });

  it('answers carry no X-Powered-By and no ETag', async () => {
    for (const [method, path, body] of [
      ['GET', '/v1/status?verbose=1', undefined],
      ['GET', '/v1/status', undefined],
      ['GET', '/v1/nothing', undefined],
      ['POST', '/v1/stop', '[]'],
    ] as const) {
      const r = await rawRequest(app.base, method, path, RIGHT, body);
      assert.equal(r.headers['x-powered-by'], undefined, path);
      assert.equal(r.headers['etag'], undefined, path);
    }
  });
});
