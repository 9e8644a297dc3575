import { randomUUID } from 'node:crypto';
import type { RequestHandler } from 'express';
import type { Logger } from 'pino';
import { pinoHttp } from 'pino-http';
import type { HeaderGuard } from './header-guard.js';

/**
 * The request log, and every request's id. The id is the agent's own, never the caller's (a
 * client-chosen id could forge or confuse audit entries); it is the X-Request-Id of the answer and
 * the audit log's request_id.
 *
 * GET /v1/status is polled (CI, monitoring, operators): its successful answers are logged at debug
 * only. Below debug, pino-http's per-request child logger (it serialises the request for every call)
 * was most of what a status request cost, for a line that is then dropped; so then status requests
 * get their id here, and only an answer of 400 or more is logged, at warn, as pino-http would.
 */
export function requestLogging(logger: Logger, guard: HeaderGuard): RequestHandler {
  const httpLogger = pinoHttp({
    logger,
    genReqId: (_req, res) => {
      const id = randomUUID();
      res.setHeader('X-Request-Id', id);
      return id;
    },
    // Security: an allow-list of what is logged about a request. The Access headers (service token
    // secret, JWT) and any credential never reach a log line.
    serializers: {
      req: (req: RequestLike) => requestFields(req, guard),
      res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
    },
    redact: { paths: ['req.headers', 'res.headers'], remove: true },
    // Status is polled; its successful answers are debug noise. Everything else stays visible.
    customLogLevel: (req, res, err) => {
      if (err !== undefined || res.statusCode >= 500) return 'error';
      // No answer sent (pino-http's "request aborted"): the caller left, so a deploy was abandoned (the
      // 499 it would have had) or went on with nobody told its outcome. statusCode is still Node's 200.
      if (res.statusCode >= 400 || !res.writableEnded) return 'warn';
      return req.method === 'GET' ? 'debug' : 'info';
    },
  });
  const quietStatus = !logger.isLevelEnabled('debug');
  return (req, res, next) => {
    if (!quietStatus || req.method !== 'GET' || req.url !== '/v1/status') {
      httpLogger(req, res, next);
      return;
    }
    const id = randomUUID();
    req.id = id;
    res.setHeader('X-Request-Id', id);
    const started = Date.now();
    res.once('finish', () => {
      if (res.statusCode < 400) return;
      const level = res.statusCode >= 500 ? 'error' : 'warn';
      logger[level](
        { req: requestFields(req, guard), res: { statusCode: res.statusCode }, responseTime: Date.now() - started },
        'request completed',
      );
    });
    next();
  };
}

interface RequestLike {
  readonly id: unknown;
  readonly method?: string;
  readonly url?: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

/**
 * Security: the path without its query string (a `?secret=...` would otherwise be on disk) and a
 * cf-ray only if it has a ray id's shape: see header-guard.ts.
 */
export function requestFields(req: RequestLike, guard: HeaderGuard): Record<string, unknown> {
  return { id: req.id, method: req.method, url: guard.path(req.url), cf_ray: guard.cfRay(req.headers['cf-ray']) };
}
