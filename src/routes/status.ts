import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';
import type { Logger } from 'pino';
import { ACCESS_JWT_HEADER, type AccessJwtVerifier, checkServiceToken, type HashedToken } from '../auth.js';
import type { Deployer } from '../deploy/deployer.js';
import type { StatusBody } from '../deploy/status-view.js';
import { AgentError } from '../errors.js';
import { contentTypeProblem } from '../http/content-type.js';
import type { HeaderGuard } from '../http/header-guard.js';
import { requestFields } from '../http/http-log.js';
import type { Reply } from '../http/respond.js';
import { DEPLOY_PHASES } from '../state/journal.js';
import { provenanceSchema } from '../supply-chain/provenance.js';
import * as z from '../zod.js';
import type { SameShape } from './answers.js';
import { environmentOnlyBodySchema, parseBody } from './body.js';

/** Read-only: it never changes anything and answers while a deploy runs. */
export function statusRoute(deployer: Deployer, reply: Reply, verifyJwt: AccessJwtVerifier | null): RequestHandler {
  return async (req, res) => {
    // Same rule as everywhere: a body, if any, may only carry the informational environment.
    parseBody(environmentOnlyBodySchema, req.body);
    await reply(res, 200, await statusBody(deployer, verifyJwt));
  };
}

/**
 * The deployer's status and, with the JWT check on, how old the Access signing keys in use are: while
 * the key endpoint is down the agent keeps using the last good ones (access-keys.ts), and this says
 * for how long already.
 */
async function statusBody(deployer: Deployer, verifyJwt: AccessJwtVerifier | null): Promise<object> {
  const status = await deployer.status();
  return verifyJwt === null ? status : { ...status, access_keys_age_seconds: verifyJwt.keysAgeSeconds() };
}

/**
 * Status is polled, and should cost little more than a bare HTTP answer. A request that is plainly
 * right (GET /v1/status, no body, the JSON content type, a valid token and, when configured, a valid
 * Access JWT) is answered here, with the same checks the ordinary chain makes, in one step. Anything
 * else, or any doubt, goes on through the ordinary chain, which explains every refusal; so no refusal
 * is written twice, and no check is skipped. It stands before the request log: a successful status is
 * logged at debug only, and below debug that line would be dropped anyway (see http-log.ts). It stands
 * before Express itself too (createApp): it reads only what node:http gives, and Express's own work on
 * every request (its request and response objects, the router) was a fifth of a status's CPU.
 *
 * Once the service token matched, the JWT is verified here once, and a failure (bad token, keys
 * unavailable, the engine down) is answered here, with its request id and a log line: handing it on
 * verified the JWT a second time (twice the key endpoint's timeout when it hangs).
 */
export function statusFastPath(
  logger: Logger,
  guard: HeaderGuard,
  tokens: readonly HashedToken[],
  verifyJwt: AccessJwtVerifier | null,
  deployer: Deployer,
): StatusFastPath {
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
    const id = randomUUID();
    const started = Date.now();
    const send = (status: number, body: object) => {
      if (res.headersSent || res.destroyed) return;
      const json = JSON.stringify(body);
      res.writeHead(status, {
        'X-Request-Id': id,
        'Content-Type': 'application/json; charset=utf-8',
        'Content-Length': Buffer.byteLength(json),
      });
      res.end(json);
    };
    const fail = (error: unknown) => {
      const known = error instanceof AgentError;
      const status = known ? error.status : 500;
      if (!known) logger.error({ err: error, requestId: id }, 'unexpected error');
      logger[status >= 500 ? 'error' : 'warn'](
        {
          req: requestFields({ id, method: req.method, url: req.url, headers: req.headers }, guard),
          res: { statusCode: status },
          responseTime: Date.now() - started,
        },
        'request completed',
      );
      send(status, { status: 'error', reason: known ? error.reason : 'internal error; the details are in the agent log' });
    };
    const answer = () => statusBody(deployer, verifyJwt).then((body) => send(200, body));
    const jwt = req.headers[ACCESS_JWT_HEADER];
    (verifyJwt === null ? answer() : verifyJwt(typeof jwt === 'string' ? jwt : undefined).then(answer)).catch(fail);
  };
}

/** Answers a plainly right status request, or hands the request on (`next`) to the ordinary chain. */
export type StatusFastPath = (req: IncomingMessage, res: ServerResponse, next: () => void) => void;

/** The fast path when the request log is at debug: every status request then takes the ordinary chain. */
export function statusFastPathFor(...args: Parameters<typeof statusFastPath>): StatusFastPath {
  return args[0].isLevelEnabled('debug') ? (_req, _res, next) => next() : statusFastPath(...args);
}

const hasBody = (req: IncomingMessage): boolean =>
  req.headers['transfer-encoding'] !== undefined ||
  (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');

const lastDeploySchema = z.strictObject({
  image: z.string(),
  outcome: z.enum(['deployed', 'failed', 'abandoned', 'interrupted']),
  reason: z.nullable(z.string()),
  at: z.string().check(z.describe('ISO 8601.')),
  request_id: z.string().check(z.describe("The deploy's X-Request-Id, and its audit log request_id.")),
  image_digest: z.nullable(z.string()),
});

const leftoverSchema = z.strictObject({
  id: z.string(),
  name: z.nullable(z.string()),
  state: z.nullable(z.string()),
  attempts: z.int(),
  last_error: z.nullable(z.string()),
  next_attempt_at: z.nullable(z.string()).check(z.describe('ISO 8601.')),
});

const notOursSchema = z.strictObject({ id: z.string(), name: z.string(), state: z.string(), why: z.string() });

/** The 200 answer of status (StatusBody). */
export const statusAnswerSchema = z
  .strictObject({
    container_name: z.string(),
    environment: z.string(),
    running: z.boolean(),
    image: z.optional(z.string()).check(z.describe('When running.')),
    image_digest: z.optional(z.nullable(z.string())).check(z.describe('When running: the manifest that runs.')),
    tag_digest: z
      .optional(z.nullable(z.string()))
      .check(z.describe('When running: what its tag resolved to (image_digest, or the image index it was chosen from).')),
    started_at: z.optional(z.string()).check(z.describe('When running (ISO 8601).')),
    provenance: z
      .optional(z.nullable(provenanceSchema))
      .check(z.describe('When running: what built the image, as verified at its deploy; null if deployed without verification.')),
    state: z.string().check(z.describe('The engine\'s state of the container: running, exited, created, ... or "absent".')),
    operation_in_progress: z.nullable(z.enum(['deploy', 'stop'])),
    deploy_in_progress: z.boolean(),
    phase: z.nullable(z.enum(DEPLOY_PHASES)).check(z.describe('What the deploy in progress is doing; null when idle.')),
    phase_since: z.nullable(z.string()).check(z.describe('When the phase began (ISO 8601); null when idle.')),
    last_deploy: z.nullable(lastDeploySchema),
    last_interrupted: z.nullable(lastDeploySchema).check(z.describe('The last deploy found cut short by a crash at start.')),
    previous_image: z
      .nullable(z.string())
      .check(z.describe('The last image deployed successfully before the current one: deploy it to roll back.')),
    leftovers: z.array(leftoverSchema).check(z.describe('Containers that will never run again and are not removed yet.')),
    not_ours: z
      .array(notOursSchema)
      .check(z.describe("Containers that look like leftovers but are not provably this agent's: never touched.")),
    audit_head: z.string().check(z.describe('The hash of the last audit line.')),
    audit_intact: z
      .nullable(z.boolean())
      .check(
        z.describe('Whether the audit log is whole (chain verified at start, same file, head as recorded); null while checking.'),
      ),
    audit_problem: z.nullable(z.string()).check(z.describe('What is wrong with the audit log, when audit_intact is false.')),
    image_retention: z.int().check(z.describe('IMAGE_RETENTION: how many deployed images are kept; 0: all.')),
    inspected_at: z.string().check(z.describe('When the engine was asked (ISO 8601).')),
    inspection_age_ms: z.number().check(z.describe("How old the engine's answer was when this one was built.")),
    access_keys_age_seconds: z
      .optional(z.nullable(z.number()))
      .check(z.describe('With the Access JWT check on: how old the signing keys in use are (null before the first fetch).')),
  })
  .check(z.describe("What runs, from the engine's own inspection, and what the agent is doing."));

const statusAnswerMatches: SameShape<z.output<typeof statusAnswerSchema>, StatusBody> = true;
void statusAnswerMatches;
