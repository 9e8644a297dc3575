import { parseRepository } from '../policy/image.js';
import { type NamedSecret, runtimeSecrets } from '../policy/redact.js';
import { type LogLevel, type Raw, schema } from './config-schema.js';
import {
  ConfigError,
  checkPaths,
  definedValues,
  type Environment,
  fail,
  readEnvFile,
  readSecretFiles,
  runtimeEnv,
} from './config-sources.js';
import { type VerificationPolicy, verificationPolicy } from './verification.js';

/**
 * The agent's whole configuration, read once at start from the process environment (and ENV_FILE).
 * Nothing in here can be changed by a request: the deploy body carries an image reference and
 * nothing else. Each variable's own form is checked in config-schema.ts; what depends on more than
 * one of them is checked here, where the Config is built.
 */
export { LOG_LEVELS, type LogLevel } from './config-schema.js';
export { AGENT_OWNED_RUNTIME_VARIABLES, CONFIG_VARIABLES, ConfigError, type Environment } from './config-sources.js';

export interface ServiceToken {
  readonly clientId: string;
  readonly clientSecret: string;
}

export interface AccessJwtConfig {
  readonly teamDomain: string;
  readonly audience: string;
  readonly certsUrl: string;
}

/** Registry credentials, handed to the engine with a pull or a look-up (X-Registry-Auth). */
export interface RegistryCredentials {
  readonly username: string;
  readonly password: string;
  readonly serveraddress: string;
}

export interface Config {
  readonly environment: Environment;
  readonly port: number;
  readonly containerName: string;
  /** The primary token first; a second one only during a rotation window. */
  readonly serviceTokens: readonly ServiceToken[];
  readonly accessJwt: AccessJwtConfig | null;
  readonly imageRepository: string;
  readonly registryAuth: RegistryCredentials | null;
  readonly auditEventsPath: string;
  readonly snapshotsPath: string;
  readonly allowExecutionPlane: boolean;
  readonly runtimeEnvFile: string | null;
  readonly runtimeEnv: Readonly<Record<string, string>>;
  readonly runtimeNetwork: string;
  readonly stopTimeoutSeconds: number;
  readonly startCheckSeconds: number;
  readonly deployTimeoutSeconds: number;
  /** How many of the images this agent deployed stay on the host (0: all); see retention.ts. */
  readonly imageRetention: number;
  readonly stateDir: string;
  readonly dockerSocketPath: string;
  readonly logLevel: LogLevel;
  /** How many of a failed container's last log lines (masked) go into the reason; 0: none. */
  readonly failureLogLines: number;
  /** IMAGE_VERIFICATION and its policy: what an image must carry before it may run. */
  readonly imageVerification: VerificationPolicy;
}

export const DEFAULT_IMAGE_REPOSITORY = 'ghcr.io/ceerkle/dreichor-trading/runtime';
const DEFAULT_PORTS: Record<Environment, number> = { dev: 3005, prod: 3006 };
const OTHER_ENVIRONMENT: Record<Environment, Environment> = { dev: 'prod', prod: 'dev' };

// Time a deploy keeps for itself beyond the stop and the start check: create, rename, start, inspect.
export const DEPLOY_MARGIN_SECONDS = 5;

/**
 * Reads the configuration. `env` is the process environment; when it names an ENV_FILE, that file is
 * read first and the environment's own values win. Throws ConfigError naming the first bad variable.
 */
export function loadConfig(env: NodeJS.ProcessEnv): Config {
  const merged = { ...definedValues(readEnvFile(env['ENV_FILE'])), ...definedValues(env) };
  const fromFiles = readSecretFiles(merged);
  // Security: the env examples' FAKE values are public; an agent that kept one would accept a token
  // anybody can read, or trust a team that is not yours.
  for (const [variable, value] of Object.entries(merged)) {
    if (/^fake-/i.test(value)) {
      throw new ConfigError(
        fromFiles.has(variable) ? `${variable}_FILE` : variable,
        "still has the example's FAKE value; replace it",
      );
    }
  }
  const parsed = schema.safeParse(merged);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const named = String(issue?.path[0] ?? 'configuration');
    const missing = issue !== undefined && merged[named] === undefined;
    // A secret read from its _FILE is reported under the variable the operator set.
    const variable = fromFiles.has(named) ? `${named}_FILE` : named;
    throw new ConfigError(variable, missing ? 'is required' : (issue?.message ?? 'is invalid'));
  }
  return Object.freeze(build(parsed.data));
}

function build(raw: Raw): Config {
  const environment = raw.ENVIRONMENT;
  const containerName = raw.CONTAINER_NAME ?? `dreichor-runtime-${environment}`;
  // Security: a dev agent configured with a prod-looking container name (or the reverse) could stop
  // the other environment's runtime. The name must carry its own environment and not the other one.
  const segments = containerName.toLowerCase().split(/[-_.]/);
  if (!segments.includes(environment) || segments.includes(OTHER_ENVIRONMENT[environment])) {
    fail(
      'CONTAINER_NAME',
      `must contain "${environment}" as a word (separated by - _ or .) and not "${OTHER_ENVIRONMENT[environment]}"`,
    );
  }

  const stopTimeoutSeconds = raw.STOP_TIMEOUT_SECONDS ?? 30;
  const startCheckSeconds = raw.START_CHECK_SECONDS ?? 5;
  const deployTimeoutSeconds = raw.DEPLOY_TIMEOUT_SECONDS ?? 90;
  if (deployTimeoutSeconds < stopTimeoutSeconds + startCheckSeconds + DEPLOY_MARGIN_SECONDS + 5) {
    fail(
      'DEPLOY_TIMEOUT_SECONDS',
      `must leave at least 5 s for the pull beyond STOP_TIMEOUT_SECONDS + START_CHECK_SECONDS + ${DEPLOY_MARGIN_SECONDS}`,
    );
  }

  const serviceTokens: ServiceToken[] = [{ clientId: raw.CF_ACCESS_CLIENT_ID, clientSecret: raw.CF_ACCESS_CLIENT_SECRET }];
  if ((raw.CF_ACCESS_ROTATION_CLIENT_ID === undefined) !== (raw.CF_ACCESS_ROTATION_CLIENT_SECRET === undefined)) {
    fail(
      raw.CF_ACCESS_ROTATION_CLIENT_ID === undefined ? 'CF_ACCESS_ROTATION_CLIENT_ID' : 'CF_ACCESS_ROTATION_CLIENT_SECRET',
      'must be set together with its pair during a rotation window',
    );
  }
  if (raw.CF_ACCESS_ROTATION_CLIENT_ID !== undefined && raw.CF_ACCESS_ROTATION_CLIENT_SECRET !== undefined) {
    if (raw.CF_ACCESS_ROTATION_CLIENT_ID === raw.CF_ACCESS_CLIENT_ID) {
      fail('CF_ACCESS_ROTATION_CLIENT_ID', 'must differ from CF_ACCESS_CLIENT_ID');
    }
    serviceTokens.push({ clientId: raw.CF_ACCESS_ROTATION_CLIENT_ID, clientSecret: raw.CF_ACCESS_ROTATION_CLIENT_SECRET });
  }

  const imageRepository = raw.IMAGE_REPOSITORY ?? DEFAULT_IMAGE_REPOSITORY;
  const repository = parseRepository(imageRepository);
  if (repository === null)
    fail('IMAGE_REPOSITORY', 'must be a fully qualified repository such as ghcr.io/owner/name, without tag or digest');

  const stateDir = raw.STATE_DIR ?? `/var/lib/dreichor/${environment}/deploy-agent`;
  checkPaths(environment, { STATE_DIR: stateDir, AUDIT_EVENTS_PATH: raw.AUDIT_EVENTS_PATH, SNAPSHOTS_PATH: raw.SNAPSHOTS_PATH });

  return {
    environment,
    port: raw.PORT ?? DEFAULT_PORTS[environment],
    containerName,
    serviceTokens,
    accessJwt: accessJwt(raw),
    imageRepository,
    registryAuth: registryAuth(raw, repository.domain),
    auditEventsPath: raw.AUDIT_EVENTS_PATH,
    snapshotsPath: raw.SNAPSHOTS_PATH,
    allowExecutionPlane: raw.ALLOW_EXECUTION_PLANE === 'true',
    runtimeEnvFile: raw.RUNTIME_ENV_FILE ?? null,
    runtimeEnv: Object.freeze(runtimeEnv(raw.RUNTIME_ENV_FILE)),
    runtimeNetwork: raw.RUNTIME_NETWORK ?? 'bridge',
    stopTimeoutSeconds,
    startCheckSeconds,
    deployTimeoutSeconds,
    imageRetention: raw.IMAGE_RETENTION ?? 5,
    stateDir,
    dockerSocketPath: dockerSocketPath(raw.DOCKER_HOST),
    logLevel: raw.LOG_LEVEL ?? 'info',
    failureLogLines: raw.FAILURE_LOG_LINES ?? 20,
    imageVerification: verificationPolicy(raw),
  };
}

/**
 * Every secret the agent knows, named after its variable, to be masked wherever text from the
 * runtime or the engine could carry one: the service token secrets, the registry password, and the
 * runtime's own variables.
 */
export function secretsOf(config: Config): NamedSecret[] {
  return [
    ...config.serviceTokens.map((t, i) => ({
      name: i === 0 ? 'CF_ACCESS_CLIENT_SECRET' : 'CF_ACCESS_ROTATION_CLIENT_SECRET',
      value: t.clientSecret,
    })),
    ...(config.registryAuth === null ? [] : [{ name: 'REGISTRY_PASSWORD', value: config.registryAuth.password }]),
    ...runtimeSecrets(config.runtimeEnv),
  ];
}

function accessJwt(raw: Raw): AccessJwtConfig | null {
  const team = raw.CF_ACCESS_TEAM_DOMAIN;
  const aud = raw.CF_ACCESS_AUD;
  if (team === undefined && aud === undefined) {
    if (raw.CF_ACCESS_CERTS_URL !== undefined)
      fail('CF_ACCESS_CERTS_URL', 'is only used with CF_ACCESS_TEAM_DOMAIN and CF_ACCESS_AUD');
    return null;
  }
  if (team === undefined) fail('CF_ACCESS_TEAM_DOMAIN', 'must be set together with CF_ACCESS_AUD');
  if (aud === undefined) fail('CF_ACCESS_AUD', 'must be set together with CF_ACCESS_TEAM_DOMAIN');
  const certsUrl = raw.CF_ACCESS_CERTS_URL ?? `https://${team}/cdn-cgi/access/certs`;
  let url: URL;
  try {
    url = new URL(certsUrl);
  } catch {
    fail('CF_ACCESS_CERTS_URL', 'must be a URL');
  }
  // Security: the signing keys decide who may deploy; fetching them over plain HTTP would let anyone
  // on the path substitute their own. Plain HTTP is accepted for the loopback host only.
  const loopback = url.hostname === '127.0.0.1' || url.hostname === 'localhost' || url.hostname === '[::1]';
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) {
    fail('CF_ACCESS_CERTS_URL', 'must be an https URL (plain http only to 127.0.0.1)');
  }
  return { teamDomain: team, audience: aud, certsUrl: url.toString() };
}

function registryAuth(raw: Raw, serveraddress: string): RegistryCredentials | null {
  // REGISTRY_PASSWORD_FILE was read into REGISTRY_PASSWORD by readSecretFiles.
  const password = raw.REGISTRY_PASSWORD;
  if (raw.REGISTRY_USERNAME === undefined && password === undefined) return null;
  if (raw.REGISTRY_USERNAME === undefined) fail('REGISTRY_USERNAME', 'is required when a registry password is set');
  if (password === undefined) fail('REGISTRY_PASSWORD', 'or REGISTRY_PASSWORD_FILE is required when REGISTRY_USERNAME is set');
  return { username: raw.REGISTRY_USERNAME, password, serveraddress };
}

function dockerSocketPath(dockerHost: string | undefined): string {
  if (dockerHost === undefined) return '/var/run/docker.sock';
  // Security: the engine's API is root on the host. Only a local unix socket, protected by file
  // permissions, is accepted; plain TCP would be unauthenticated and SSH is not supported.
  const match = /^unix:\/\/(\/[^\0]+)$/.exec(dockerHost);
  if (match?.[1] === undefined) fail('DOCKER_HOST', 'must be a unix socket address such as unix:///var/run/docker.sock');
  return match[1];
}
