import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Api, engine, eventually, image, removeContainersNamed, repository, TOKEN } from '../support/harness.js';
import { type ExecResult, Machine } from '../support/machine.js';
import { copyAsClone, readReadme, section, shellCommands } from '../support/readme.js';
import { docker, sandboxInfo } from '../support/sandbox.js';

/**
 * The operator's path, for real: a Debian machine with systemd as PID 1 and Node.js 24, the test
 * engine's socket bound in at /var/run/docker.sock, the agent installed as the README says, both
 * units (dev and prod) running as shipped, under their full hardening. Checked through the units and
 * against the engine's own state.
 *
 * The README's steps 1 to 3 are run word for word: every command of their shell blocks, read from
 * the README itself, in a root shell in the machine, in a copy of this checkout as a fresh clone has
 * it (tracked files only, with their modes from git: a script committed without its executable bit
 * fails here as it would for an operator). Only the editor is a stand-in: the test writes the values
 * an operator would type, and runs the README's `${EDITOR:-vi} ...` lines with EDITOR=true.
 */
// Step 2's release path (downloads from GitHub) is install-release.test.ts's; this test installs from the checkout.
const INSTALL = section(readReadme(), '## 1. Install', '**4. Its tunnel.**');
const README_STEPS = shellCommands(INSTALL.replace(section(INSTALL, '**2. The agent.**', '_From a checkout_'), ''));
const DOCKER_GID = 2375; // the engine socket's group, and the machine's docker group
const PORTS = { dev: 3005, prod: 3006 } as const;
type Env = keyof typeof PORTS;
const unit = (env: Env) => `dreichor-deploy-agent@${env}`;
const runtime = (env: Env) => `dreichor-runtime-${env}`;
const CHECKOUT = '/srv/dreichor-deploy-agent'; // where the machine sees this checkout

describe('the shipped units under a real systemd', () => {
  let machine: Machine;
  let data: string;
  const api = { dev: new Api(`http://127.0.0.1:${PORTS.dev}`), prod: new Api(`http://127.0.0.1:${PORTS.prod}`) };
  const inRoot = (path: string) => join(machine.root, path);

  /** What an operator does after install.sh: replace the example's values in the environment file. */
  function fillIn(env: Env, values: Record<string, string>): void {
    const file = inRoot(`/etc/dreichor/${env}/deploy-agent.env`);
    const lines = readFileSync(file, 'utf8').split('\n');
    for (const [key, value] of Object.entries(values)) {
      const i = lines.findIndex((l) => l.startsWith(`${key}=`));
      if (i === -1) throw new Error(`${key} is not in the installed environment file`);
      lines[i] = `${key}=${value}`;
    }
    writeFileSync(file, lines.join('\n'));
  }

  const ran = new Set<string>();
  /**
   * Runs one of the README's commands, exactly as printed, for `env`: after the README's own
   * `ENV=dev` line (`ENV=prod` for prod, as the README says), in the checkout.
   */
  async function operator(command: string, env: Env, extra: Record<string, string> = {}): Promise<ExecResult> {
    assert.ok(README_STEPS.includes(command), `the README's steps 1 to 3 print: ${command}`);
    const setEnv = README_STEPS.find((l) => l === 'ENV=dev');
    assert.ok(setEnv, 'the README sets ENV=dev first');
    ran.add(setEnv);
    ran.add(command);
    return machine.shell(`cd ${CHECKOUT}\n${setEnv.replace('dev', env)}\n${command}`, extra);
  }
  async function operatorMust(command: string, env: Env, extra: Record<string, string> = {}): Promise<string> {
    const r = await operator(command, env, extra);
    assert.equal(r.code, 0, `${command} (ENV=${env}) exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
  }

  const active = async (env: Env) => (await machine.exec(['systemctl', 'is-active', unit(env)])).stdout.trim();

  before(async () => {
    const info = sandboxInfo();
    const dir = mkdtempSync(join(tmpdir(), 'dreichor-systemd-'));
    // The runtime's folders are bind sources for the engine, which runs on this host: they exist at
    // the same path here and inside the machine.
    data = join(dir, 'data');
    for (const env of ['dev', 'prod'] as const)
      for (const f of ['audit-events', 'snapshots']) mkdirSync(join(data, env, f), { recursive: true });
    chownSync(info.socketPath, 0, DOCKER_GID);
    const checkout = join(dir, 'checkout');
    copyAsClone(checkout);
    machine = await Machine.boot(
      join(dir, 'machine'),
      [
        { host: info.socketPath, inside: '/var/run/docker.sock' },
        { host: checkout, inside: CHECKOUT },
        { host: data, inside: data },
      ],
      async (root) => {
        // The Docker engine's package creates this group on a real host.
        const group = readFileSync(join(root, 'etc/group'), 'utf8');
        writeFileSync(join(root, 'etc/group'), `${group}docker:x:${DOCKER_GID}:\n`);
      },
    );
  });

  after(async () => {
    for (const env of ['dev', 'prod'] as const) await removeContainersNamed(runtime(env));
    await machine?.destroy();
  });

  it('boots Debian with systemd as PID 1, and /usr/bin/node is Node.js 24', async () => {
    assert.match(await machine.must(['systemctl', 'is-system-running']), /running|degraded/);
    assert.match(await machine.must(['/usr/bin/node', '--version']), /^v24\./);
  });

  it("installs both environments with the README's commands, and starts each once its FAKE values are replaced", async () => {
    await operatorMust('npm ci && npm run build', 'dev');
    for (const env of ['dev', 'prod'] as const) {
      const out = await operatorMust('scripts/install.sh $ENV', env);
      assert.match(out, /Left to fill in before the agent can start:/);
      assert.match(out, /CF_ACCESS_CLIENT_ID CF_ACCESS_CLIENT_SECRET/);
      assert.equal(await active(env), 'inactive', 'not started with the example values');
      assert.equal((await machine.exec(['systemctl', 'is-enabled', unit(env)])).stdout.trim(), 'enabled');
      const envFile = statSync(inRoot(`/etc/dreichor/${env}/deploy-agent.env`));
      assert.equal(envFile.mode & 0o777, 0o600);
      assert.equal(envFile.uid, 0);
    }
    const common = {
      CF_ACCESS_CLIENT_ID: TOKEN.id,
      CF_ACCESS_TEAM_DOMAIN: '',
      CF_ACCESS_AUD: '',
      // The examples ask for attestations of the real repository; the sandbox's images carry none.
      IMAGE_VERIFICATION: 'none',
      SIGSTORE_TRUSTED_ROOT_FILE: '',
      ATTESTATION_REPOSITORY: '',
      ATTESTATION_SIGNER_WORKFLOW: '',
      ATTESTATION_SOURCE_REFS: '',
      IMAGE_REPOSITORY: repository(),
      RUNTIME_NETWORK: 'none',
      STOP_TIMEOUT_SECONDS: '3',
      START_CHECK_SECONDS: '1',
      DEPLOY_TIMEOUT_SECONDS: '30',
    };
    fillIn('dev', {
      ...common,
      CF_ACCESS_CLIENT_SECRET: TOKEN.secret,
      AUDIT_EVENTS_PATH: join(data, 'dev/audit-events'),
      SNAPSHOTS_PATH: join(data, 'dev/snapshots'),
    });
    // prod takes its secret as a systemd credential, as the unit's comment shows.
    fillIn('prod', {
      ...common,
      CF_ACCESS_CLIENT_SECRET: '',
      CF_ACCESS_CLIENT_SECRET_FILE: '/run/credentials/dreichor-deploy-agent@prod.service/cf-access-client-secret',
      AUDIT_EVENTS_PATH: join(data, 'prod/audit-events'),
      SNAPSHOTS_PATH: join(data, 'prod/snapshots'),
    });
    writeFileSync(inRoot('/etc/dreichor/prod/cf-access-client-secret'), `${TOKEN.secret}\n`, { mode: 0o600 });
    mkdirSync(inRoot('/etc/systemd/system/dreichor-deploy-agent@prod.service.d'), { recursive: true });
    writeFileSync(
      inRoot('/etc/systemd/system/dreichor-deploy-agent@prod.service.d/credential.conf'),
      '[Service]\nLoadCredential=cf-access-client-secret:/etc/dreichor/%i/cf-access-client-secret\n',
    );

    // Running it again is how an operator applies that: idempotent, and the files filled in are kept.
    for (const env of ['dev', 'prod'] as const) {
      // The editor's part was done above; the README's lines run with an editor that saves as it is.
      await operatorMust('${EDITOR:-vi} /etc/dreichor/$ENV/deploy-agent.env', env, { EDITOR: 'true' });
      await operatorMust('${EDITOR:-vi} /etc/dreichor/$ENV/runtime.env', env, { EDITOR: 'true' });
      const before = readFileSync(inRoot(`/etc/dreichor/${env}/deploy-agent.env`), 'utf8');
      const out = await operatorMust('scripts/install.sh $ENV', env);
      assert.match(out, /\(re\)started/);
      assert.equal(
        readFileSync(inRoot(`/etc/dreichor/${env}/deploy-agent.env`), 'utf8'),
        before,
        'the environment file was not overwritten',
      );
      await eventually(`${unit(env)} answers`, 20_000, async () => (await api[env].status().catch(() => null))?.status === 200);
      assert.equal(await active(env), 'active');
      const state = statSync(inRoot(`/var/lib/dreichor/${env}/deploy-agent`));
      assert.equal(state.mode & 0o777, 0o700, 'the state folder is 0700');
      const owner = await machine.must(['stat', '-c', '%U', `/var/lib/dreichor/${env}/deploy-agent`]);
      assert.equal(owner.trim(), `dreichor-deploy-${env}`);
      const listening = (await machine.journal(unit(env))).split('\n').find((l) => l.includes('"msg":"listening"'));
      assert.ok(listening, 'the agent logs to journald');
      const line = JSON.parse(listening) as Record<string, unknown>;
      assert.equal(line['level'], 'info');
      assert.match(String(line['time']), /^\d{4}-\d\d-\d\dT/);
      assert.match(String(line['version']), /^\d+\.\d+\.\d+/);
      assert.match(await operatorMust('journalctl -u dreichor-deploy-agent@$ENV -n 20 -o cat', env), /"msg":"listening"/);
    }
    // Step 3: the agent answers on loopback, and 401 without a token is the expected answer.
    const answer = await operatorMust("curl -s http://127.0.0.1:3005/v1/status -H 'Content-Type: application/json'", 'dev');
    assert.match(answer, /"status":"error","reason":"missing CF-Access-Client-Id/);
  });

  it("ran every command of the README's steps 1 to 3, as printed", () => {
    assert.deepEqual(
      README_STEPS.filter((c) => !ran.has(c)),
      [],
      'a command the README prints for steps 1 to 3 that the test did not run',
    );
  });

  it('deploys, replaces, reports and stops through both units, side by side', async () => {
    const [dev, prod] = await Promise.all([
      api.dev.deploy(image('v1'), { environment: 'dev' }),
      api.prod.deploy(image('v2'), { environment: 'prod' }),
    ]);
    assert.equal(dev.status, 200, dev.text);
    assert.equal(prod.status, 200, prod.text);
    assert.equal((await engine.inspect(runtime('dev')))?.Config.Labels['io.dreichor.image'], image('v1'));
    assert.equal((await engine.inspect(runtime('prod')))?.Config.Labels['io.dreichor.image'], image('v2'));

    const old = await engine.inspect(runtime('dev'));
    const replaced = await api.dev.deploy(image('v3'));
    assert.equal(replaced.status, 200, replaced.text);
    const now = await engine.inspect(runtime('dev'));
    assert.notEqual(now?.Id, old?.Id);
    assert.equal(await engine.inspect(old?.Id ?? ''), null);
    const status = await api.dev.status();
    assert.equal(status.body['image'], image('v3'));
    assert.equal(status.body['running'], now?.State.Running);
    assert.match(await machine.journal(unit('dev')), /"msg":"deploy: checking"/, 'each phase is in the journal');

    assert.equal((await api.prod.stop()).status, 200);
    assert.equal(await engine.inspect(runtime('prod')), null);
    assert.equal((await api.prod.status()).body['running'], false);
    assert.equal((await engine.inspect(runtime('dev')))?.State.Running, true, 'dev untouched by prod');
  });

  it('the hardening holds: moved outside its state folder without ReadWritePaths=, the agent cannot write and does not start', async () => {
    // As the README says: STATE_DIR moved in the environment file, the folder granted in a drop-in.
    // Its state moves with it: an empty folder beside a runtime that carries the agent's labels is
    // lost state, which the agent refuses.
    await machine.must(['systemctl', 'stop', unit('dev')]);
    await machine.must(['install', '-d', '-m', '0700', '-o', 'dreichor-deploy-dev', '/srv/dreichor-dev-state']);
    await machine.must(['cp', '-a', '/var/lib/dreichor/dev/deploy-agent/.', '/srv/dreichor-dev-state/']);
    fillIn('dev', { STATE_DIR: '/srv/dreichor-dev-state' });
    await machine.exec(['systemctl', 'restart', unit('dev')]);
    await eventually('the agent refuses to start', 20_000, async () =>
      /cannot start: .*\(EROFS\)/.test(await machine.journal(unit('dev'))),
    );
    assert.notEqual((await api.dev.status().catch(() => null))?.status, 200);

    const dropIn = inRoot('/etc/systemd/system/dreichor-deploy-agent@dev.service.d');
    mkdirSync(dropIn, { recursive: true });
    writeFileSync(join(dropIn, 'state.conf'), '[Service]\nReadWritePaths=/srv/dreichor-dev-state\n');
    await machine.must(['systemctl', 'daemon-reload']);
    await machine.must(['systemctl', 'reset-failed', unit('dev')]);
    await machine.must(['systemctl', 'restart', unit('dev')]);
    await eventually('the agent answers', 20_000, async () => (await api.dev.status().catch(() => null))?.status === 200);
    const moved = statSync(inRoot('/srv/dreichor-dev-state/audit.jsonl')).size;
    assert.equal((await api.dev.deploy(image('v1'))).status, 200);
    assert.ok(statSync(inRoot('/srv/dreichor-dev-state/audit.jsonl')).size > moved, 'its audit log is in the granted folder');

    await machine.must(['systemctl', 'stop', unit('dev')]);
    await machine.must(['cp', '-a', '/srv/dreichor-dev-state/.', '/var/lib/dreichor/dev/deploy-agent/']);
    fillIn('dev', { STATE_DIR: '/var/lib/dreichor/dev/deploy-agent' });
    writeFileSync(join(dropIn, 'state.conf'), '');
    await machine.must(['systemctl', 'daemon-reload']);
    await machine.must(['systemctl', 'restart', unit('dev')]);
    await eventually('back on its own state', 20_000, async () => (await api.dev.status().catch(() => null))?.status === 200);
  });

  it('systemctl stop during a deploy waits for it to finish; after a restart the status tells the truth', async () => {
    assert.equal((await api.dev.deploy(image('stubborn'))).status, 200);
    const pending = api.dev.deploy(image('v1'));
    await eventually(
      'the old container is being stopped',
      20_000,
      async () => (await api.dev.status()).body['phase'] === 'stopping',
    );
    const stopped = await machine.exec(['systemctl', 'stop', unit('dev')], 60_000);
    assert.equal(stopped.code, 0, stopped.stderr);
    const answer = await pending;
    assert.equal(answer.status, 200, answer.text);
    assert.equal(await active('dev'), 'inactive');
    assert.equal((await engine.inspect(runtime('dev')))?.Config.Labels['io.dreichor.image'], image('v1'), 'the deploy finished');
    assert.equal((await engine.inspect(runtime('dev')))?.State.Running, true, 'the runtime outlives its agent');

    // The engine changes while the agent is down: the restarted agent reports the engine, not a memory.
    await docker(sandboxInfo(), 'stop', '-t', '1', runtime('dev'));
    await machine.must(['systemctl', 'restart', unit('dev')]);
    await eventually('the agent answers', 20_000, async () => (await api.dev.status().catch(() => null))?.status === 200);
    const status = await api.dev.status();
    assert.equal(status.body['running'], false);
    assert.equal(status.body['state'], 'exited');
    assert.equal((status.body['last_deploy'] as Record<string, unknown>)['image'], image('v1'));
  });

  it('a bad environment file stops the unit, and the journal names the variable', async () => {
    const file = inRoot('/etc/dreichor/prod/deploy-agent.env');
    const good = readFileSync(file, 'utf8');
    writeFileSync(file, `${good}\nSTOP_TIMEOUT_SECONDS=soon\n`);
    await machine.exec(['systemctl', 'restart', unit('prod')]);
    await eventually(
      'the unit failed',
      20_000,
      async () => (await machine.exec(['systemctl', 'is-failed', unit('prod')])).stdout.trim() === 'failed',
    );
    assert.match(
      await machine.journal(unit('prod')),
      /invalid configuration: STOP_TIMEOUT_SECONDS: must be a whole number of seconds/,
    );
    await sleep(3000);
    assert.equal(
      (await machine.exec(['systemctl', 'is-failed', unit('prod')])).stdout.trim(),
      'failed',
      'not restarted in a loop',
    );
    writeFileSync(file, good);
    await machine.must(['systemctl', 'restart', unit('prod')]);
    await eventually('prod answers again', 20_000, async () => (await api.prod.status().catch(() => null))?.status === 200);
  });

  it('a secret no caller could send stops the unit at start, naming the variable: a trailing # note systemd keeps, a credential with two newlines', async () => {
    const file = inRoot('/etc/dreichor/prod/deploy-agent.env');
    const credential = inRoot('/etc/dreichor/prod/cf-access-client-secret');
    const good = readFileSync(file, 'utf8');
    const cases: [() => void, RegExp][] = [
      [
        () => fillIn('prod', { CF_ACCESS_CLIENT_SECRET_FILE: '', CF_ACCESS_CLIENT_SECRET: `${TOKEN.secret} # rotated in May` }),
        /invalid configuration: CF_ACCESS_CLIENT_SECRET: must be visible ASCII/,
      ],
      [
        () => writeFileSync(credential, `${TOKEN.secret}\n\n`, { mode: 0o600 }),
        /invalid configuration: CF_ACCESS_CLIENT_SECRET_FILE: must hold the secret on one line/,
      ],
    ];
    for (const [breakIt, named] of cases) {
      breakIt();
      await machine.exec(['systemctl', 'restart', unit('prod')]);
      await eventually(
        'the unit failed',
        20_000,
        async () => (await machine.exec(['systemctl', 'is-failed', unit('prod')])).stdout.trim() === 'failed',
      );
      const journal = await machine.journal(unit('prod'));
      assert.match(journal, named);
      assert.ok(!journal.includes(TOKEN.secret), 'the journal never holds the secret');
      writeFileSync(file, good);
      writeFileSync(credential, `${TOKEN.secret}\n`, { mode: 0o600 });
    }
    await machine.must(['systemctl', 'restart', unit('prod')]);
    await eventually('prod answers again', 20_000, async () => (await api.prod.status().catch(() => null))?.status === 200);
  });

  it("the cloudflared units run as printed, each as its own user, and neither can read the other's tunnel credentials (a stand-in for the binary)", async () => {
    // As README step 4 has it: the credentials file root's alone, the config readable, the unit as shipped.
    mkdirSync(inRoot('/etc/cloudflared'), { recursive: true, mode: 0o755 });
    for (const env of ['dev', 'prod'] as const) {
      writeFileSync(inRoot(`/etc/cloudflared/dreichor-${env}.yml`), readFileSync(`cloudflared/${env}.yml`, 'utf8'), {
        mode: 0o644,
      });
      writeFileSync(
        inRoot(`/etc/cloudflared/dreichor-deploy-${env}.json`),
        `{"AccountTag":"test","TunnelSecret":"${env}-tunnel-secret","TunnelID":"test"}\n`,
        { mode: 0o600 },
      );
    }
    // cloudflared is not packaged for Debian: a stand-in that reads what cloudflared reads, tries to
    // read the other environment's credentials, then reports ready the way Type=notify expects.
    writeFileSync(
      inRoot('/usr/bin/cloudflared'),
      [
        '#!/bin/sh',
        'config=$3',
        'test -r "$config" || { echo "cannot read $config" >&2; exit 3; }',
        'creds=$(sed -n "s/^credentials-file: *//p" "$config")',
        'cat "$creds" >/dev/null || { echo "cannot read $creds" >&2; exit 4; }',
        'case "$config" in *dev*) other=prod ;; *) other=dev ;; esac',
        'for f in /etc/cloudflared/dreichor-deploy-$other.json /run/credentials/cloudflared-dreichor@$other.service/tunnel.json; do',
        '  if cat "$f" >/dev/null 2>&1; then echo "stand-in: READ $f"; else echo "stand-in: cannot read $f"; fi',
        'done',
        // The dynamic user has no name for NSS in this minimal machine (no libnss-systemd): its uid.
        'echo "stand-in: $* as uid $(id -u)"',
        'systemd-notify --ready',
        'exec sleep infinity',
        '',
      ].join('\n'),
    );
    chmodSync(inRoot('/usr/bin/cloudflared'), 0o755);
    await machine.must(['install', '-m', '0644', `${CHECKOUT}/systemd/cloudflared-dreichor@.service`, '/etc/systemd/system/']);
    for (const env of ['dev', 'prod'] as const) {
      // The stand-in is a shell: its readiness comes from a child, which only NotifyAccess=all accepts.
      mkdirSync(inRoot(`/etc/systemd/system/cloudflared-dreichor@${env}.service.d`), { recursive: true });
      writeFileSync(
        inRoot(`/etc/systemd/system/cloudflared-dreichor@${env}.service.d/stand-in.conf`),
        '[Service]\nNotifyAccess=all\n',
      );
      assert.equal(
        (await machine.exec(['systemd-analyze', 'verify', '--man=no', `cloudflared-dreichor@${env}.service`])).stderr.trim(),
        '',
      );
    }
    await machine.must(['systemctl', 'daemon-reload']);
    for (const env of ['dev', 'prod'] as const) {
      const started = await machine.exec(['systemctl', 'start', `cloudflared-dreichor@${env}`], 60_000);
      assert.equal(started.code, 0, `${started.stderr}\n${await machine.journal(`cloudflared-dreichor@${env}`)}`);
    }
    const uids: string[] = [];
    for (const env of ['dev', 'prod'] as const) {
      const other = env === 'dev' ? 'prod' : 'dev';
      const journal = await machine.journal(`cloudflared-dreichor@${env}`);
      const ran = new RegExp(
        `stand-in: --no-autoupdate --config /etc/cloudflared/dreichor-${env}.yml tunnel run as uid (\\d+)$`,
        'm',
      );
      const uid = ran.exec(journal)?.[1];
      assert.ok(uid !== undefined && uid !== '0', journal);
      uids.push(uid);
      assert.equal(
        (await machine.must(['systemctl', 'show', '-p', 'User', '--value', `cloudflared-dreichor@${env}`])).trim(),
        `cloudflared-${env}`,
      );
      assert.doesNotMatch(journal, /stand-in: READ/, `the ${env} tunnel read ${other}'s credentials`);
      assert.match(journal, new RegExp(`cannot read /etc/cloudflared/dreichor-deploy-${other}.json`));
      assert.match(journal, new RegExp(`cannot read /run/credentials/cloudflared-dreichor@${other}.service/tunnel.json`));
    }
    assert.notEqual(uids[0], uids[1], 'dev and prod run as different users');
    for (const env of ['dev', 'prod'] as const) await machine.must(['systemctl', 'stop', `cloudflared-dreichor@${env}`]);
  });
});
