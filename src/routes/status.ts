import { randomUUID } from 'node:crypto';
import type { Request, RequestHandler } from 'express';
import type { Logger } from 'pino';
import { ACCESS_JWT_HEADER, type AccessJwtVerifier, checkServiceToken, type HashedToken } from '../auth.js';
import type { Deployer } from '../deploy/deployer.js';
import { contentTypeProblem } from '../http/content-type.js';
import type { Reply } from '../http/respond.js';
import { environmentOnlyBodySchema, parseBody } from './body.js';

/** Read-only: it never changes anything and answers while a deploy runs. */
export function statusRoute(deployer: Deployer, reply: Reply): RequestHandler {
  return async (req, res) => {
    // Same rule as everywhere: a body, if any, may only carry the informational environment.
    parseBody(environmentOnlyBodySchema, req.body);
    await reply(res, 200, await deployer.status());
  };
}

/**
 * Status is polled, and should cost little more than a bare HTTP answer. A request that is plainly
 * right (GET /v1/status, no body, the JSON content type, a valid token and, when configured, a valid
 * Access JWT) is answered here, with the same checks the ordinary chain makes, in one step. Anything
 * else, or any doubt, goes on through the ordinary chain, which explains every refusal; so no refusal
 * is written twice, and no check is skipped. It stands before the request log: a successful status is
 * logged at debug only, and below debug that line would be dropped anyway (see http-log.ts).
 */
export function statusFastPath(
  tokens: readonly HashedToken[],
  verifyJwt: AccessJwtVerifier | null,
  deployer: Deployer,
): RequestHandler {
  return (req, res, next) => {
    if (
      req.method !== 'GET' ||
      req.url !== '/v1/status' ||
      hasBody(req) ||
      contentTypeProblem(req.headers['content-type']) !== null
    ) {
      next();
      return;
    }
    try {
      checkServiceToken(req.headers, tokens);
    } catch {
      next();
      return;
    }
    const answer = () =>
      deployer.status().then((body) => {
        const json = JSON.stringify(body);
        res.writeHead(200, {
          'X-Request-Id': randomUUID(),
          'Content-Type': 'application/json; charset=utf-8',
          'Content-Length': Buffer.byteLength(json),
        });
        res.end(json);
      }, next);
    if (verifyJwt === null) {
      void answer();
      return;
    }
    const jwt = req.headers[ACCESS_JWT_HEADER];
    verifyJwt(typeof jwt === 'string' ? jwt : undefined).then(answer, () => next());
  };
}

/** The fast path when the request log is at debug: every status request then takes the ordinary chain. */
export function statusFastPathFor(logger: Logger, ...args: Parameters<typeof statusFastPath>): RequestHandler {
  return logger.isLevelEnabled('debug') ? (_req, _res, next) => next() : statusFastPath(...args);
}

const hasBody = (req: Request): boolean =>
  req.headers['transfer-encoding'] !== undefined ||
  (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');
