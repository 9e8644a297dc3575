import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as z from '../../src/zod.js';

// zod/mini installs no locale of its own: without src/zod.ts's, every reason built from an issue
// (a refused body, a damaged state file, a wrong variable) would say only "Invalid input".
describe('src/zod.ts', () => {
  it('gives issues their English message, saying what was expected and what came', () => {
    const parsed = z.safeParse(z.strictObject({ version: z.number() }), { version: 'x', extra: 1 });
    assert.equal(parsed.success, false);
    assert.deepEqual(
      parsed.error?.issues.map((issue) => issue.message),
      ['Invalid input: expected number, received string', 'Unrecognized key: "extra"'],
    );
  });
});
