import { readFileSync, realpathSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { parse as parseDotenv } from 'dotenv';
import { EnvFileError, parseEnvFile } from './env-file.js';

/** The two environments. Configuration sits below everything else: it imports nothing of the deploy side. */
export type Environment = 'dev' | 'prod';

/** Variables the agent itself sets in the runtime container; RUNTIME_ENV_FILE may not override them. */
export const AGENT_OWNED_RUNTIME_VARIABLES = [
  'ENVIRONMENT',
  'AUDIT_EVENTS_PATH',
  'SNAPSHOTS_PATH',
  'ALLOW_EXECUTION_PLANE',
] as const;

/**
 * Where the configuration's values come from (the environment, ENV_FILE, the secret files) and the
 * files and folders it names (RUNTIME_ENV_FILE, the state and runtime folders). config-schema.ts and
 * config.ts validate the values; this module reads them and checks how the paths relate.
 */

/** A configuration problem, reported at start as one line naming the variable. */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

/** IMAGE_VERIFICATION's policy for `github-attestation` (verification.ts checks their combinations). */
export const ATTESTATION_VARIABLES = [
  'SIGSTORE_TRUSTED_ROOT_FILE',
  'ATTESTATION_REPOSITORY',
  'ATTESTATION_SIGNER_WORKFLOW',
  'ATTESTATION_SOURCE_REFS',
  'ATTESTATION_PREDICATE_TYPE',
  'ATTESTATION_ISSUER',
] as const;
/** IMAGE_VERIFICATION's policy for `cosign-key`. */
export const COSIGN_VARIABLES = ['COSIGN_PUBLIC_KEY_FILE'] as const;

/** Every variable the agent reads. The env examples are checked against this list. */
export const CONFIG_VARIABLES = [
  'ENVIRONMENT',
  'PORT',
  'CONTAINER_NAME',
  'CF_ACCESS_CLIENT_ID',
  'CF_ACCESS_CLIENT_SECRET',
  'CF_ACCESS_CLIENT_SECRET_FILE',
  'CF_ACCESS_ROTATION_CLIENT_ID',
  'CF_ACCESS_ROTATION_CLIENT_SECRET',
  'CF_ACCESS_ROTATION_CLIENT_SECRET_FILE',
  'CF_ACCESS_TEAM_DOMAIN',
  'CF_ACCESS_AUD',
  'CF_ACCESS_CERTS_URL',
  'IMAGE_REPOSITORY',
  'REGISTRY_USERNAME',
  'REGISTRY_PASSWORD',
  'REGISTRY_PASSWORD_FILE',
  'AUDIT_EVENTS_PATH',
  'SNAPSHOTS_PATH',
  'ALLOW_EXECUTION_PLANE',
  'RUNTIME_ENV_FILE',
  'RUNTIME_NETWORK',
  'STOP_TIMEOUT_SECONDS',
  'START_CHECK_SECONDS',
  'DEPLOY_TIMEOUT_SECONDS',
  'IMAGE_RETENTION',
  'STATE_DIR',
  'DOCKER_HOST',
  'LOG_LEVEL',
  'FAILURE_LOG_LINES',
  'IMAGE_VERIFICATION',
  ...ATTESTATION_VARIABLES,
  ...COSIGN_VARIABLES,
] as const;

export type Variable = (typeof CONFIG_VARIABLES)[number];

/** Secrets that may come from a file instead: systemd's LoadCredential=, or a file only root reads. */
const SECRET_FILES = [
  ['CF_ACCESS_CLIENT_SECRET', 'CF_ACCESS_CLIENT_SECRET_FILE'],
  ['CF_ACCESS_ROTATION_CLIENT_SECRET', 'CF_ACCESS_ROTATION_CLIENT_SECRET_FILE'],
  ['REGISTRY_PASSWORD', 'REGISTRY_PASSWORD_FILE'],
] as const;

/** Reads each `<NAME>_FILE` into `<NAME>`; returns the names that came from a file. */
export function readSecretFiles(values: Record<string, string>): Set<string> {
  const fromFiles = new Set<string>();
  for (const [name, fileVariable] of SECRET_FILES) {
    const file = values[fileVariable];
    if (file === undefined) continue;
    if (values[name] !== undefined) fail(fileVariable, `must not be set together with ${name}`);
    if (!isAbsolute(file)) fail(fileVariable, 'must be an absolute path');
    let content: string;
    try {
      content = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (error) {
      fail(fileVariable, `cannot be read (${errorCode(error)})`);
    }
    if (content === '') fail(fileVariable, 'is empty');
    // Security (availability): a second newline, or a second line, would be part of the secret, and
    // no caller could ever send it: every request 401, the brake unreachable. Refused at start.
    if (/[\r\n]/.test(content)) fail(fileVariable, 'must hold the secret on one line, with at most one newline at its end');
    values[name] = content;
    fromFiles.add(name);
  }
  return fromFiles;
}

/**
 * Security: dev and prod never share state. A path that names the other environment as a word of
 * one of its segments (split on / - _ .) is a copied configuration, not a choice: refused. And the
 * runtime must never see the agent's own state: a runtime mount that is STATE_DIR or contains it
 * would hand the runtime the audit log and the record of tag digests.
 */
export function checkPaths(
  environment: Environment,
  paths: Record<'STATE_DIR' | 'AUDIT_EVENTS_PATH' | 'SNAPSHOTS_PATH', string>,
): void {
  const other: Environment = environment === 'dev' ? 'prod' : 'dev';
  for (const [variable, path] of Object.entries(paths) as [Variable, string][]) {
    if (
      path
        .toLowerCase()
        .split(/[/\-_.]/)
        .includes(other)
    )
      fail(variable, `must not name the other environment ("${other}") in its path`);
  }
  const state = canonical(paths.STATE_DIR);
  for (const variable of ['AUDIT_EVENTS_PATH', 'SNAPSHOTS_PATH'] as const) {
    const mount = canonical(paths[variable]);
    if (state === mount || state.startsWith(mount === '/' ? '/' : `${mount}/`)) {
      fail(variable, "must not be STATE_DIR or contain it: the runtime would see the agent's audit log and state");
    }
  }
}

/** The path with symbolic links resolved where it exists, so a link cannot hide that two are one. */
function canonical(path: string): string {
  try {
    return realpathSync.native(path);
  } catch {
    return resolve(path);
  }
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function runtimeEnv(file: string | undefined): Record<string, string> {
  if (file === undefined) return {};
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    fail('RUNTIME_ENV_FILE', `cannot be read (${errorCode(error)})`);
  }
  const values = parseDotenv(text);
  for (const [key, value] of Object.entries(values)) {
    if (!ENV_NAME.test(key)) fail('RUNTIME_ENV_FILE', `has an invalid variable name "${key.slice(0, 64)}"`);
    if ((AGENT_OWNED_RUNTIME_VARIABLES as readonly string[]).includes(key)) {
      fail('RUNTIME_ENV_FILE', `must not set ${key}: the agent sets it from its own configuration`);
    }
    if (value.includes('\0')) fail('RUNTIME_ENV_FILE', `value of ${key} contains a NUL byte`);
  }
  return values;
}

/** ENV_FILE, read as systemd's EnvironmentFile= reads it, or refused where the two would differ (env-file.ts). */
export function readEnvFile(path: string | undefined): Record<string, string> {
  if (path === undefined || path === '') return {};
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError('ENV_FILE', `cannot be read (${errorCode(error)})`);
  }
  try {
    return parseEnvFile(text);
  } catch (error) {
    if (error instanceof EnvFileError) throw new ConfigError('ENV_FILE', error.message);
    throw error;
  }
}

/** Only the variables the agent knows, and an empty value counts as unset. */
export function definedValues(env: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of CONFIG_VARIABLES) {
    const value = env[key];
    if (value !== undefined && value !== '') out[key] = value;
  }
  return out;
}

function errorCode(error: unknown): string {
  return typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : 'unreadable';
}

export function fail(variable: Variable, message: string): never {
  throw new ConfigError(variable, message);
}
