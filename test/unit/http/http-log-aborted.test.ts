import assert from 'node:assert/strict';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import type { Request, Response } from 'express';
import { pino } from 'pino';
import { createHeaderGuard } from '../../../src/http/header-guard.js';
import { requestLogging } from '../../../src/http/http-log.js';

// The request log's line for a request that never got its answer: the caller left (CI's connection
// dropped mid-deploy), or the response failed. A deploy whose caller left is abandoned, or goes on past
// the point of no return with nobody told the outcome: the operator must see it at warn, as the 499
// the agent would have answered, not at info beside every success (http-log.ts).

type Line = { level: number; msg: string; req?: { method?: string; url?: string }; err?: { message?: string } };

/**
 * One request through the middleware at info; `route` runs in place of the route and never answers.
 * With `leave`, the caller goes away once the route has the request. Returns the log lines.
 */
async function linesOf(method: string, path: string, route: (res: Response) => void, leave: boolean): Promise<Line[]> {
  const lines: Line[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Line) });
  const middleware = requestLogging(logger, createHeaderGuard([]));
  let routed = (): void => undefined;
  let closed = (): void => undefined;
  const server = createServer((req, res) => {
    // The line is written on the response's 'close' too: read the lines a turn after it.
    res.once('close', () => setImmediate(closed));
    middleware(req as Request, res as Response, () => {
      route(res as Response);
      routed();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const done = new Promise<void>((resolve) => {
      closed = resolve;
    });
    const req = request({ host: '127.0.0.1', port, method, path, agent: false }, (res) => res.resume());
    req.on('error', () => undefined);
    if (leave) routed = () => req.destroy();
    req.end();
    await done;
    return lines;
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

const levels = (lines: Line[]) => lines.map((l) => [l.level, l.msg, l.req?.method, l.req?.url]);

describe('request log: an answer never sent', () => {
  it('a deploy or stop whose caller left before its answer is a warn line, "request aborted"', async () => {
    for (const path of ['/v1/deploy', '/v1/stop']) {
      const lines = await linesOf('POST', path, () => undefined, true);
      assert.deepEqual(levels(lines), [[40, 'request aborted', 'POST', path]], path);
    }
  });

  it('a status through pino-http (a query: not the quiet path) whose caller left is a warn line too', async () => {
    const lines = await linesOf('GET', '/v1/status?verbose=1', () => undefined, true);
    assert.deepEqual(levels(lines), [[40, 'request aborted', 'GET', '/v1/status']]);
  });

  it('a response that fails ("error" before its end) is an error line with the error', async () => {
    const lines = await linesOf(
      'POST',
      '/v1/stop',
      (res) => {
        res.emit('error', new Error('write EPIPE'));
        res.end('{}');
      },
      false,
    );
    assert.deepEqual(levels(lines), [[50, 'request errored', 'POST', '/v1/stop']]);
    assert.equal(lines[0]?.err?.message, 'write EPIPE');
  });
});
