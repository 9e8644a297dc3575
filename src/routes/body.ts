import { badRequest, conflict } from '../errors.js';
import * as z from '../zod.js';

/** A body that may carry only the informational `environment` (stop, and status if it has a body). */
export const environmentOnlyBodySchema = z.strictObject({
  environment: z.optional(z.string({ error: 'must be a string' }).check(z.maxLength(64))),
});

/** Parses a request body with its schema; the first problem becomes a 400 naming the field. */
export function parseBody<S extends z.core.$ZodType>(schema: S, body: unknown): z.infer<S> {
  // An empty body reads as an empty object; the schema then decides what is missing.
  const parsed = z.safeParse(schema, body === undefined ? {} : body);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  if (issue === undefined) throw badRequest('invalid request body');
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((k) => JSON.stringify(k.slice(0, 64))).join(', ');
    throw badRequest(`request body has fields the agent does not accept: ${keys}`);
  }
  const field = issue.path.length > 0 ? issue.path.map(String).join('.') : 'request body';
  throw badRequest(`${field}: ${issue.message}`);
}

/**
 * `environment` in a body is informational, but a mismatch means the request was sent to the wrong
 * agent (a prod deploy reaching dev, or the reverse): refuse it rather than act on the wrong runtime.
 */
export function checkEnvironment(requested: string | undefined, own: string): void {
  if (requested !== undefined && requested !== own) {
    throw conflict(`this is the ${own} agent but the request is for environment ${JSON.stringify(requested.slice(0, 32))}`);
  }
}
