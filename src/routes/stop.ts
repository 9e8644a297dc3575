import type { RequestHandler } from 'express';
import { z } from 'zod';
import type { Config } from '../config.js';
import type { Deployer } from '../deployer.js';
import type { Reply } from '../respond.js';
import { checkEnvironment, parseBody } from './body.js';

export const stopBodySchema = z.strictObject({
  environment: z.string({ error: 'must be a string' }).max(64).optional(),
});

export function stopRoute(config: Config, deployer: Deployer, reply: Reply): RequestHandler {
  return async (req, res) => {
    const body = parseBody(stopBodySchema, req.body);
    checkEnvironment(body.environment, config.environment);
    const result = await deployer.stop({ requestId: String(req.id), clientId: String(res.locals['clientId']) });
    await reply(res, 200, result);
  };
}
