import * as z from '../zod.js';

/**
 * The shapes the three endpoints answer with, as zod schemas. The handlers build their answers from
 * typed objects (DeployResult, StopResult, StatusBody); these schemas describe the same objects for
 * docs/openapi.json (src/routes/openapi.ts) and are checked against those types at compile time, so
 * the published contract cannot drift from what the code returns. They are never used to parse a
 * request: answers leave the agent exactly as the deploy side built them.
 */

/** Every error the agent answers, whatever its status: never HTML, never a stack trace. */
export const errorBodySchema = z
  .strictObject({
    status: z.literal('error'),
    reason: z.string().check(z.describe('For the person reading the answer or the audit log: what failed and why.')),
  })
  .check(z.describe('Every error answer, for every status.'));

/** Deep readonly, so a `readonly string[]` of a result type and a schema's `string[]` compare equal. */
type Frozen<T> = T extends readonly (infer U)[]
  ? readonly Frozen<U>[]
  : T extends object
    ? { readonly [K in keyof T]: Frozen<T[K]> }
    : T;

/**
 * `true` only when a schema's output and a result type describe the same objects. Used as
 * `const check: SameShape<z.output<typeof schema>, Result> = true`, it fails to compile on any drift.
 */
export type SameShape<A, B> = [Frozen<A>] extends [Frozen<B>] ? ([Frozen<B>] extends [Frozen<A>] ? true : false) : false;

/** `warnings` of a deploy or a stop: present only when something went wrong that did not fail it. */
export const warningsSchema = z
  .array(z.string())
  .check(z.describe('What went wrong on the way without failing the request; absent when nothing did.'));
