import type { RequestHandler } from 'express';
import type { Deployer } from '../deployer.js';
import type { Reply } from '../respond.js';
import { environmentOnlyBodySchema, parseBody } from './body.js';

/** Read-only: it never changes anything and answers while a deploy runs. */
export function statusRoute(deployer: Deployer, reply: Reply): RequestHandler {
  return async (req, res) => {
    // Same rule as everywhere: a body, if any, may only carry the informational environment.
    parseBody(environmentOnlyBodySchema, req.body);
    await reply(res, 200, await deployer.status());
  };
}
