import assert from 'node:assert/strict';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import type { Request, Response } from 'express';
import { pino } from 'pino';
import { createHeaderGuard } from '../../../src/http/header-guard.js';
import { requestLogging } from '../../../src/http/http-log.js';

// The request log on a loopback server, at info (status polls take the quiet path) and at debug (every
// request through pino-http): which answers leave a line, at which level, with which fields only.
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const RAY = '0123456789abcdef-FRA';

type Line = Record<string, unknown> & { level: number; msg: string; req?: Record<string, unknown> };

/** One request through the middleware; answers `status`, returns the log lines and the answer's id. */
async function logOf(level: 'info' | 'debug', method: string, path: string, status: number) {
  const lines: Line[] = [];
  const logger = pino({ level }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const middleware = requestLogging(logger, createHeaderGuard([]));
  let seenId: unknown;
  const server = createServer((req, res) => {
    middleware(req as Request, res as Response, () => {
      seenId = (req as Request).id;
      res.statusCode = status;
      res.end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const id = await new Promise<string>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port, method, path, agent: false, headers: { 'cf-ray': RAY, 'x-secret': 'hunter22' } },
        (res) => {
          res.resume();
          res.on('end', () => resolve(String(res.headers['x-request-id'])));
        },
      );
      req.on('error', reject);
      req.end();
    });
    // The line is written on 'finish', which may come a tick after the client has the answer.
    await new Promise((resolve) => setImmediate(resolve));
    assert.match(id, UUID);
    assert.equal(seenId, id, "the request's id is the answer's X-Request-Id");
    assert.equal(JSON.stringify(lines).includes('hunter22'), false, 'no header is logged');
    return { lines, id };
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

describe('request log', () => {
  it('at info, a status poll answered below 400 leaves no line', async () => {
    assert.deepEqual((await logOf('info', 'GET', '/v1/status', 200)).lines, []);
    assert.deepEqual((await logOf('info', 'GET', '/v1/status', 399)).lines, []);
  });

  it('at info, a status poll answered 400 or more is a warn line, 500 or more an error line, with the allowed fields', async () => {
    for (const [status, level] of [
      [400, 40],
      [499, 40],
      [500, 50],
    ] as const) {
      const { lines, id } = await logOf('info', 'GET', '/v1/status', status);
      assert.equal(lines.length, 1);
      const line = lines[0] as Line;
      assert.equal(line.level, level, String(status));
      assert.equal(line.msg, 'request completed');
      assert.deepEqual(line.req, { id, method: 'GET', url: '/v1/status', cf_ray: RAY });
      assert.deepEqual(line.res, { statusCode: status });
      assert.ok(typeof line.responseTime === 'number' && line.responseTime >= 0 && line.responseTime < 60_000);
    }
  });

  it('at info, other requests go through pino-http: info for a success not a GET, warn and error for failures', async () => {
    const post = await logOf('info', 'POST', '/v1/status', 200);
    assert.deepEqual(
      post.lines.map((l) => [l.level, l.req]),
      [[30, { id: post.id, method: 'POST', url: '/v1/status', cf_ray: RAY }]],
    );
    assert.deepEqual((await logOf('info', 'GET', '/v1/status?x=1', 200)).lines, [], 'a GET success is debug');
    assert.deepEqual(
      (await logOf('info', 'POST', '/v1/deploy?token=hunter22', 400)).lines.map((l) => [l.level, l.req?.url, l.res]),
      [[40, '/v1/deploy', { statusCode: 400 }]],
    );
    assert.deepEqual(
      (await logOf('info', 'POST', '/v1/stop', 500)).lines.map((l) => l.level),
      [50],
    );
    assert.deepEqual(
      (await logOf('info', 'PUT', '/elsewhere', 404)).lines.map((l) => l.req?.url),
      ['[withheld: not an endpoint of the agent]'],
    );
  });

  it('at debug, a status poll goes through pino-http too, at debug', async () => {
    const { lines, id } = await logOf('debug', 'GET', '/v1/status', 200);
    assert.deepEqual(
      lines.map((l) => [l.level, l.req, l.res]),
      [[20, { id, method: 'GET', url: '/v1/status', cf_ray: RAY }, { statusCode: 200 }]],
    );
  });
});
