/**
 * The status fast path (routes/status.ts) stands before Express and answers a plainly right status
 * in one step. Each request here is one the ordinary chain refuses (another method, another path, a
 * body, the wrong content type, a bad token or Access JWT): a guard loosened by one condition would
 * answer it 200 with the runtime's state, so each must come back with the chain's refusal. Then the
 * fast path's own answers: the JWT check, its failures and their log lines, and the debug log level,
 * at which every status takes the ordinary chain and leaves its line.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import type { AccessJwtVerifier } from '../../../src/auth.js';
import { AgentError } from '../../../src/errors.js';
import { type AppServer, JSON_TYPE, rawRequest, SERVICE_AUTH, startAppServer } from '../../support/app-server.js';

const RIGHT = { ...SERVICE_AUTH, ...JSON_TYPE };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const RAY = '0123456789abcdef-FRA';

type Line = Record<string, unknown> & { level: number; msg: string };

/** A logger at `level` whose lines the test reads. */
function recorded(level: pino.Level) {
  const lines: Line[] = [];
  const logger = pino({ level }, { write: (line: string) => void lines.push(JSON.parse(line) as Line) });
  return { logger, lines };
}

/** A refusal: the status asked, the chain's reason, and nothing of the runtime's state. */
function assertRefused(answer: { status: number; json: Record<string, unknown> }, status: number, what: string): void {
  assert.equal(answer.status, status, `${what}: ${JSON.stringify(answer.json)}`);
  assert.equal('running' in answer.json, false, `${what} was answered with the runtime's state`);
}

describe('status fast path: what it must hand on to the ordinary chain', () => {
  let app: AppServer;
  before(async () => {
    app = await startAppServer('fast-path');
  });
  after(() => app.close());

  it('another method on /v1/status, without a body: 405 Allow GET, not a status', async () => {
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS']) {
      const r = await rawRequest(app.base, method, '/v1/status', RIGHT);
      assertRefused(r, 405, method);
      assert.equal(r.headers['allow'], 'GET', method);
    }
  });

  it('GET on another path: 405 for the mutating endpoints, 404 for anything else', async () => {
    for (const path of ['/v1/deploy', '/v1/stop']) {
      const r = await rawRequest(app.base, 'GET', path, RIGHT);
      assertRefused(r, 405, path);
      assert.equal(r.headers['allow'], 'POST', path);
    }
    for (const path of ['/v1/status/', '/v1/statusx', '/V1/STATUS', '/v1/status%2F', '/']) {
      assertRefused(await rawRequest(app.base, 'GET', path, RIGHT), 404, path);
    }
  });

  it('a body, by Content-Length or chunked, is parsed by the chain: a field it refuses is a 400', async () => {
    assertRefused(await rawRequest(app.base, 'GET', '/v1/status', RIGHT, '[]'), 400, 'an array by Content-Length');
    const chunked = await rawRequest(app.base, 'GET', '/v1/status', RIGHT, JSON.stringify({ force: true }), true);
    assertRefused(chunked, 400, 'a chunked body with a field');
    assert.match(String(chunked.json['reason']), /fields the agent does not accept: "force"/);
    assertRefused(await rawRequest(app.base, 'GET', '/v1/status', RIGHT, 'not json', true), 400, 'chunked, not JSON');
    // The same routes with a right body, and an empty one, answer: the refusals above are the body's.
    assert.equal((await rawRequest(app.base, 'GET', '/v1/status', RIGHT, '{}', true)).status, 200);
    assert.equal((await rawRequest(app.base, 'GET', '/v1/status', { ...RIGHT, 'content-length': '0' })).status, 200);
  });

  it('no Content-Type or another charset: 415; a wrong or missing service token: 401', async () => {
    assertRefused(await rawRequest(app.base, 'GET', '/v1/status', SERVICE_AUTH), 415, 'no Content-Type');
    const utf16 = { ...SERVICE_AUTH, 'content-type': 'application/json; charset=utf-16' };
    assertRefused(await rawRequest(app.base, 'GET', '/v1/status', utf16), 415, 'UTF-16');
    for (const [what, headers] of [
      ['no token', JSON_TYPE],
      ['a wrong secret', { ...RIGHT, 'cf-access-client-secret': 'another-secret-of-length' }],
      ['another client id', { ...RIGHT, 'cf-access-client-id': 'other.access' }],
      ['the secret alone', { ...JSON_TYPE, 'cf-access-client-secret': SERVICE_AUTH['cf-access-client-secret'] ?? '' }],
    ] as const) {
      assertRefused(await rawRequest(app.base, 'GET', '/v1/status', headers), 401, what);
    }
  });

  it('a plain status, and one with a query (the chain): 200, JSON, an id, no keys age without the JWT check', async () => {
    for (const path of ['/v1/status', '/v1/status?verbose=1']) {
      const r = await rawRequest(app.base, 'GET', path, RIGHT);
      assert.equal(r.status, 200, path);
      assert.equal(r.headers['content-type'], 'application/json; charset=utf-8', path);
      assert.match(String(r.headers['x-request-id']), UUID, path);
      assert.equal(r.json['running'], true, path);
      assert.equal('access_keys_age_seconds' in r.json, false, path);
    }
  });
});

describe('status fast path with the Access JWT check', () => {
  const GOOD = 'good.jwt.token';
  let keys: 'good' | 'unavailable' = 'good';
  const seen: (string | undefined)[] = [];
  // A stand-in for the verifier (auth.ts is tested on its own): GOOD passes, anything else is refused
  // as auth.ts refuses it; with the keys unavailable, every token is a 503.
  const verifyJwt: AccessJwtVerifier = Object.assign(
    async (token: string | undefined) => {
      seen.push(token);
      if (keys === 'unavailable') {
        throw new AgentError(503, 'Cloudflare Access signing keys could not be fetched', { code: 'keys_unavailable' });
      }
      if (token === undefined) throw new AgentError(401, 'missing Cf-Access-Jwt-Assertion header');
      if (token !== GOOD) throw new AgentError(401, 'invalid Cloudflare Access token (signature)');
    },
    { keysAgeSeconds: () => 42 },
  );
  const { logger, lines } = recorded('info');
  let app: AppServer;
  before(async () => {
    app = await startAppServer('fast-path-jwt', { logger, verifyJwt });
  });
  after(() => app.close());

  it('a good service token without a JWT, or with a bad one: 401, and a warn line with the allowed fields only', async () => {
    for (const [what, jwt] of [
      ['no JWT', undefined],
      ['a bad JWT', 'forged.jwt.token'],
      ['an array-joined JWT', `${GOOD}, ${GOOD}`],
    ] as const) {
      lines.length = 0;
      const headers = { ...RIGHT, 'cf-ray': RAY, ...(jwt === undefined ? {} : { 'cf-access-jwt-assertion': jwt }) };
      const r = await rawRequest(app.base, 'GET', '/v1/status', headers);
      assertRefused(r, 401, what);
      assert.equal(r.headers['content-type'], 'application/json; charset=utf-8', what);
      assert.equal(r.json['status'], 'error', what);
      const id = String(r.headers['x-request-id']);
      assert.match(id, UUID, what);
      const line = lines.find((l) => l.msg === 'request completed');
      assert.ok(line !== undefined, `${what}: the refusal is logged`);
      assert.equal(line.level, 40, what);
      assert.deepEqual(line['req'], { id, method: 'GET', url: '/v1/status', cf_ray: RAY }, what);
      assert.deepEqual(line['res'], { statusCode: 401 }, what);
      const took = line['responseTime'];
      assert.ok(typeof took === 'number' && took >= 0 && took < 60_000, `${what}: responseTime ${String(took)}`);
      assert.equal(JSON.stringify(lines).includes(SERVICE_AUTH['cf-access-client-secret'] ?? '?'), false);
      assert.equal(
        lines.some((l) => l.msg === 'unexpected error'),
        false,
        `${what}: a refusal is not a bug`,
      );
    }
    assert.equal(seen.at(-3), undefined, 'no JWT is handed on as none');
  });

  it('a good JWT: 200 with the keys age, by the fast path and by the chain; the JWT checked once a request', async () => {
    for (const path of ['/v1/status', '/v1/status?verbose=1']) {
      seen.length = 0;
      const r = await rawRequest(app.base, 'GET', path, { ...RIGHT, 'cf-access-jwt-assertion': GOOD });
      assert.equal(r.status, 200, `${path}: ${JSON.stringify(r.json)}`);
      assert.equal(r.json['running'], true, path);
      assert.equal(r.json['access_keys_age_seconds'], 42, path);
      assert.deepEqual(seen, [GOOD], path);
    }
  });

  it('keys unavailable: 503 with its reason and an error line', async () => {
    keys = 'unavailable';
    lines.length = 0;
    try {
      const r = await rawRequest(app.base, 'GET', '/v1/status', { ...RIGHT, 'cf-access-jwt-assertion': GOOD });
      assertRefused(r, 503, 'keys unavailable');
      assert.equal(r.json['reason'], 'Cloudflare Access signing keys could not be fetched');
      assert.deepEqual(
        lines.map((l) => [l.level, l.msg, l['res']]),
        [[50, 'request completed', { statusCode: 503 }]],
      );
    } finally {
      keys = 'good';
    }
  });

  it('a bug behind the status (not an AgentError): 500 without its details, and the error logged whole', async () => {
    const status = app.deployer.status;
    Object.assign(app.deployer, { status: () => Promise.reject(new Error('a bug with details')) });
    lines.length = 0;
    try {
      const r = await rawRequest(app.base, 'GET', '/v1/status', { ...RIGHT, 'cf-access-jwt-assertion': GOOD });
      assertRefused(r, 500, 'a bug');
      assert.deepEqual(r.json, { status: 'error', reason: 'internal error; the details are in the agent log' });
      const id = String(r.headers['x-request-id']);
      const bug = lines.find((l) => l.msg === 'unexpected error');
      assert.equal(bug?.level, 50);
      assert.equal(bug?.['requestId'], id);
      assert.equal((bug?.['err'] as { message?: string } | undefined)?.message, 'a bug with details');
      assert.deepEqual(
        lines.filter((l) => l.msg === 'request completed').map((l) => [l.level, l['res']]),
        [[50, { statusCode: 500 }]],
      );
    } finally {
      Object.assign(app.deployer, { status });
    }
  });
});

describe('status at the debug log level', () => {
  const { logger, lines } = recorded('debug');
  let app: AppServer;
  before(async () => {
    app = await startAppServer('fast-path-debug', { logger });
  });
  after(() => app.close());

  it('takes the ordinary chain, and leaves its debug line (LOG_LEVEL=debug logs status requests too)', async () => {
    const r = await rawRequest(app.base, 'GET', '/v1/status', { ...RIGHT, 'cf-ray': RAY });
    assert.equal(r.status, 200);
    const id = String(r.headers['x-request-id']);
    assert.deepEqual(
      lines.filter((l) => l.msg === 'request completed').map((l) => [l.level, l['req'], l['res']]),
      [[20, { id, method: 'GET', url: '/v1/status', cf_ray: RAY }, { statusCode: 200 }]],
    );
  });
});
