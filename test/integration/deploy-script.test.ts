import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { image, repository, startTestAgent, type TestAgent, TOKEN } from '../support/harness.js';

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

/**
 * The workflow commands GitHub's runner would act on in `output`, read as the runner reads them
 * (actions/runner ActionCommand.TryParseV2 and the legacy TryParse): a line whose start, after leading
 * whitespace, is `::name ...::`, or that holds `##[name ...]` anywhere; while commands are stopped,
 * only the line `::<token>::` counts, and resumes them.
 */
function runnerCommands(output: string): { name: string; line: string }[] {
  const commands: { name: string; line: string }[] = [];
  let stoppedWith: string | null = null;
  for (const raw of output.split(/\r\n|\r|\n/)) {
    const line = raw.trimStart();
    if (stoppedWith !== null) {
      if (line === `::${stoppedWith}::`) stoppedWith = null;
      continue;
    }
    const v2 = /^::([^\s:]+)[^:]*::(.*)$/.exec(line);
    const legacy = /##\[([^\s\]]+)[^\]]*\]/.exec(line);
    const name = v2?.[1] ?? legacy?.[1];
    if (name === undefined) continue;
    commands.push({ name, line });
    if (v2 !== null && name === 'stop-commands') stoppedWith = v2[2] ?? '';
  }
  return commands;
}

describe('the deploy-and-verify script cannot be steered by what it prints', () => {
  const RUNTIME_LOG = [
    'the new container exited with code 1. Its last log lines:',
    '::warning title=Deployed OK::x',
    '::add-mask::x',
    '  ::stop-commands::x',
    '::error::the runtime says so',
    'legacy ##[warning]x',
    '```',
    '# Deployed OK',
    '<img src=x onerror=alert(1)>',
    '````',
  ].join('\n');
  let edge: { url: string; server: Server };
  let calls = 0;
  before(async () => {
    edge = await fakeEdge((path) => {
      calls += 1;
      return path === '/v1/deploy'
        ? {
            status: 502,
            headers: { 'X-Request-Id': '::warning::id' },
            body: JSON.stringify({ status: 'error', reason: RUNTIME_LOG }),
          }
        : { status: 200, body: JSON.stringify({ deploy_in_progress: true, phase: '::warning title=Phase::x' }) };
    });
  });
  after(() => edge.server.close());

  const base = () => ({
    AGENT_URL: edge.url,
    CF_ACCESS_CLIENT_ID: TOKEN.id,
    CF_ACCESS_CLIENT_SECRET: TOKEN.secret,
    ENVIRONMENT: 'dev',
    IMAGE: image('v1'),
    GITHUB_ACTIONS: 'true',
    DEPLOY_POLL_MS: '10',
  });

  it("a reason carrying workflow commands: the runner sees the script's own error annotation and nothing else", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'deploy-summary-'));
    after(() => rmSync(dir, { recursive: true, force: true }));
    const summaryFile = join(dir, 'summary.md');
    const r = await runScript({ ...base(), GITHUB_STEP_SUMMARY: summaryFile });
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /::warning title=Deployed OK::x/, 'the runtime log is printed, for the person reading it');
    const commands = runnerCommands(r.out);
    const acted = commands.filter((c) => c.name !== 'stop-commands');
    assert.deepEqual(
      acted.map((c) => c.name),
      ['error'],
      r.out,
    );
    assert.match(acted[0]?.line ?? '', /^::error title=Deploy failed::POST \/v1\/deploy answered 502: the new container exited/);
    for (const stop of commands.filter((c) => c.name === 'stop-commands')) {
      assert.match(stop.line, /^::stop-commands::[0-9a-f]{32}$/, 'a token nobody else knows');
    }
    // The summary: the reason inside one fence that its own backticks cannot close.
    const summary = readFileSync(summaryFile, 'utf8');
    const fence = /^(`{3,})text$/m.exec(summary)?.[1] ?? '';
    assert.ok(fence.length > 4, summary);
    const inside = summary.split(`${fence}text\n`)[1]?.split(`\n${fence}\n`)[0] ?? '';
    assert.ok(inside.includes('# Deployed OK') && inside.includes('<img src=x'), summary);
    assert.equal(summary.split('\n').filter((l) => l === fence).length, 1, 'closed once, at its end');
  });

  it('an image with a newline or a bad tag, an http AGENT_URL: refused before any call', async () => {
    const before = calls;
    const cases: [Record<string, string>, RegExp][] = [
      [{ IMAGE: `${image('v1')}\n::warning title=Deployed OK::x` }, /IMAGE is not an image reference/],
      [{ IMAGE: `${image('v1 x')}` }, /IMAGE is not an image reference/],
      [{ IMAGE: image(`v1${'x'.repeat(128)}`) }, /IMAGE is not an image reference/],
      [{ IMAGE: `${repository()}:` }, /IMAGE is not an image reference/],
      [{ AGENT_URL: 'http://deploy-dev.example.com' }, /AGENT_URL must be an https URL/],
      [{ AGENT_URL: 'ftp://127.0.0.1/' }, /AGENT_URL must be an https URL/],
      [{ AGENT_URL: `${edge.url}/?x=1` }, /AGENT_URL must not carry/],
      [{ ENVIRONMENT: 'dev\n::add-mask::x' }, /ENVIRONMENT must be "dev" or "prod"/],
    ];
    for (const [override, expected] of cases) {
      const r = await runScript({ ...base(), ...override });
      assert.equal(r.code, 1, r.out);
      assert.match(r.out, expected);
      assert.deepEqual(
        runnerCommands(r.out)
          .filter((c) => c.name !== 'stop-commands')
          .map((c) => c.name),
        ['error'],
        r.out,
      );
    }
    assert.equal(calls, before, 'no request was sent');
  });
});
