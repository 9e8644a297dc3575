import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { RELEASE_REPOSITORY, verifyReleaseCommand } from '../../../src/supply-chain/release.js';
import {
  type GitHubClaims,
  provenanceStatement,
  releaseClaims as releaseClaimsOf,
  SigstoreMock,
} from '../../support/sigstore-mock.js';

// A release of the agent, attested by the test Sigstore instance as release.yml of this repository
// would be, and the ways it must be refused: each names the check that failed.
describe('agent.js verify-release', () => {
  let sigstore: SigstoreMock;
  const dir = mkdtempSync(join(tmpdir(), 'dreichor-release-'));
  const root = join(dir, 'trusted_root.jsonl');
  const file = join(dir, 'dreichor-deploy-agent-1.2.3.js');
  const release = Buffer.from('// the agent, as release.yml built it\n');
  const digest = `sha256:${createHash('sha256').update(release).digest('hex')}`;
  const releaseClaims = (overrides: Partial<GitHubClaims> = {}) => releaseClaimsOf(RELEASE_REPOSITORY, overrides);
  const bundleFile = async (name: string, claims = releaseClaims(), instance: 'public-good' | 'github' = 'public-good') => {
    const path = join(dir, name);
    writeFileSync(path, JSON.stringify(await sigstore.attest(provenanceStatement(digest), claims, instance)));
    return path;
  };

  before(async () => {
    sigstore = await SigstoreMock.start();
    writeFileSync(root, sigstore.trustedRootLines());
    writeFileSync(file, release);
  });
  after(async () => {
    await sigstore.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('verifies a release signed as release.yml of this repository from a tag, with the built agent', async () => {
    const bundle = await bundleFile('good.sigstore.json');
    const r = spawnSync(process.execPath, ['dist/agent.js', 'verify-release', file, bundle, '--trusted-root', root], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stdout,
      new RegExp(
        `verified: ${digest}, built by https://github.com/${RELEASE_REPOSITORY}/\\.github/workflows/release\\.yml@refs/tags/v1\\.2\\.3`,
      ),
    );
    // GitHub's own instance (a private repository) too, and the JSON lines of `gh attestation download`.
    const github = await bundleFile('github.sigstore.json', releaseClaims(), 'github');
    const lines = join(dir, 'downloaded.jsonl');
    writeFileSync(lines, `${readFileSync(join(dir, 'good.sigstore.json'), 'utf8')}\n${readFileSync(github, 'utf8')}\n`);
    assert.equal(verifyReleaseCommand([file, github, '--trusted-root', root]).code, 0);
    assert.equal(verifyReleaseCommand([file, lines, '--trusted-root', root]).code, 0);
  });

  const refused = (bundle: string, path = file) => verifyReleaseCommand([path, bundle, '--trusted-root', root]);

  it('refuses a modified file: subject digest', async () => {
    const bundle = await bundleFile('good2.sigstore.json');
    const modified = join(dir, 'modified.js');
    writeFileSync(modified, Buffer.concat([release, Buffer.from('require("child_process").exec("curl evil")\n')]));
    const r = refused(bundle, modified);
    assert.equal(r.code, 1);
    assert.match(r.text, /refused, check failed: subject digest: /);
  });

  it('refuses another workflow of this repository: workflow', async () => {
    const claims = releaseClaims({ job_workflow_ref: `${RELEASE_REPOSITORY}/.github/workflows/build.yml@refs/tags/v1.2.3` });
    const r = refused(await bundleFile('other-workflow.sigstore.json', claims));
    assert.equal(r.code, 1);
    assert.match(
      r.text,
      /check failed: workflow: signed by workflow "https:\/\/github\.com\/.*\/build\.yml@refs\/tags\/v1\.2\.3", not .*release\.yml/,
    );
  });

  it('refuses another repository (a fork release.yml): repository', async () => {
    const claims = releaseClaims({
      repository: 'mallory/dreichor-deploy-agent',
      job_workflow_ref: 'mallory/dreichor-deploy-agent/.github/workflows/release.yml@refs/tags/v1.2.3',
    });
    const r = refused(await bundleFile('fork.sigstore.json', claims));
    assert.equal(r.code, 1);
    assert.match(r.text, /check failed: repository: .*mallory\/dreichor-deploy-agent.*another repository/);
  });

  it('refuses a build from a branch: ref; a forged signature: signature', async () => {
    const claims = releaseClaims({
      job_workflow_ref: `${RELEASE_REPOSITORY}/.github/workflows/release.yml@refs/heads/main`,
      ref: 'refs/heads/main',
    });
    const branch = refused(await bundleFile('branch.sigstore.json', claims));
    assert.match(branch.text, /check failed: ref: .*refs\/heads\/main.*release tag/);
    const good = JSON.parse(readFileSync(await bundleFile('good3.sigstore.json'), 'utf8')) as {
      dsseEnvelope: { signatures: { sig: string }[] };
    };
    const sig = good.dsseEnvelope.signatures[0];
    if (sig !== undefined) sig.sig = Buffer.from('x'.repeat(70)).toString('base64');
    const forged = join(dir, 'forged.sigstore.json');
    writeFileSync(forged, JSON.stringify(good));
    const r = refused(forged);
    assert.equal(r.code, 1);
    assert.match(r.text, /check failed: signature: /);
  });

  it('cannot check without a trusted root or with a bad one: exit 2', () => {
    assert.equal(verifyReleaseCommand([file, file]).code, 2);
    const r = verifyReleaseCommand([file, file, '--trusted-root', file]);
    assert.equal(r.code, 2);
    assert.match(r.text, /--trusted-root/);
  });
});
