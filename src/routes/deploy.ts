import type { RequestHandler } from 'express';
import type { Config } from '../config/config.js';
import type { Deployer } from '../deploy/deployer.js';
import type { DeployResult } from '../deploy/operations.js';
import { auditContext, authenticatedClient, type Reply } from '../http/respond.js';
import { MAX_REFERENCE_LENGTH, parseImageReference } from '../policy/image.js';
import { provenanceSchema } from '../supply-chain/provenance.js';
import * as z from '../zod.js';
import { type SameShape, warningsSchema } from './answers.js';
import { checkEnvironment, parseBody } from './body.js';

// Security: strict. The body can name an image and nothing else: no container name, volumes, env,
// command or any other runtime behaviour can be smuggled in through an extra field.
export const deployBodySchema = z.strictObject({
  image: z
    .string({ error: 'is required and must be a string' })
    .check(z.maxLength(MAX_REFERENCE_LENGTH, `must be at most ${MAX_REFERENCE_LENGTH} characters`)),
  environment: z.optional(z.string({ error: 'must be a string' }).check(z.maxLength(64))),
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
    // The audit line keeps apart what the tag resolved to (an image index, maybe) and what runs.
    if (context !== undefined) context.digests = { tag: result.tag_digest, image: result.image_digest };
    await reply(res, 200, result);
    afterDeployed();
  };
}

/** The 200 answer of a deploy (DeployResult). */
export const deployAnswerSchema = z
  .strictObject({
    status: z.literal('deployed'),
    container_name: z.string(),
    image: z.string().check(z.describe('The image deployed, as requested.')),
    environment: z.string(),
    image_digest: z
      .string()
      .check(z.describe("The manifest that runs: sha256:<64 hex> (of an image index, the one for the engine's platform).")),
    tag_digest: z.string().check(z.describe('What the tag resolved to: image_digest, or the image index it was chosen from.')),
    container_id: z.string(),
    started_at: z.nullable(z.string()).check(z.describe('When the engine started the container (ISO 8601).')),
    previous_image: z
      .nullable(z.string())
      .check(z.describe('The last image deployed successfully before this one: deploy it to roll back.')),
    warnings: z.optional(warningsSchema),
    provenance: z.optional(provenanceSchema).check(z.describe('What built the image, when IMAGE_VERIFICATION verified it.')),
  })
  .check(z.describe('A deploy that ran: the new container has passed its start check.'));

const deployAnswerMatches: SameShape<z.output<typeof deployAnswerSchema>, DeployResult> = true;
void deployAnswerMatches;
