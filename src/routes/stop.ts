import type { RequestHandler } from 'express';
import type { Config } from '../config/config.js';
import type { Deployer } from '../deploy/deployer.js';
import { auditContext, authenticatedClient, type Reply } from '../http/respond.js';
import { checkEnvironment, environmentOnlyBodySchema, parseBody } from './body.js';

export function stopRoute(config: Config, deployer: Deployer, reply: Reply): RequestHandler {
  return async (req, res) => {
    const body = parseBody(environmentOnlyBodySchema, req.body);
    checkEnvironment(body.environment, config.environment);
    const result = await deployer.stop({
      requestId: String(req.id),
      clientId: authenticatedClient(res),
      endpoint: auditContext(res)?.endpoint ?? req.path,
    });
    await reply(res, 200, result);
  };
}
