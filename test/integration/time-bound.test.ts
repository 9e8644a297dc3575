import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { engine, image, startTestAgent } from '../support/harness.js';
import { publishImage, sandboxInfo } from '../support/sandbox.js';

/**
 * The answer always comes within DEPLOY_TIMEOUT_SECONDS, on the worst path: an old container that
 * ignores SIGTERM (its whole stop grace is spent), then a new one that never becomes healthy and
 * ignores SIGTERM too. Its stop must fit in what is left, or it is killed; nothing of the deploy is
 * left running. With a second full grace period the answer would come ~10 s too late, which in
 * production is Cloudflare's 524 instead of the reason.
 */
const IGNORES_SIGTERM = "trap '' TERM; echo 'ignoring SIGTERM'; while :; do sleep 1; done";
// Within the start check it stays "starting": its check fails, and failures in the start period do
// not count. (A passing check no longer does: Docker 25 and later check every 5 s during the start
// period, --start-interval, where 20.10 waited for the first --interval.)
const NEVER_HEALTHY_IN_TIME = 'HEALTHCHECK --interval=300s --timeout=1s --start-period=300s CMD ["/bin/busybox", "false"]';

describe('the time bound of a deploy', () => {
  it('a failed new container that ignores SIGTERM is killed when its grace no longer fits: the answer comes within DEPLOY_TIMEOUT_SECONDS + 1 s', async () => {
    await publishImage(sandboxInfo(), 'slow-unhealthy', IGNORES_SIGTERM, NEVER_HEALTHY_IN_TIME);
    // 25 s in all: 10 s grace for the old container's stop, 5 s start check, 5 s margin, 5 s pull.
    const t = await startTestAgent({ DEPLOY_TIMEOUT_SECONDS: '25', STOP_TIMEOUT_SECONDS: '10', START_CHECK_SECONDS: '5' });
    try {
      assert.equal((await t.api.deploy(image('stubborn'))).status, 200);
      const old = await engine.inspect(t.config.containerName);

      const started = Date.now();
      const res = await t.api.deploy(image('slow-unhealthy'));
      const took = Date.now() - started;
      process.stdout.write(`# observed: answered in ${took} ms: ${res.status} ${String(res.body['reason']).split('\n')[0]}\n`);
      assert.ok(took <= 26_000, `answered within DEPLOY_TIMEOUT_SECONDS + 1 s (${took} ms)`);
      assert.equal(res.status, 502, res.text);
      assert.match(String(res.body['reason']), /did not become healthy within 5 s/);
      assert.match(String(res.body['reason']), /left of DEPLOY_TIMEOUT_SECONDS \(its grace is 10 s\) and was killed/);
      assert.match(String(res.body['reason']), /ignoring SIGTERM/, 'its log lines');

      const containers = await engine.named(t.config.containerName);
      assert.deepEqual(
        containers.filter((c) => c.State === 'running').map((c) => c.Names),
        [],
        'nothing of that deploy is left running',
      );
      assert.equal(await engine.inspect(old?.Id ?? ''), null, 'the old container was stopped and removed');
      const failed = await engine.inspect(t.config.containerName);
      assert.equal(failed?.State.ExitCode, 137, 'the new container was killed');
      assert.equal(t.auditLines().at(-1)?.['outcome'], 'failed');
    } finally {
      await t.cleanup();
    }
  });
});
