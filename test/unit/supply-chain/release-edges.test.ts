import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { RELEASE_REPOSITORY, releasePolicy, verifyRelease, verifyReleaseCommand } from '../../../src/supply-chain/release.js';
import { type GitHubClaims, provenanceStatement, releaseClaims, SigstoreMock } from '../../support/sigstore-mock.js';
import { tempDir } from '../../support/temp-dir.js';

/**
 * verify-release's own logic (release.ts) that release.test.ts does not reach: how each refusal is
 * named and worded, which of several bundles is reported, the bundle file's forms and bounds, the
 * command's arguments and files, and the exact line it prints. Real signatures of the mock Sigstore.
 */
const dir = tempDir('release-edges');
const root = join(dir, 'trusted_root.jsonl');
const file = join(dir, 'agent-1.2.3.js');
const release = Buffer.from('// the agent, edges\n');
const digest = `sha256:${createHash('sha256').update(release).digest('hex')}`;

let sigstore: SigstoreMock;
/** A release attestation of `of` (the file's digest by default) as JSON. */
const attest = async (claims: Partial<GitHubClaims> = {}, of = digest, predicate?: string): Promise<string> =>
  JSON.stringify(await sigstore.attest(provenanceStatement(of, predicate), releaseClaims(RELEASE_REPOSITORY, claims)));
let good: string;

before(async () => {
  sigstore = await SigstoreMock.start();
  writeFileSync(root, sigstore.trustedRootLines());
  writeFileSync(file, release);
  good = await attest();
});
after(() => sigstore.close());

const policy = () => releasePolicy(root, RELEASE_REPOSITORY);
const refusal = (verdict: ReturnType<typeof verifyRelease>) => {
  assert.equal(verdict.ok, false, JSON.stringify(verdict));
  const { check, problem } = verdict as { check: string; problem: string };
  return { check, problem };
};

describe('verify-release: naming the check that failed', () => {
  it("words each refusal in the command's own terms, not the agent's variables", async () => {
    const cases: [string, { check: string; problem: string }][] = [
      [
        await attest({}, digest, 'https://spdx.dev/Document/v2.3'),
        { check: 'predicate type', problem: 'predicate type "https://spdx.dev/Document/v2.3", not SLSA provenance v1' },
      ],
      [
        await attest({ iss: 'https://accounts.example.com' }),
        {
          check: 'issuer',
          problem: `certificate issuer is "https://accounts.example.com", not the configured GitHub Actions' OIDC issuer`,
        },
      ],
      [
        await attest({ ref: 'refs/heads/main' }),
        {
          check: 'ref',
          problem: 'built from ref "refs/heads/main", which a release tag (refs/tags/v*) does not allow',
        },
      ],
      [
        await attest({ repository: 'mallory/dreichor-deploy-agent' }),
        {
          check: 'repository',
          problem: `built from repository "https://github.com/mallory/dreichor-deploy-agent", not ${RELEASE_REPOSITORY}`,
        },
      ],
      [
        await attest({}, `sha256:${'2'.repeat(64)}`),
        {
          check: 'subject digest',
          problem: 'it attests another file: this file was changed after it was built, or is another file',
        },
      ],
      ['{"not":"a bundle"}', { check: 'bundle', problem: 'not a valid Sigstore bundle' }],
    ];
    for (const [bundle, expected] of cases) assert.deepEqual(refusal(verifyRelease(release, bundle, policy())), expected);
  });

  it('names the workflow (not the repository) when the signer is this repository in other case', async () => {
    const other = await attest({
      job_workflow_ref: 'Ceerkle/Dreichor-Deploy-Agent/.github/workflows/build.yml@refs/tags/v1.2.3',
    });
    assert.deepEqual(refusal(verifyRelease(release, other, policy())), {
      check: 'workflow',
      problem: `signed by workflow "https://github.com/Ceerkle/Dreichor-Deploy-Agent/.github/workflows/build.yml@refs/tags/v1.2.3", not ${RELEASE_REPOSITORY}/.github/workflows/release.yml`,
    });
  });

  it('names the signature check in words of the trusted root', () => {
    const forged = JSON.parse(good) as { dsseEnvelope: { payload: string } };
    forged.dsseEnvelope.payload = Buffer.from('{}').toString('base64');
    const { check, problem } = refusal(verifyRelease(release, JSON.stringify(forged), policy()));
    assert.equal(check, 'signature');
    assert.match(problem, /^its signature does not verify against the trusted root \(/);
  });
});

describe('verify-release: the bundle file', () => {
  it('takes one bundle, or JSON lines (blank lines skipped), the first good one winning', () => {
    assert.equal(verifyRelease(release, `\n  ${good}  \n`, policy()).ok, true);
    assert.equal(verifyRelease(release, `{"not":"a bundle"}\n\n   \n${good}\n`, policy()).ok, true);
  });

  it('reports the refusal that got furthest, the first of equals', async () => {
    const workflow = await attest({ job_workflow_ref: `${RELEASE_REPOSITORY}/.github/workflows/build.yml@refs/tags/v1.2.3` });
    const ref = await attest({ ref: 'refs/heads/main' });
    // rank 0 (no bundle), then rank 4 (workflow), then rank 4 (ref): the workflow is reported.
    assert.equal(refusal(verifyRelease(release, `{"a":1}\n${workflow}\n${ref}`, policy())).check, 'workflow');
    assert.equal(refusal(verifyRelease(release, `${ref}\n${workflow}`, policy())).check, 'ref');
  });

  it('judges sixteen lines at most, and says so when there is nothing to judge', () => {
    const junk = Array.from({ length: 16 }, () => '{"a":1}').join('\n');
    assert.equal(verifyRelease(release, `${junk}\n${good}`, policy()).ok, false, 'the seventeenth line is not read');
    assert.equal(verifyRelease(release, `${junk.split('\n').slice(1).join('\n')}\n${good}`, policy()).ok, true);
    // A line of spaces is blank: not one of the sixteen.
    assert.equal(verifyRelease(release, `${junk.split('\n').slice(1).join('\n')}\n   \n${good}`, policy()).ok, true);
    assert.deepEqual(refusal(verifyRelease(release, ' \n\n ', policy())), {
      check: 'bundle',
      problem: 'the bundle file holds no attestation',
    });
  });
});

describe('verify-release: the command', () => {
  const bundleFile = join(dir, 'good.sigstore.json');
  before(() => writeFileSync(bundleFile, good));

  it('prints what was verified, in one line, and exits 0', () => {
    assert.deepEqual(verifyReleaseCommand([file, bundleFile, '--trusted-root', root]), {
      code: 0,
      text: `${file}: verified: ${digest}, built by https://github.com/${RELEASE_REPOSITORY}/.github/workflows/release.yml@refs/tags/v1.2.3 from https://github.com/${RELEASE_REPOSITORY} at refs/tags/v1.2.3 (commit ${'a'.repeat(40)}), run https://github.com/${RELEASE_REPOSITORY}/actions/runs/4242/attempts/1`,
    });
  });

  it("prints the refusal's check and exits 1; checks another repository's release when asked (ours is then a fork)", () => {
    assert.deepEqual(verifyReleaseCommand([file, bundleFile, '--trusted-root', root, '--repository', 'ceerkle/other-agent']), {
      code: 1,
      text: `${file}: refused, check failed: repository: signed by workflow "https://github.com/${RELEASE_REPOSITORY}/.github/workflows/release.yml@refs/tags/v1.2.3", not ceerkle/other-agent/.github/workflows/release.yml: built in another repository`,
    });
  });

  it('exits 2 with the usage on arguments it cannot read', () => {
    const usage =
      'usage: agent.js verify-release <release file> <bundle> --trusted-root <trusted_root.jsonl> [--repository <owner>/<repo>]';
    for (const [args, why] of [
      [[file], 'a release file and its bundle are required'],
      [[file, bundleFile, 'third', '--trusted-root', root], 'a release file and its bundle are required'],
      [[file, bundleFile], '--trusted-root is required'],
    ] as const) {
      assert.deepEqual(verifyReleaseCommand(args), { code: 2, text: `${why}\n${usage}` }, args.join(' '));
    }
    const unknown = verifyReleaseCommand([file, bundleFile, '--trusted-root', root, '--force']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.text, /--force/);
    assert.ok(unknown.text.endsWith(`\n${usage}`));
  });

  it('exits 2 naming what cannot be read: a file too large, missing, or a bad --repository or --trusted-root', () => {
    const huge = join(dir, 'huge.js');
    writeFileSync(huge, '');
    truncateSync(huge, 64 * 1024 * 1024 + 1); // sparse: nothing is written
    assert.deepEqual(verifyReleaseCommand([huge, bundleFile, '--trusted-root', root]), {
      code: 2,
      text: `cannot check ${huge}: ${huge} is larger than ${64 * 1024 * 1024} bytes`,
    });
    const bigBundle = join(dir, 'big.sigstore.json');
    writeFileSync(bigBundle, '');
    truncateSync(bigBundle, 16 * 1024 * 1024 + 1);
    assert.equal(
      verifyReleaseCommand([file, bigBundle, '--trusted-root', root]).text,
      `cannot check ${file}: ${bigBundle} is larger than ${16 * 1024 * 1024} bytes`,
    );

    const missing = verifyReleaseCommand([join(dir, 'missing.js'), bundleFile, '--trusted-root', root]);
    assert.equal(missing.code, 2);
    assert.match(missing.text, /^cannot check .*missing\.js: ENOENT/);

    const repository = verifyReleaseCommand([file, bundleFile, '--trusted-root', root, '--repository', 'not a repository']);
    assert.equal(repository.code, 2);
    assert.match(repository.text, new RegExp(`^cannot check ${file}: --repository: must be <owner>/<repo>`));
    const trusted = verifyReleaseCommand([file, bundleFile, '--trusted-root', join(dir, 'none.jsonl')]);
    assert.equal(trusted.code, 2);
    assert.match(trusted.text, new RegExp(`^cannot check ${file}: --trusted-root\\b`));
  });
});
