import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { freePort } from '../support/sandbox.js';

/** The README's first command does what it says: `npm run demo` runs scripts/demo.ts after the set-up. */
describe('the demo', () => {
  it('brings everything up, deploys through the CI script, shows status, stops, and cleans up', async () => {
    const port = await freePort();
    // Only PATH and the port: the demo must not depend on this shell's environment.
    const r = spawnSync('npx', ['tsx', 'scripts/demo.ts'], { env: { PATH: process.env['PATH'] ?? '', DEMO_PORT: String(port) }, encoding: 'utf8', timeout: 300_000 });
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    for (const step of ['1. starting a private Docker engine', 'verified: dreichor-runtime-dev running', '"running": true', '"status":"stopped"', '/v1/deploy deployed', '8. cleaning up', 'demo: done']) {
      assert.ok(r.stdout.includes(step), `the demo says ${step}`);
    }
    const dir = /starting a private Docker engine in (\S+)/.exec(r.stdout)?.[1];
    assert.ok(dir !== undefined);
    const { existsSync } = await import('node:fs');
    assert.equal(existsSync(dir), false, 'the demo removed what it created');
  });
});
