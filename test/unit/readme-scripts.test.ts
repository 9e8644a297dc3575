import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gitModes, readReadme, scriptsRunDirectly, section, shellCommands } from '../support/readme.js';

/**
 * A script the README runs directly (`scripts/install.sh $ENV`) must be executable in git: a fresh
 * clone takes the mode from git, not from the machine where it was written. scripts/install.sh was
 * once committed as 100644 and step 2 of the README failed on a fresh clone.
 */
describe('the scripts the README runs', () => {
  it('finds the scripts run as commands, not those run through bash or node, nor those only named', () => {
    const readme = [
      '```sh',
      'ENV=dev',
      'npm ci && scripts/a.sh $ENV   # a comment naming scripts/not-run.sh',
      'bash scripts/through-bash.sh',
      'X=1 ./scripts/b.mjs | cat',
      '```',
      'Run `scripts/c.sh $ENV` again; `scripts/named.mjs` is only named, as is `node scripts/d.mjs`.',
    ].join('\n');
    assert.deepEqual(scriptsRunDirectly(readme), ['scripts/a.sh', 'scripts/b.mjs', 'scripts/c.sh']);
  });

  it('every script under scripts/ that the README runs directly is tracked with its executable bit (100755)', () => {
    const readme = readReadme();
    const scripts = scriptsRunDirectly(readme);
    assert.ok(scripts.includes('scripts/install.sh'), `the README runs scripts/install.sh (found: ${scripts.join(', ')})`);
    const modes = gitModes();
    const wrong = scripts
      .map((s) => ({ script: s, mode: modes.get(s) ?? 'not tracked' }))
      .filter((s) => s.mode !== '100755')
      .map((s) => `${s.script} is ${s.mode} in git (fix: git update-index --chmod=+x ${s.script})`);
    assert.deepEqual(wrong, []);
  });

  it("the install steps' commands are where the systemd test reads them", () => {
    const steps = shellCommands(section(readReadme(), '## 1. Install', '**4. Its tunnel.**'));
    assert.ok(steps.includes('scripts/install.sh $ENV'), steps.join('\n'));
    assert.ok(steps.includes('npm ci && npm run build'), steps.join('\n'));
  });
});
