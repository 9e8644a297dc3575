import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { AgentError } from '../../src/errors.js';
import type { Provenance } from '../../src/supply-chain/provenance.js';
import { ScriptedRegistry } from './scripted-registry.js';

/**
 * A test file's own temporary folder and scripted registry: the registry started before the file's
 * tests, both gone after them (also when a test fails).
 */
export function registryFixture(prefix: string): { readonly root: string; readonly registry: ScriptedRegistry } {
  const root = mkdtempSync(join(tmpdir(), prefix));
  let registry: ScriptedRegistry | null = null;
  before(async () => {
    registry = await ScriptedRegistry.start();
  });
  after(async () => {
    await registry?.close();
    rmSync(root, { recursive: true, force: true });
  });
  return {
    root,
    get registry() {
      return registry ?? assert.fail('the scripted registry is not started yet');
    },
  };
}

/** The AgentError `promise` is refused with; the test fails when it resolves (`what` names that). */
export const refusal = (promise: Promise<unknown>, what = 'resolved'): Promise<AgentError> =>
  promise.then(
    () => assert.fail(what),
    (error: unknown) => {
      assert.ok(error instanceof AgentError, String(error));
      return error;
    },
  );

/** The provenance of an image verified with a cosign key: no source fields, the key's fingerprint. */
export const keyProvenance = (subjectDigest: string, keyFingerprint: string): Provenance => ({
  verified_by: 'cosign-key',
  subject_digest: subjectDigest,
  repository: null,
  commit: null,
  ref: null,
  workflow: null,
  run_url: null,
  predicate_type: null,
  key_fingerprint: keyFingerprint,
});
