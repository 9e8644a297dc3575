import { isAbsolute } from 'node:path';
import * as z from '../zod.js';

/**
 * The variables the agent reads, each checked on its own: presence, form and range. What depends on
 * more than one of them (the container name and the environment, the timeouts together, pairs that
 * go together) is checked in config.ts, which builds the Config from what passes here.
 */

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

// Cloudflare answers 524 when an origin has not answered in 100 s: a deploy must end before that.
const CLOUDFLARE_ORIGIN_TIMEOUT_SECONDS = 100;

/** Digits only, then the number they spell: a decimal string, so "1e3", " 5" or "0x10" are refused. */
const digitsAsNumber = (message: string) => z.pipe(z.string().check(z.regex(/^\d+$/, message)), z.transform(Number));

const wholeNumber = (min: number, max: number, what: string) =>
  z.pipe(
    digitsAsNumber(`must be a whole number of ${what}`),
    z.int().check(z.minimum(min, `must be at least ${min}`), z.maximum(max, `must be at most ${max}`)),
  );
const seconds = (min: number, max: number) => wholeNumber(min, max, 'seconds');

const absolutePath = z.string().check(
  z.refine((p) => isAbsolute(p), 'must be an absolute path'),
  z.refine((p) => !p.includes('\0') && !p.split('/').includes('..'), 'must not contain ".." or NUL'),
);

// Security: secrets are checked for being present, not trivially short, and sendable: a service token
// secret travels in an HTTP header, so anything but visible ASCII (a space, a trailing "# note" that
// systemd's EnvironmentFile= keeps, a non-ASCII byte, a second newline from a _FILE) makes a secret no
// caller can ever present, and every request, the emergency stop included, would be refused. Their
// values never appear in an error message, because this message is printed to the journal.
const secret = z
  .string()
  .check(
    z.minLength(16, 'must be at least 16 characters long'),
    z.regex(/^[\x21-\x7e]+$/, 'must be visible ASCII only, without spaces (is there a trailing comment or a stray byte?)'),
  );
const clientId = z
  .string()
  .check(z.minLength(1), z.maxLength(256), z.regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces'));

export const schema = z.object({
  ENVIRONMENT: z.enum(['dev', 'prod'], { error: 'must be "dev" or "prod"' }),
  PORT: z.optional(
    z.pipe(
      digitsAsNumber('must be a port number'),
      z.int().check(z.minimum(1), z.maximum(65535, 'must be a port number from 1 to 65535')),
    ),
  ),
  CONTAINER_NAME: z.optional(
    z
      .string()
      .check(
        z.regex(
          /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,100}$/,
          'must be a valid container name ([a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 101 characters)',
        ),
      ),
  ),
  CF_ACCESS_CLIENT_ID: clientId,
  CF_ACCESS_CLIENT_SECRET: secret,
  CF_ACCESS_CLIENT_SECRET_FILE: z.optional(absolutePath),
  CF_ACCESS_ROTATION_CLIENT_SECRET_FILE: z.optional(absolutePath),
  CF_ACCESS_ROTATION_CLIENT_ID: z.optional(clientId),
  CF_ACCESS_ROTATION_CLIENT_SECRET: z.optional(secret),
  CF_ACCESS_TEAM_DOMAIN: z.optional(
    z
      .string()
      .check(
        z.regex(
          /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/,
          'must be a host name such as "myteam.cloudflareaccess.com", without scheme or path',
        ),
      ),
  ),
  CF_ACCESS_AUD: z.optional(z.string().check(z.regex(/^[A-Za-z0-9_-]{1,256}$/, 'must be the Access application audience tag'))),
  CF_ACCESS_CERTS_URL: z.optional(z.string()),
  IMAGE_REPOSITORY: z.optional(z.string()),
  REGISTRY_USERNAME: z.optional(z.string().check(z.maxLength(256))),
  REGISTRY_PASSWORD: z.optional(z.string().check(z.maxLength(4096))),
  REGISTRY_PASSWORD_FILE: z.optional(absolutePath),
  AUDIT_EVENTS_PATH: absolutePath,
  SNAPSHOTS_PATH: absolutePath,
  ALLOW_EXECUTION_PLANE: z.optional(z.enum(['true', 'false'], { error: 'must be "true" or "false"' })),
  RUNTIME_ENV_FILE: z.optional(absolutePath),
  RUNTIME_NETWORK: z.optional(
    z.string().check(z.regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/, 'must be a Docker network mode or network name')),
  ),
  STOP_TIMEOUT_SECONDS: z.optional(seconds(1, 60)),
  START_CHECK_SECONDS: z.optional(seconds(1, 60)),
  DEPLOY_TIMEOUT_SECONDS: z.optional(seconds(10, CLOUDFLARE_ORIGIN_TIMEOUT_SECONDS - 5)),
  IMAGE_RETENTION: z.optional(
    z.pipe(
      digitsAsNumber('must be a whole number of images (0 keeps all)'),
      z.int().check(z.maximum(1000, 'must be at most 1000')),
    ),
  ),
  STATE_DIR: z.optional(absolutePath),
  DOCKER_HOST: z.optional(z.string()),
  LOG_LEVEL: z.optional(z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` })),
  FAILURE_LOG_LINES: z.optional(wholeNumber(0, 200, 'lines')),
  // Checked by verification.ts, which names the variable of an inconsistent combination.
  IMAGE_VERIFICATION: z.optional(z.string()),
  SIGSTORE_TRUSTED_ROOT_FILE: z.optional(z.string()),
  ATTESTATION_REPOSITORY: z.optional(z.string()),
  ATTESTATION_SIGNER_WORKFLOW: z.optional(z.string()),
  ATTESTATION_SOURCE_REFS: z.optional(z.string()),
  ATTESTATION_PREDICATE_TYPE: z.optional(z.string()),
  ATTESTATION_ISSUER: z.optional(z.string()),
  COSIGN_PUBLIC_KEY_FILE: z.optional(z.string()),
});

export type Raw = z.infer<typeof schema>;
