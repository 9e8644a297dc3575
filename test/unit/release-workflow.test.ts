import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';

interface Step {
  readonly uses?: string;
  readonly run?: string;
  readonly with?: Record<string, unknown>;
  readonly env?: Record<string, string>;
}
interface Workflow {
  readonly on: { push: { tags: string[] } };
  readonly permissions: Record<string, string>;
  readonly jobs: Record<string, { needs?: string; permissions?: Record<string, string>; steps: Step[] }>;
}

describe('the GitHub release workflow', () => {
  const text = readFileSync('.github/workflows/release.yml', 'utf8');
  const wf = parseYaml(text) as Workflow;

  // actionlint: test/unit/workflows-lint.test.ts.

  it('runs on tags v*, tests first, and signs with only the permissions it needs', () => {
    assert.deepEqual(wf.on.push.tags, ['v*']);
    assert.deepEqual(wf.permissions, { contents: 'read' });
    const release = wf.jobs['release'];
    assert.equal(release?.needs, 'test');
    assert.deepEqual(release?.permissions, { contents: 'write', 'id-token': 'write', attestations: 'write' });
    assert.ok(wf.jobs['test']?.steps.some((s) => s.run?.includes('.ci/run')));
  });

  it('pins every action by commit and attests the release file it publishes with its checksum and bundle', () => {
    const steps = Object.values(wf.jobs).flatMap((j) => j.steps);
    for (const s of steps.filter((x) => x.uses !== undefined)) assert.match(s.uses ?? '', /@[0-9a-f]{40}$/);
    const attest = steps.find((s) => s.uses?.startsWith('actions/attest-build-provenance@') === true);
    assert.equal(attest?.with?.['subject-path'], '${{ steps.build.outputs.file }}');
    const build = steps.find((s) => s.run?.includes('scripts/build.mjs') === true);
    assert.match(build?.run ?? '', /cmp /);
    // Security: nothing of the dependencies runs where the signing identity is.
    assert.ok(steps.some((s) => s.run === 'npm ci --ignore-scripts'));
    const publish = steps.find((s) => s.run?.includes('gh release create') === true);
    for (const asset of ['"$FILE"', '"$FILE.sha256"', '"$FILE.sigstore.json"']) assert.ok(publish?.run?.includes(asset), asset);
  });
});
