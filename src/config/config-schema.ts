import { isAbsolute } from 'node:path';
import * as z from 'zod';

/**
 * The variables the agent reads, each checked on its own: presence, form and range. What depends on
 * more than one of them (the container name and the environment, the timeouts together, pairs that
 * go together) is checked in config.ts, which builds the Config from what passes here.
 */

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

// Cloudflare answers 524 when an origin has not answered in 100 s: a deploy must end before that.
const CLOUDFLARE_ORIGIN_TIMEOUT_SECONDS = 100;

const wholeNumber = (min: number, max: number, what: string) =>
  z
    .string()
    .regex(/^\d+$/, `must be a whole number of ${what}`)
    .transform(Number)
    .pipe(z.number().int().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`));
const seconds = (min: number, max: number) => wholeNumber(min, max, 'seconds');

const absolutePath = z
  .string()
  .refine((p) => isAbsolute(p), 'must be an absolute path')
  .refine((p) => !p.includes('\0') && !p.split('/').includes('..'), 'must not contain ".." or NUL');

// Security: secrets are checked for being present, not trivially short, and sendable: a service token
// secret travels in an HTTP header, so anything but visible ASCII (a space, a trailing "# note" that
// systemd's EnvironmentFile= keeps, a non-ASCII byte, a second newline from a _FILE) makes a secret no
// caller can ever present, and every request, the emergency stop included, would be refused. Their
// values never appear in an error message, because this message is printed to the journal.
const secret = z
  .string()
  .min(16, 'must be at least 16 characters long')
  .regex(/^[\x21-\x7e]+$/, 'must be visible ASCII only, without spaces (is there a trailing comment or a stray byte?)');
const clientId = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces');

export const schema = z
  .object({
    ENVIRONMENT: z.enum(['dev', 'prod'], { error: 'must be "dev" or "prod"' }),
    PORT: z
      .string()
      .regex(/^\d+$/, 'must be a port number')
      .transform(Number)
      .pipe(z.number().int().min(1).max(65535, 'must be a port number from 1 to 65535'))
      .optional(),
    CONTAINER_NAME: z
      .string()
      .regex(
        /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,100}$/,
        'must be a valid container name ([a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 101 characters)',
      )
      .optional(),
    CF_ACCESS_CLIENT_ID: clientId,
    CF_ACCESS_CLIENT_SECRET: secret,
    CF_ACCESS_CLIENT_SECRET_FILE: absolutePath.optional(),
    CF_ACCESS_ROTATION_CLIENT_SECRET_FILE: absolutePath.optional(),
    CF_ACCESS_ROTATION_CLIENT_ID: clientId.optional(),
    CF_ACCESS_ROTATION_CLIENT_SECRET: secret.optional(),
    CF_ACCESS_TEAM_DOMAIN: z
      .string()
      .regex(
        /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/,
        'must be a host name such as "myteam.cloudflareaccess.com", without scheme or path',
      )
      .optional(),
    CF_ACCESS_AUD: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,256}$/, 'must be the Access application audience tag')
      .optional(),
    CF_ACCESS_CERTS_URL: z.string().optional(),
    IMAGE_REPOSITORY: z.string().optional(),
    REGISTRY_USERNAME: z.string().max(256).optional(),
    REGISTRY_PASSWORD: z.string().max(4096).optional(),
    REGISTRY_PASSWORD_FILE: absolutePath.optional(),
    AUDIT_EVENTS_PATH: absolutePath,
    SNAPSHOTS_PATH: absolutePath,
    ALLOW_EXECUTION_PLANE: z.enum(['true', 'false'], { error: 'must be "true" or "false"' }).optional(),
    RUNTIME_ENV_FILE: absolutePath.optional(),
    RUNTIME_NETWORK: z
      .string()
      .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/, 'must be a Docker network mode or network name')
      .optional(),
    STOP_TIMEOUT_SECONDS: seconds(1, 60).optional(),
    START_CHECK_SECONDS: seconds(1, 60).optional(),
    DEPLOY_TIMEOUT_SECONDS: seconds(10, CLOUDFLARE_ORIGIN_TIMEOUT_SECONDS - 5).optional(),
    IMAGE_RETENTION: z
      .string()
      .regex(/^\d+$/, 'must be a whole number of images (0 keeps all)')
      .transform(Number)
      .pipe(z.number().int().max(1000, 'must be at most 1000'))
      .optional(),
    STATE_DIR: absolutePath.optional(),
    DOCKER_HOST: z.string().optional(),
    LOG_LEVEL: z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` }).optional(),
    FAILURE_LOG_LINES: wholeNumber(0, 200, 'lines').optional(),
    // Checked by verification.ts, which names the variable of an inconsistent combination.
    IMAGE_VERIFICATION: z.string().optional(),
    SIGSTORE_TRUSTED_ROOT_FILE: z.string().optional(),
    ATTESTATION_REPOSITORY: z.string().optional(),
    ATTESTATION_SIGNER_WORKFLOW: z.string().optional(),
    ATTESTATION_SOURCE_REFS: z.string().optional(),
    ATTESTATION_PREDICATE_TYPE: z.string().optional(),
    ATTESTATION_ISSUER: z.string().optional(),
    COSIGN_PUBLIC_KEY_FILE: z.string().optional(),
  })
  .strip();

export type Raw = z.infer<typeof schema>;
