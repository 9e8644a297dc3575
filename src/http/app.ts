import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type ErrorRequestHandler, type RequestHandler } from 'express';
import { type Logger, pino } from 'pino';
import {
  type AccessJwtOptions,
  type AccessJwtVerifier,
  authenticate,
  CLIENT_ID_HEADER,
  createAccessJwtVerifier,
  hashTokens,
} from '../auth.js';
import { type Config, secretsOf } from '../config/config.js';
import { Deployer } from '../deploy/deployer.js';
import { carriesOwnLabels } from '../deploy/ownership.js';
import { ImageRetention } from '../deploy/retention.js';
import { Engine } from '../docker.js';
import { AgentError } from '../errors.js';
import { createRedactor } from '../policy/redact.js';
import { deployRoute } from '../routes/deploy.js';
import { statusFastPathFor, statusRoute } from '../routes/status.js';
import { stopRoute } from '../routes/stop.js';
import type { AuditLog, AuditOpenOptions } from '../state/audit.js';
import type { DeployPhase } from '../state/journal.js';
import { openAgentState } from '../state/open-state.js';
import { createVerifierInProcess } from '../supply-chain/verify-process.js';
import { CONNECTION_LIMITS, manageConnections } from './connections.js';
import { contentTypeProblem } from './content-type.js';
import { createHeaderGuard, type HeaderGuard } from './header-guard.js';
import { requestLogging } from './http-log.js';
import { answerParserErrors } from './parser-errors.js';
import { RefusalThrottle } from './refusals.js';
import { createReply, type ErrorBody, type Reply, setAuditContext } from './respond.js';

/** The three endpoints, and nothing else. */
const ROUTES: Readonly<Record<string, { readonly method: string; readonly mutating: boolean }>> = {
  '/v1/deploy': { method: 'POST', mutating: true },
  '/v1/status': { method: 'GET', mutating: false },
  '/v1/stop': { method: 'POST', mutating: true },
};

export const BODY_LIMIT_BYTES = 4096;

export interface AppDeps {
  readonly config: Config;
  readonly deployer: Deployer;
  readonly audit: AuditLog;
  readonly refusals: RefusalThrottle;
  readonly logger: Logger;
  readonly verifyJwt: AccessJwtVerifier | null;
  /** Image retention: runs after a deploy has answered 200. */
  readonly afterDeployed?: () => void;
}

export function createApp(deps: AppDeps): RequestListener {
  const { config, deployer, logger } = deps;
  const reply = createReply(deps.audit, deps.refusals, logger);
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  // Security: what of a request's headers may be written down (header-guard.ts).
  const guard = createHeaderGuard(
    secretsOf(config),
    config.serviceTokens.map((t) => t.clientId),
  );
  app.use(requestLogging(logger, guard));
  app.use(routeGate(reply, guard));
  app.use(authenticate(config.serviceTokens, deps.verifyJwt));
  app.use(requireJson);
  app.use(express.json({ limit: BODY_LIMIT_BYTES, strict: true, inflate: false, type: () => true }));

  app.post('/v1/deploy', deployRoute(config, deployer, reply, deps.afterDeployed));
  app.get('/v1/status', statusRoute(deployer, reply, deps.verifyJwt));
  app.post('/v1/stop', stopRoute(config, deployer, reply));

  app.use(errorHandler(reply, logger));
  // The polled status is answered before Express when it is plainly right (routes/status.ts).
  const fastStatus = statusFastPathFor(logger, guard, hashTokens(config.serviceTokens), deps.verifyJwt, deployer);
  return (req, res) => fastStatus(req, res, () => app(req, res));
}

/** Unknown paths: 404. Known path, other method: 405. Mutating endpoints get their audit context. */
function routeGate(reply: Reply, guard: HeaderGuard): RequestHandler {
  return (req, res, next) => {
    const route = Object.hasOwn(ROUTES, req.path) ? ROUTES[req.path] : undefined;
    if (route === undefined) {
      void reply(res, 404, error('no such endpoint; the agent serves POST /v1/deploy, GET /v1/status and POST /v1/stop'));
      return;
    }
    if (route.mutating) {
      setAuditContext(res, {
        requestId: String(req.id),
        endpoint: req.path,
        startedAt: Date.now(),
        image: null,
        claimedClientId: guard.claimedClientId(req.headers[CLIENT_ID_HEADER]),
      });
    }
    if (req.method !== route.method) {
      res.setHeader('Allow', route.method);
      next(new AgentError(405, `${req.path} accepts ${route.method} only`));
      return;
    }
    next();
  };
}

const requireJson: RequestHandler = (req, _res, next) => {
  next(contentTypeProblem(req.headers['content-type']) ?? undefined);
};

/** Errors of the body parser, by their `type`, as a person would want them explained. */
const BODY_ERRORS: Readonly<Record<string, { status: number; reason: string }>> = {
  'entity.too.large': { status: 413, reason: `request body is larger than ${BODY_LIMIT_BYTES} bytes` },
  'entity.parse.failed': { status: 400, reason: 'request body is not a JSON object' },
  'encoding.unsupported': { status: 415, reason: 'compressed request bodies are not accepted' },
  'charset.unsupported': { status: 415, reason: 'request body must be UTF-8' },
  'request.aborted': { status: 400, reason: 'request body was not received completely' },
  'request.size.invalid': { status: 400, reason: 'request body length does not match Content-Length' },
};

function errorHandler(reply: Reply, logger: Logger): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    let status: number;
    let reason: string;
    const bodyError =
      typeof err === 'object' && err !== null && 'type' in err && typeof err.type === 'string'
        ? BODY_ERRORS[err.type]
        : undefined;
    if (err instanceof AgentError) {
      ({ status, reason } = err);
    } else if (bodyError !== undefined) {
      ({ status, reason } = bodyError);
    } else {
      // A bug, not a request problem: log it whole, answer without details.
      logger.error({ err, requestId: req.id }, 'unexpected error');
      status = 500;
      reason = 'internal error; the details are in the agent log';
    }
    if (status >= 500) logger.warn({ requestId: req.id, status, reason }, 'request failed');
    // A client error in the status range the spec asks for, never a stack trace or HTML.
    const code = err instanceof AgentError ? err.code : undefined;
    void reply(res, status, error(reason), code).catch((e: unknown) =>
      logger.error({ err: e }, 'could not send the error response'),
    );
  };
}

const error = (reason: string): ErrorBody => ({ status: 'error', reason });

// ---------------------------------------------------------------- the running agent

export interface StartOptions {
  readonly logger?: Logger;
  /** Overrides the configured port: tests listen on port 0. */
  readonly port?: number;
  readonly engineCallTimeoutMs?: number;
  readonly accessJwt?: AccessJwtOptions;
  /** Fault-injection tests only: called after each deploy phase is journaled. */
  readonly onPhase?: (phase: DeployPhase) => Promise<void>;
  /** Tests only: how long after any pull image retention keeps its image (retention.ts). */
  readonly recentPullMs?: number;
  /** Fault-injection tests only: opens the audit log file (to fail a write or an fsync). */
  readonly openAuditFile?: AuditOpenOptions['openFile'];
}

export interface RunningAgent {
  readonly url: string;
  readonly port: number;
  readonly deployer: Deployer;
  /** The start-up verification of the audit log: tests wait for it. */
  readonly auditVerified: Promise<void>;
  /** Refuses new mutating requests (503), lets the one in progress finish, then closes. */
  close(): Promise<void>;
}

/** Opens the state, starts recovery in the background and listens on 127.0.0.1 only. */
export async function startAgent(config: Config, options: StartOptions = {}): Promise<RunningAgent> {
  const logger = options.logger ?? pino({ level: 'silent' });
  const engine = new Engine({
    socketPath: config.dockerSocketPath,
    redact: createRedactor(secretsOf(config)),
    ...(options.engineCallTimeoutMs === undefined ? {} : { callTimeoutMs: options.engineCallTimeoutMs }),
  });
  // STATE_DIR checked and locked, lost or foreign state refused, before the engine is asked anything else.
  const state = await openAgentState(
    config.stateDir,
    { environment: config.environment, containerName: config.containerName },
    {
      logger,
      ...(options.openAuditFile === undefined ? {} : { openAuditFile: options.openAuditFile }),
      fixedNameIsOurs: async (signal) => {
        const c = await engine.inspectContainer(config.containerName, signal);
        return c !== null && carriesOwnLabels(config, c.labels);
      },
    },
  );
  const { audit, store, journal } = state;
  const deployer = new Deployer({
    config,
    engine,
    store,
    audit,
    journal,
    logger,
    // IMAGE_VERIFICATION: null with "none"; otherwise the check before every pull (supply-chain/),
    // in a child process that exits after it, so its libraries' memory is given back.
    verifier: createVerifierInProcess(config.imageVerification),
    ...(options.onPhase === undefined ? {} : { onPhase: options.onPhase }),
  });
  deployer.startReconciler();
  // Image retention (retention.ts): never holds the lock, yields to any deploy or stop.
  const retention = new ImageRetention({
    config,
    engine,
    store,
    audit,
    logger,
    busy: () => deployer.busy,
    ...(options.recentPullMs === undefined ? {} : { recentPullMs: options.recentPullMs }),
  });

  const verifyJwt =
    config.accessJwt === null
      ? null
      : createAccessJwtVerifier(config.accessJwt, {
          onKeysRefreshFailed: (error) =>
            logger.warn({ reason: error.reason }, 'Access signing keys not refreshed; the last good ones stay in use'),
          ...options.accessJwt,
        });
  const refusals = new RefusalThrottle((summary, reason) => audit.refusalsCounted(summary, reason), {
    onError: (error) => logger.error({ err: error }, 'could not write a line about counted refusals; the counts are kept'),
    started: (first, refusal) => audit.refusalsCounting(first, refusal.endpoint, refusal.status),
  });
  const app = createApp({ config, deployer, audit, refusals, logger, verifyJwt, afterDeployed: () => retention.schedule() });
  // Security: slow or silent clients cannot hold connections open (slowloris), nor fill every slot
  // so that status and stop cannot get in: see connections.ts. A deploy's answer may take up to
  // DEPLOY_TIMEOUT_SECONDS, but receiving the request itself must not. Node enforces its request
  // timeouts only when it checks its connections, every 30 s by default: check every second.
  const server = createServer({ connectionsCheckingInterval: 1_000, maxHeaderSize: CONNECTION_LIMITS.maxHeaderBytes }, app);
  answerParserErrors(server, logger);
  server.requestTimeout = 15_000;
  server.maxHeadersCount = 64;
  const connections = manageConnections(server, CONNECTION_LIMITS, logger);

  await listen(server, options.port ?? config.port).catch(async (error: unknown) => {
    // The folder's lock must not outlive an agent that never listened (tests start agents in process).
    await deployer.shutdown();
    await state.close();
    throw error;
  });
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | null = null;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    deployer,
    auditVerified: state.verified,
    close: () => {
      closing ??= (async () => {
        await Promise.all([deployer.shutdown(), retention.stop()]);
        await new Promise<void>((resolve) => {
          connections.stop();
          server.close(() => resolve());
          server.closeIdleConnections();
        });
        await refusals
          .close()
          .catch((error: unknown) => logger.error({ err: error }, 'could not write the summary of counted refusals'));
        await state.close();
      })();
      return closing;
    },
  };
}

function listen(server: Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    // Security: loopback only. The agent is reached through cloudflared on this host, never directly.
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
}
