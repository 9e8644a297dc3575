import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { freePort } from '../support/sandbox.js';

/** The README's first command does what it says: `npm run demo` runs scripts/demo.ts after the set-up. */
describe('the demo', () => {
  it('brings everything up, deploys through the CI script, shows a failure and the way back, stops, and cleans up', async () => {
    const port = await freePort();
    // Only PATH and the port: the demo must not depend on this shell's environment.
    const r = spawnSync('npx', ['tsx', 'scripts/demo.ts'], {
      env: { PATH: process.env['PATH'] ?? '', DEMO_PORT: String(port) },
      encoding: 'utf8',
      timeout: 300_000,
    });
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    const all = `${r.stdout}${r.stderr}`;
    for (const step of [
      '1. starting a private Docker engine',
      'verified: dreichor-runtime-dev running',
      'answered 502: the new container exited with code 3',
      'boom: cannot connect to the database at [DATABASE_URL]',
      'status: running=false, last deploy failed',
      '7. rolling back',
      'answered 409: tag v1 was first deployed here as sha256:',
      '"running": true',
      '"status":"stopped"',
      '/v1/deploy deployed',
      '12. cleaning up',
      'demo: done',
    ]) {
      assert.ok(all.includes(step), `the demo says ${step}`);
    }
    assert.ok(!all.includes('demo-db-password'), 'the database password is masked everywhere');
    const dir = /starting a private Docker engine in (\S+)/.exec(r.stdout)?.[1];
    assert.ok(dir !== undefined);
    const { existsSync } = await import('node:fs');
    assert.equal(existsSync(dir), false, 'the demo removed what it created');
  });
});
