import type { RequestHandler } from 'express';
import type { Config } from '../config/config.js';
import type { Deployer } from '../deploy/deployer.js';
import type { StopResult } from '../deploy/operations.js';
import { auditContext, authenticatedClient, type Reply } from '../http/respond.js';
import * as z from '../zod.js';
import { type SameShape, warningsSchema } from './answers.js';
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

/** The 200 answer of a stop (StopResult). */
export const stopAnswerSchema = z
  .strictObject({
    status: z.literal('stopped'),
    container_name: z.string(),
    removed: z.boolean().check(z.describe('Whether there was a container to stop and remove; false: the stop was a no-op.')),
    also_stopped: z
      .optional(z.array(z.string()))
      .check(z.describe("Other running containers of this environment's runtime it stopped too.")),
    warnings: z.optional(warningsSchema),
  })
  .check(z.describe('The runtime is stopped.'));

const stopAnswerMatches: SameShape<z.output<typeof stopAnswerSchema>, StopResult> = true;
void stopAnswerMatches;
