import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { image, startTestAgent, type TestAgent, TOKEN } from '../support/harness.js';

/** scripts/deploy-and-verify.mjs, the script the GitHub workflow runs, against a real agent. */
function runScript(env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['scripts/deploy-and-verify.mjs'], {
      env: { PATH: process.env['PATH'] ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

/** What Cloudflare in front of an origin can answer instead of the agent. */
async function fakeEdge(
  handler: (path: string) => { status: number; headers?: Record<string, string>; body: string },
): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const { status, headers, body } = handler(req.url ?? '/');
    res.writeHead(status, headers).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

describe('the deploy-and-verify script', () => {
  let t: TestAgent;
  let env: Record<string, string>;
  before(async () => {
    t = await startTestAgent();
    env = {
      AGENT_URL: t.agent.url,
      CF_ACCESS_CLIENT_ID: TOKEN.id,
      CF_ACCESS_CLIENT_SECRET: TOKEN.secret,
      ENVIRONMENT: 'dev',
      IMAGE: image('v1'),
    };
  });
  after(async () => {
    await t.cleanup();
  });

  it('deploys, verifies with status, exits 0', async () => {
    const r = await runScript(env);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /verified: .* running .*:v1/);
  });

  it('prints each phase while the deploy runs, in order, and writes the GitHub job summary', async () => {
    const summaryFile = join(t.folders.root, 'summary.md');
    const r = await runScript({
      ...env,
      IMAGE: image('v2'),
      DEPLOY_POLL_MS: '100',
      GITHUB_ACTIONS: 'true',
      GITHUB_STEP_SUMMARY: summaryFile,
    });
    assert.equal(r.code, 0, r.out);
    const order = ['pulling', 'created', 'stopping', 'starting', 'checking'];
    const phases = [...r.out.matchAll(/^\[\d+\.\d s\] (\w+)$/gm)].map((m) => m[1] ?? '');
    assert.ok(phases.includes('checking'), r.out); // the start check lasts a second; polled every 100 ms
    assert.deepEqual(
      phases,
      [...phases].sort((a, b) => order.indexOf(a) - order.indexOf(b)),
      'in the order they happen',
    );
    assert.match(r.out, /^\[\d+\.\d s\] deployed: /m);
    const summary = readFileSync(summaryFile, 'utf8');
    assert.match(summary, /^## Deployed to dev$/m);
    assert.match(summary, new RegExp(`\\| previous image \\| \`${image('v1')}\` \\|`));
    assert.match(summary, /\| digest \| `sha256:[0-9a-f]{64}` \|/);
    assert.match(summary, /\| request id \| `[0-9a-f-]{36}`/);
    assert.match(summary, /run this workflow with environment `dev` and tag `v1`/);
  });

  it("in GitHub Actions, a failure is an error annotation with the agent's reason and request id", async () => {
    const r = await runScript({ ...env, IMAGE: image('no-such-tag'), GITHUB_ACTIONS: 'true' });
    assert.equal(r.code, 1, r.out);
    assert.match(
      r.out,
      /^::error title=Deploy failed::POST \/v1\/deploy answered 502: the tag no-such-tag was not found.* \(request [0-9a-f-]{36}\)$/m,
    );
  });

  it("fails with the agent's reason on any non-200", async () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ CF_ACCESS_CLIENT_SECRET: 'wrong-secret-0123456789' }, /answered 401: invalid service token/],
      [{ IMAGE: image('no-such-tag') }, /answered 502: .*not found/],
      [{ ENVIRONMENT: 'prod' }, /answered 409: this is the dev agent/],
      [{ IMAGE: 'ghcr.io/someone/else:v1' }, /answered 400/],
      [{ IMAGE: '' }, /IMAGE is not set/],
    ];
    for (const [override, expected] of cases) {
      const r = await runScript({ ...env, ...override });
      assert.equal(r.code, 1, r.out);
      assert.match(r.out, expected);
    }
  });

  it('fails on an Access redirect, a 403 page, or a status that does not show the image', async () => {
    const edges: [(path: string) => { status: number; headers?: Record<string, string>; body: string }, RegExp][] = [
      [
        () => ({ status: 302, headers: { Location: 'https://team.cloudflareaccess.com/cdn-cgi/access/login' }, body: '' }),
        /answered 302 \(redirect to https:\/\/team.cloudflareaccess.com.*did not accept the token\)/,
      ],
      [
        () => ({ status: 403, headers: { 'Content-Type': 'text/html' }, body: '<html>Forbidden</html>' }),
        /answered 403: <html>Forbidden/,
      ],
      [
        () => ({ status: 200, headers: { 'Content-Type': 'text/html' }, body: '<html>login</html>' }),
        /answered 200 but not with JSON/,
      ],
      [
        (path) =>
          path === '/v1/deploy'
            ? {
                status: 200,
                body: JSON.stringify({ status: 'deployed', container_name: 'x', image: image('v1'), environment: 'dev' }),
              }
            : { status: 200, body: JSON.stringify({ container_name: 'x', running: true, image: image('v2') }) },
        /status shows .*:v2, not .*:v1/,
      ],
    ];
    for (const [handler, expected] of edges) {
      const edge = await fakeEdge(handler);
      try {
        const r = await runScript({ ...env, AGENT_URL: edge.url });
        assert.equal(r.code, 1, r.out);
        assert.match(r.out, expected);
      } finally {
        edge.server.close();
      }
    }
  });
});
