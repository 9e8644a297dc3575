import { ACCESS_JWT_HEADER, CLIENT_ID_HEADER, CLIENT_SECRET_HEADER } from '../auth.js';
import { provenanceSchema } from '../supply-chain/provenance.js';
import * as z from '../zod.js';
import { errorBodySchema } from './answers.js';
import { environmentOnlyBodySchema } from './body.js';
import { deployAnswerSchema, deployBodySchema } from './deploy.js';
import { statusAnswerSchema } from './status.js';
import { stopAnswerSchema } from './stop.js';

/**
 * The OpenAPI 3.1 document of the three endpoints, built from the zod schemas the routes validate
 * requests with and describe their answers with (answers.ts). Written to docs/openapi.json by
 * scripts/openapi.ts; a unit test regenerates it and fails when the committed file differs, and the
 * integration tier validates every answer it receives against it (test/support/openapi.ts).
 * Not part of the agent's bundle: nothing the agent runs imports it.
 */

type Json = { readonly [key: string]: unknown };

const REF = '#/components/schemas/';

/** Each registry's schemas as JSON Schema (2020-12, OpenAPI 3.1's dialect), referring to each other by REF. */
function componentsOf(schemas: Readonly<Record<string, z.core.$ZodType>>, io: 'input' | 'output'): Record<string, Json> {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(schemas)) registry.add(schema, { id });
  const { schemas: out } = z.toJSONSchema(registry, { target: 'draft-2020-12', io, uri: (id) => `${REF}${id}` });
  // Each comes with its own $schema and a fragment $id, which inside a components section are noise.
  return Object.fromEntries(Object.entries(out).map(([id, { $schema: _s, $id: _i, ...schema }]) => [id, schema as Json]));
}

/** Why each status is answered, per endpoint (docs/API.md has the long form). */
const ERRORS = {
  400: 'Malformed JSON, not an object, an unknown field, a field of the wrong type or a refused image reference.',
  401: 'The service token is missing or wrong, or the Access JWT (when configured) is missing or invalid.',
  405: 'Another method on this path; `Allow` names the one it accepts.',
  409: "The request is for another environment, a deploy or stop is already running, or a tag's digest moved.",
  413: 'The body is over 4096 bytes.',
  415: 'No `Content-Type: application/json`, a compressed body, or a charset other than UTF-8.',
  422: 'The image is not verified (IMAGE_VERIFICATION): the reason names the failed check.',
  500: 'The request succeeded but its audit line could not be written (the reason says what happened), or a bug.',
  502: 'The registry or engine refused, or the new container failed its start check (the reason has its last log lines).',
  503: 'The engine cannot be reached, the Access signing keys cannot be fetched, the audit log cannot be written, or the agent is shutting down.',
  504: 'The pull or an engine call did not finish in time.',
} as const;

type ErrorStatus = keyof typeof ERRORS;

const json = (schema: string) => ({ 'application/json': { schema: { $ref: `${REF}${schema}` } } });
const requestIdHeader = { 'X-Request-Id': { $ref: '#/components/headers/RequestId' } };

function operation(
  summary: string,
  description: string,
  body: { readonly schema: string; readonly required: boolean } | null,
  answer: string,
  errors: readonly ErrorStatus[],
): Json {
  const responses: Record<string, Json> = { 200: { description: 'Done.', headers: requestIdHeader, content: json(answer) } };
  for (const status of errors) {
    const headers = status === 405 ? { ...requestIdHeader, Allow: { $ref: '#/components/headers/Allow' } } : requestIdHeader;
    responses[status] = { description: ERRORS[status], headers, content: json('Error') };
  }
  // Anything else the HTTP layer may answer (a parser-level error, an unknown path) has the same shape.
  responses['default'] = { $ref: '#/components/responses/Error' };
  return {
    summary,
    description,
    security: [
      { CfAccessClientId: [], CfAccessClientSecret: [], CfAccessJwt: [] },
      { CfAccessClientId: [], CfAccessClientSecret: [] },
    ],
    ...(body === null ? {} : { requestBody: { required: body.required, content: json(body.schema) } }),
    responses,
  };
}

export function openApiDocument(): Json {
  return {
    openapi: '3.1.0',
    info: {
      title: 'Dreichor deploy agent',
      version: 'v1',
      description:
        'The only component allowed to start, stop or replace the Dreichor trading runtime container. ' +
        "Generated from the agent's own schemas by scripts/openapi.ts; docs/API.md explains each endpoint.",
    },
    servers: [
      { url: 'https://deploy-{environment}.example.com', variables: { environment: { default: 'prod', enum: ['dev', 'prod'] } } },
    ],
    paths: {
      '/v1/deploy': {
        post: operation(
          'Deploy one runtime image tag',
          'Validates, resolves the tag, verifies (IMAGE_VERIFICATION), pulls, swaps the container and checks its start.',
          { schema: 'DeployRequest', required: true },
          'DeployAnswer',
          [400, 401, 405, 409, 413, 415, 422, 500, 502, 503, 504],
        ),
      },
      '/v1/status': {
        get: operation(
          'What runs and what the agent is doing',
          'Read-only; answers during a deploy. A body, if any, may carry only the informational environment.',
          { schema: 'EnvironmentOnlyRequest', required: false },
          'StatusAnswer',
          [400, 401, 405, 413, 415, 503, 504],
        ),
      },
      '/v1/stop': {
        post: operation(
          'The emergency brake: stop and remove the runtime container',
          "Also stops any other running container of this environment's runtime; a no-op when there is none.",
          { schema: 'EnvironmentOnlyRequest', required: false },
          'StopAnswer',
          [400, 401, 405, 409, 413, 415, 500, 502, 503, 504],
        ),
      },
    },
    components: {
      schemas: {
        ...componentsOf({ DeployRequest: deployBodySchema, EnvironmentOnlyRequest: environmentOnlyBodySchema }, 'input'),
        ...componentsOf(
          {
            DeployAnswer: deployAnswerSchema,
            StatusAnswer: statusAnswerSchema,
            StopAnswer: stopAnswerSchema,
            Provenance: provenanceSchema,
            Error: errorBodySchema,
          },
          'output',
        ),
      },
      responses: {
        Error: { description: 'An error.', headers: requestIdHeader, content: json('Error') },
      },
      headers: {
        RequestId: {
          description: "Every answer's id: the audit log's request_id.",
          required: true,
          schema: { type: 'string', minLength: 1 },
        },
        Allow: { description: 'The one method the path accepts.', required: true, schema: { type: 'string' } },
      },
      securitySchemes: {
        CfAccessClientId: {
          type: 'apiKey',
          in: 'header',
          name: headerName(CLIENT_ID_HEADER),
          description: 'The service token id.',
        },
        CfAccessClientSecret: {
          type: 'apiKey',
          in: 'header',
          name: headerName(CLIENT_SECRET_HEADER),
          description: 'The service token secret.',
        },
        CfAccessJwt: {
          type: 'apiKey',
          in: 'header',
          name: headerName(ACCESS_JWT_HEADER),
          description: 'The Cloudflare Access JWT, when CF_ACCESS_AUD is configured (Cloudflare adds it).',
        },
      },
    },
  };
}

/** `cf-access-client-id` as documents write it: `CF-Access-Client-Id`. */
const headerName = (lower: string): string =>
  lower
    .split('-')
    .map((part) => (part === 'cf' ? 'CF' : `${part.charAt(0).toUpperCase()}${part.slice(1)}`))
    .join('-');

/** The committed file's text: stable key order as built, two-space indent, one trailing newline. */
export const openApiText = (): string => `${JSON.stringify(openApiDocument(), null, 2)}\n`;
