import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse as parseDotenv } from 'dotenv';
import { parse as parseYaml } from 'yaml';
import { tempDir } from '../support/temp-dir.js';

/** The shipped operations files: checked, not just written. */
const ENVIRONMENTS = { dev: 3005, prod: 3006 } as const;

function analyze(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('systemd-analyze', args, { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('systemd units', () => {
  for (const environment of Object.keys(ENVIRONMENTS)) {
    it(`dreichor-deploy-agent@${environment} verifies without a warning and scores 2.0 or lower`, () => {
      const unit = `systemd/dreichor-deploy-agent@${environment}.service`;
      const verify = analyze(['verify', '--man=no', `./${unit}`]);
      // systemd-analyze exits 0 on unknown keys and only warns: any output is a failure.
      assert.equal(verify.status, 0, verify.stderr);
      assert.equal(verify.stderr.trim(), '', verify.stderr);
      const security = analyze(['security', '--offline=yes', `./${unit}`]);
      const score = /Overall exposure level for .*: (\d+\.\d+)/.exec(security.stdout)?.[1];
      assert.ok(score !== undefined, security.stdout + security.stderr);
      assert.ok(Number(score) <= 2.0, `exposure ${score}`);
    });
  }

  it('runs the installed agent as its own user in the docker group, with a stop timeout longer than any deploy', () => {
    const text = readFileSync('systemd/dreichor-deploy-agent@.service', 'utf8');
    const directive = (name: string) =>
      text
        .split('\n')
        .filter((l) => l.startsWith(`${name}=`))
        .map((l) => l.slice(name.length + 1));
    assert.match(
      directive('ExecStart')[0] ?? '',
      /^\/usr\/bin\/node( --[a-z-]+(=\d+)?)* \/opt\/dreichor\/%i\/deploy-agent\/agent\.js$/,
    );
    assert.equal(directive('ExecStart').length, 1);
    assert.deepEqual(directive('User'), ['dreichor-deploy-%i']);
    assert.deepEqual(directive('SupplementaryGroups'), ['docker']);
    assert.deepEqual(directive('EnvironmentFile'), ['/etc/dreichor/%i/deploy-agent.env']);
    assert.deepEqual(directive('StateDirectory'), ['dreichor/%i/deploy-agent']);
    assert.deepEqual(directive('Restart'), ['on-failure']);
    // DEPLOY_TIMEOUT_SECONDS is at most 95: SIGTERM lets a deploy finish within the stop timeout.
    assert.ok(Number(directive('TimeoutStopSec')[0]) > 95);
    // What would break the agent: V8's JIT, the Access key fetch, the docker group.
    for (const forbidden of ['MemoryDenyWriteExecute', 'IPAddressDeny', 'PrivateUsers', 'PrivateNetwork']) {
      assert.deepEqual(directive(forbidden), [], forbidden);
    }
  });

  for (const environment of Object.keys(ENVIRONMENTS)) {
    it(`cloudflared-dreichor@${environment} verifies without a warning`, () => {
      // cloudflared is not packaged for Debian, so verify a copy whose binary path is a stub.
      const dir = tempDir('unit');
      const stub = join(dir, 'cloudflared');
      writeFileSync(stub, '#!/bin/sh\n');
      chmodSync(stub, 0o755);
      const text = readFileSync('systemd/cloudflared-dreichor@.service', 'utf8');
      assert.match(
        text,
        /^ExecStart=\/usr\/bin\/cloudflared --no-autoupdate --config \/etc\/cloudflared\/dreichor-%i.yml tunnel run$/m,
      );
      // Security: a user of its own per environment, and the tunnel credentials handed to it alone.
      assert.match(text, /^DynamicUser=yes$/m);
      assert.match(text, /^User=cloudflared-%i$/m);
      assert.match(text, /^LoadCredential=tunnel\.json:\/etc\/cloudflared\/dreichor-deploy-%i\.json$/m);
      assert.doesNotMatch(text, /^(User|Group)=cloudflared$/m, 'no user shared by both tunnels');
      writeFileSync(join(dir, 'cloudflared-dreichor@.service'), text.replace('/usr/bin/cloudflared', stub));
      const verify = analyze(['verify', '--man=no', join(dir, `cloudflared-dreichor@${environment}.service`)]);
      assert.equal(verify.status, 0, verify.stderr);
      assert.equal(verify.stderr.trim(), '', verify.stderr);
    });
  }
});

describe('cloudflared tunnel configurations', () => {
  for (const [environment, port] of Object.entries(ENVIRONMENTS)) {
    it(`cloudflared/${environment}.yml: one Access-guarded rule to 127.0.0.1:${port}, then 404`, () => {
      const config = parseYaml(readFileSync(`cloudflared/${environment}.yml`, 'utf8')) as Record<string, unknown>;
      assert.equal(typeof config['tunnel'], 'string');
      // The unit's LoadCredential= copy of /etc/cloudflared/dreichor-deploy-<env>.json, for its user only.
      assert.equal(config['credentials-file'], `/run/credentials/cloudflared-dreichor@${environment}.service/tunnel.json`);
      assert.equal(config['access'], undefined, 'a top-level access key is ignored by cloudflared');
      const ingress = config['ingress'] as Record<string, unknown>[];
      assert.equal(ingress.length, 2);
      const [rule, last] = ingress;
      assert.equal(typeof rule?.['hostname'], 'string');
      assert.equal(rule?.['service'], `http://127.0.0.1:${port}`);
      const access = (rule?.['originRequest'] as Record<string, unknown> | undefined)?.['access'] as
        | Record<string, unknown>
        | undefined;
      assert.equal(access?.['required'], true);
      // The same team and application as the agent's own JWT check.
      const example = parseDotenv(readFileSync(`env/${environment}.env.example`, 'utf8'));
      assert.equal(`${String(access?.['teamName'])}.cloudflareaccess.com`, example['CF_ACCESS_TEAM_DOMAIN']);
      assert.deepEqual(access?.['audTag'], [example['CF_ACCESS_AUD']]);
      assert.deepEqual(last, { service: 'http_status:404' });
      // Its health on a fixed loopback port of its own, and no setting said twice (the unit passes
      // --no-autoupdate, so the file does not).
      assert.equal(config['metrics'], `127.0.0.1:${environment === 'dev' ? 20241 : 20242}`);
      assert.equal(config['no-autoupdate'], undefined);
      assert.match(readFileSync('systemd/cloudflared-dreichor@.service', 'utf8'), /--no-autoupdate/);
    });
  }
});

describe('the GitHub deploy workflow', () => {
  const text = readFileSync('.github/workflows/deploy.yml', 'utf8');

  // actionlint: test/unit/workflows-lint.test.ts.

  it('names its runs, runs on Node.js 24, with actions whose runtime is Node.js 24', () => {
    const wf = parseYaml(text) as {
      'run-name': string;
      jobs: Record<string, { steps: { uses?: string; with?: Record<string, unknown> }[] }>;
    };
    assert.equal(wf['run-name'], 'Deploy ${{ inputs.tag }} to ${{ inputs.environment }}');
    const steps = Object.values(wf.jobs).flatMap((j) => j.steps);
    // Majors whose action.yml says `using: node24` (checked in the actions' own repositories).
    assert.deepEqual(
      steps.filter((s) => s.uses !== undefined).map((s) => s.uses),
      ['actions/checkout@v7', 'actions/setup-node@v7'],
    );
    assert.equal(steps.find((s) => s.uses?.startsWith('actions/setup-node') === true)?.with?.['node-version'], 24);
  });

  it('is a manual deploy of a tag to an environment, through the agent only', () => {
    const wf = parseYaml(text) as {
      on: { workflow_dispatch: { inputs: Record<string, { type: string; options?: string[] }> } };
      concurrency: { group: string };
      jobs: Record<string, { environment: string; steps: { run?: string; env?: Record<string, string> }[] }>;
    };
    const inputs = wf.on.workflow_dispatch.inputs;
    assert.deepEqual(inputs['environment']?.options, ['dev', 'prod']);
    assert.equal(inputs['tag']?.type, 'string');
    assert.match(wf.concurrency.group, /inputs\.environment/);
    const job = Object.values(wf.jobs)[0];
    assert.equal(job?.environment, '${{ inputs.environment }}');
    const step = job?.steps.find((s) => s.run !== undefined);
    assert.equal(step?.run, 'node scripts/deploy-and-verify.mjs');
    assert.equal(step?.env?.['CF_ACCESS_CLIENT_SECRET'], '${{ secrets.CF_ACCESS_CLIENT_SECRET }}');
    assert.equal(step?.env?.['AGENT_URL'], '${{ vars.DEPLOY_AGENT_URL }}');
    // What the workflow does, as opposed to what its comments say: no Docker, no SSH, no runtime configuration.
    const actions = JSON.stringify(Object.values(wf.jobs).map((j) => j.steps)).toLowerCase();
    for (const never of [
      'docker',
      'ssh',
      'database_url',
      'safety_mode',
      'execution_plane',
      'log_level',
      'allow_execution_plane',
    ]) {
      assert.ok(!actions.includes(never), `a workflow step uses ${never}`);
    }
  });
});
