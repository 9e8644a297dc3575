import type { RequestHandler } from 'express';
import { z } from 'zod';
import type { Config } from '../config/config.js';
import type { Deployer } from '../deploy/deployer.js';
import { auditContext, authenticatedClient, type Reply } from '../http/respond.js';
import { MAX_REFERENCE_LENGTH, parseImageReference } from '../policy/image.js';
import { checkEnvironment, parseBody } from './body.js';

// Security: strict. The body can name an image and nothing else: no container name, volumes, env,
// command or any other runtime behaviour can be smuggled in through an extra field.
export const deployBodySchema = z.strictObject({
  image: z
    .string({ error: 'is required and must be a string' })
    .max(MAX_REFERENCE_LENGTH, `must be at most ${MAX_REFERENCE_LENGTH} characters`),
  environment: z.string({ error: 'must be a string' }).max(64).optional(),
});

/** `afterDeployed` runs once a deploy has answered 200: clean-up that must never delay or fail it. */
export function deployRoute(
  config: Config,
  deployer: Deployer,
  reply: Reply,
  afterDeployed: () => void = () => undefined,
): RequestHandler {
  return async (req, res) => {
    const body = parseBody(deployBodySchema, req.body);
    const context = auditContext(res);
    if (context !== undefined) context.image = body.image;
    checkEnvironment(body.environment, config.environment);
    const image = parseImageReference(body.image, { repository: config.imageRepository, environment: config.environment });

    const callerGone = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) callerGone.abort();
    });
    const result = await deployer.deploy(image, {
      requestId: String(req.id),
      clientId: authenticatedClient(res),
      endpoint: context?.endpoint ?? req.path,
      callerGone: callerGone.signal,
      receivedAt: context?.startedAt ?? Date.now(),
    });
    // The tag's digest as recorded (immutable tags: the one it pointed at now), for the audit line.
    const tagDigest = deployer.recordedDigest(image.tag);
    if (context !== undefined && tagDigest !== null) context.digests = { tag: tagDigest, image: result.image_digest };
    await reply(res, 200, result);
    afterDeployed();
  };
}
