import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { RELEASE_REPOSITORY } from '../../src/supply-chain/release.js';
import { Machine } from '../support/machine.js';
import { copyAsClone } from '../support/readme.js';
import { githubClaims, provenanceStatement, SigstoreMock } from '../support/sigstore-mock.js';

/**
 * Installing a release of the agent without npm, for real: scripts/install.sh as root in a booted
 * Debian (systemd as PID 1, Node.js 24), from a checkout as a fresh clone has it (no node_modules,
 * no dist), with the built agent signed by the test Sigstore instance as release.yml of this
 * repository would sign it. A release that does not verify is refused with the failed check named,
 * and the machine is left exactly as it was: no user, no file, no unit. Also issue 25's operator
 * checks: a source tree others can write is refused; an environment file that drifted is repaired.
 */
const CHECKOUT = '/srv/checkout';
const FILES = '/srv/release';
const VERSION = '1.2.3';
const NAME = `dreichor-deploy-agent-${VERSION}.js`;
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('install.sh with a release file and its attestation', () => {
  let machine: Machine;
  let sigstore: SigstoreMock;
  let files: string;
  let checkout: string;
  const release = readFileSync('dist/agent.js');
  const inRoot = (path: string) => join(machine.root, path);

  const claims = (overrides: Parameters<typeof githubClaims>[0] = {}) =>
    githubClaims({
      repository: RELEASE_REPOSITORY,
      job_workflow_ref: `${RELEASE_REPOSITORY}/.github/workflows/release.yml@refs/tags/v${VERSION}`,
      ref: `refs/tags/v${VERSION}`,
      ...overrides,
    });
  const sign = async (name: string, file: Buffer, c = claims()) => {
    const statement = provenanceStatement(`sha256:${sha256(file)}`);
    writeFileSync(join(files, name), JSON.stringify(await sigstore.attest(statement, c)));
  };
  const install = (file: string, bundle: string, ...extra: string[]) =>
    machine.shell(
      `cd ${CHECKOUT} && scripts/install.sh dev --release ${FILES}/${file} --bundle ${FILES}/${bundle} --trusted-root ${FILES}/trusted_root.jsonl ${extra.join(' ')}`,
    );
  /** What an install changes: users, groups, units, and everything under the agent's folders. */
  const footprint = () =>
    machine.shell(
      'getent passwd; getent group; ls -la /etc/systemd/system; find /etc/dreichor /opt/dreichor /var/lib/dreichor -printf "%p %m %u %s\\n" 2>/dev/null; true',
    );

  before(async () => {
    sigstore = await SigstoreMock.start();
    const dir = mkdtempSync(join(tmpdir(), 'dreichor-install-'));
    files = join(dir, 'release');
    mkdirSync(files, { mode: 0o755 });
    writeFileSync(join(files, 'trusted_root.jsonl'), sigstore.trustedRootLines());
    writeFileSync(join(files, NAME), release);
    await sign(`${NAME}.sigstore.json`, release);
    // What a tampered release might add: code that runs when the file is loaded.
    const payload =
      'try{require("fs").writeFileSync("/root/owned","x")}catch{};try{require("fs").writeFileSync("/tmp/ran-"+process.getuid(),"x")}catch{}';
    const modified = Buffer.concat([release, Buffer.from(`\n;${payload}\n`)]);
    writeFileSync(join(files, 'modified.js'), modified);
    await sign(
      'build-yml.sigstore.json',
      release,
      claims({ job_workflow_ref: `${RELEASE_REPOSITORY}/.github/workflows/build.yml@refs/tags/v${VERSION}` }),
    );
    await sign(
      'fork.sigstore.json',
      release,
      claims({
        repository: 'mallory/dreichor-deploy-agent',
        job_workflow_ref: `mallory/dreichor-deploy-agent/.github/workflows/release.yml@refs/tags/v${VERSION}`,
      }),
    );
    checkout = join(dir, 'checkout');
    copyAsClone(checkout);
    machine = await Machine.boot(
      join(dir, 'machine'),
      [
        { host: checkout, inside: CHECKOUT },
        { host: files, inside: FILES, readOnly: true },
      ],
      async (root) => {
        const group = readFileSync(join(root, 'etc/group'), 'utf8');
        writeFileSync(join(root, 'etc/group'), `${group}docker:x:2375:\n`);
      },
    );
  });

  after(async () => {
    await machine?.destroy();
    await sigstore?.close();
  });

  it('refuses a modified file, another workflow and another repository, naming the check, and changes nothing', async () => {
    const before = await footprint();
    for (const [file, bundle, check] of [
      ['modified.js', `${NAME}.sigstore.json`, /check failed: subject digest/],
      [NAME, 'build-yml.sigstore.json', /check failed: workflow: signed by workflow ".*\/build\.yml@/],
      [NAME, 'fork.sigstore.json', /check failed: repository: .*mallory\/dreichor-deploy-agent/],
    ] as const) {
      const r = await install(file, bundle);
      assert.equal(r.code, 1, `${file} with ${bundle} was not refused:\n${r.stdout}\n${r.stderr}`);
      assert.match(r.stderr, check);
      assert.match(r.stderr, /did not verify .* Nothing was installed or changed\./);
      assert.deepEqual(await footprint(), before, `${file} with ${bundle} changed the machine`);
    }
    // On a first install the release checks itself (there is no agent yet): its code then runs as
    // nobody, never as root, so what a tampered file adds has no privilege before it is refused.
    assert.equal((await machine.exec(['test', '-e', '/root/owned'])).code, 1, 'the unverified file ran as root');
    assert.equal((await machine.exec(['test', '-e', '/tmp/ran-65534'])).code, 0, 'the self-check did not run as nobody');
    await machine.must(['rm', '/tmp/ran-65534']);
  });

  it('installs a release that verifies, with no npm on the path, and only that file', async () => {
    const r = await machine.shell(
      `cd ${CHECKOUT} && PATH=/usr/sbin:/usr/bin:/sbin:/bin scripts/install.sh dev --release ${FILES}/${NAME} --bundle ${FILES}/${NAME}.sigstore.json --trusted-root ${FILES}/trusted_root.jsonl`,
    );
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, new RegExp(`verified: sha256:${sha256(release)}, built by https://github.com/${RELEASE_REPOSITORY}/`));
    assert.match(r.stdout, /verified by the release's own code \(first install/);
    assert.equal(sha256(readFileSync(inRoot('/opt/dreichor/dev/deploy-agent/agent.js'))), sha256(release));
    assert.match(
      await machine.must(['/usr/bin/node', '/opt/dreichor/dev/deploy-agent/agent.js', '--version']),
      /^dreichor-deploy-agent /,
    );
    assert.match(r.stdout, /Left to fill in before the agent can start:/);
  });

  it('verifies an upgrade with the installed agent, and refuses a bad one without touching what is installed', async () => {
    const before = await footprint();
    const r = await install('modified.js', `${NAME}.sigstore.json`);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /check failed: subject digest[\s\S]*verified by the installed agent/);
    assert.deepEqual(await footprint(), before);
    // With an agent installed, the candidate's code never runs at all before it has verified.
    assert.equal((await machine.exec(['test', '-e', '/tmp/ran-65534'])).code, 1, 'the unverified file ran');
    const only = await install(NAME, `${NAME}.sigstore.json`, '--verify-only');
    assert.equal(only.code, 0, only.stderr);
    assert.match(only.stdout, /verified by the installed agent/);
    assert.doesNotMatch(only.stdout, /Left to fill in/);
  });

  it('repairs, and reports, an environment file whose mode or owner drifted', async () => {
    const envFile = inRoot('/etc/dreichor/dev/deploy-agent.env');
    chmodSync(envFile, 0o644);
    chownSync(envFile, 65534, 0);
    const r = await install(NAME, `${NAME}.sigstore.json`);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /repaired \/etc\/dreichor\/dev\/deploy-agent\.env: mode 644 -> 600/);
    assert.match(r.stdout, /repaired \/etc\/dreichor\/dev\/deploy-agent\.env: owner nobody:root -> root:root/);
    const s = statSync(envFile);
    assert.equal(s.mode & 0o777, 0o600);
    assert.equal(s.uid, 0);
    // Nothing to repair: nothing said.
    const again = await install(NAME, `${NAME}.sigstore.json`);
    assert.doesNotMatch(again.stdout, /repaired/);
  });

  it('refuses a source tree that others can write, or that root does not own, and changes nothing', async () => {
    const unit = join(checkout, 'systemd/dreichor-deploy-agent@.service');
    const original = readFileSync(unit);
    writeFileSync(unit, `${original.toString()}\n# changed by someone else\n`);
    try {
      const before = await footprint();
      chmodSync(unit, 0o666);
      const writable = await install(NAME, `${NAME}.sigstore.json`);
      assert.equal(writable.code, 1);
      assert.match(
        writable.stderr,
        /refused: the source tree is not root's alone: .*dreichor-deploy-agent@\.service is writable by others/,
      );
      chmodSync(unit, 0o644);
      chownSync(join(checkout, 'systemd'), 65534, 65534);
      const owned = await install(NAME, `${NAME}.sigstore.json`);
      assert.equal(owned.code, 1);
      assert.match(owned.stderr, /\/srv\/checkout\/systemd is owned by uid 65534, not root/);
      assert.deepEqual(await footprint(), before);
      assert.doesNotMatch(
        readFileSync(inRoot('/etc/systemd/system/dreichor-deploy-agent@.service'), 'utf8'),
        /changed by someone else/,
      );
    } finally {
      chownSync(join(checkout, 'systemd'), 0, 0);
      writeFileSync(unit, original);
    }
  });
});
