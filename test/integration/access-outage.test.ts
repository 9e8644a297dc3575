import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AUTH_HEADERS, engine, image, startTestAgent } from '../support/harness.js';
import { AUD, startAccessStandIn, TEAM } from '../support/jwks.js';

/**
 * The brake survives an outage of Cloudflare's key endpoint: with the Access JWT check on, a key
 * server that goes down after the first fetch, and the clock moved past the 10-minute cache age (the
 * process's Date is mocked; nothing sleeps), `POST /v1/stop` still stops the runtime, as the engine
 * shows, and the status says how old the keys are.
 */
describe('the emergency stop during an outage of the Access key endpoint', () => {
  it('keeps the last good keys: the stop stops the runtime; the status shows their age', async (t) => {
    const access = await startAccessStandIn();
    const agent = await startTestAgent({ CF_ACCESS_TEAM_DOMAIN: TEAM, CF_ACCESS_AUD: AUD, CF_ACCESS_CERTS_URL: access.certsUrl });
    try {
      const withJwt = async () => ({ ...AUTH_HEADERS, 'Cf-Access-Jwt-Assertion': await access.sign({ exp: '1h' }) });
      const deployed = await agent.api.call('POST', '/v1/deploy', { body: { image: image('v1') }, headers: await withJwt() });
      assert.equal(deployed.status, 200, deployed.text);
      assert.equal((await engine.inspect(agent.config.containerName))?.State.Running, true);

      access.setAvailable(false);
      t.mock.timers.enable({ apis: ['Date'], now: Date.now() + 11 * 60_000 });
      const stopped = await agent.api.call('POST', '/v1/stop', { body: {}, headers: await withJwt() });
      assert.equal(stopped.status, 200, stopped.text);
      assert.equal(await engine.inspect(agent.config.containerName), null, 'the engine has no runtime any more');
      const status = await agent.api.call('GET', '/v1/status', { headers: await withJwt() });
      assert.equal(status.status, 200, status.text);
      assert.ok(Number(status.body['access_keys_age_seconds']) >= 660, status.text);
      t.mock.timers.reset();
    } finally {
      await agent.cleanup();
      await access.close();
    }
  });
});
