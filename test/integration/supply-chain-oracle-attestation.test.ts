import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { attachBundle } from '../support/cosign.js';
import { engine, image, startTestAgent, type TestAgent } from '../support/harness.js';
import { publishImage, REPOSITORY_PATH, sandboxInfo } from '../support/sandbox.js';
import { type GitHubClaims, githubClaims, type Instance, provenanceStatement, SigstoreMock } from '../support/sigstore-mock.js';
import { type Verdict, Verifiers, verifiersBin } from '../support/verifiers.js';

/**
 * IMAGE_VERIFICATION=github-attestation held against cosign 3.1.1 (`cosign verify-attestation`,
 * which finds the bundle in the registry as the agent does) and sigstore-go 1.3.0
 * (`sigstore-go-verification` on the same bundle), offline, with the test Sigstore instance's trusted
 * root. Every signed fixture and crafted case of the agent's attestation tests is deployed for real and
 * judged by all three under the same policy, as far as each tool can state it: sigstore-go's command
 * checks issuer and SAN only (a case about the repository, ref or predicate type is outside its
 * policy and not compared). Where the agent deliberately differs, DIFFERENT names the case and why
 * (docs/SUPPLY-CHAIN.md), and the test checks that the tool's verdict is indeed the other one.
 */
const found = verifiersBin();
const skip = 'skip' in found ? found.skip : false;
if (skip !== false) console.log(`# SKIPPED the attestation oracle tests: ${skip}`);

const dir = mkdtempSync(join(tmpdir(), 'dreichor-oracle-attestation-'));
const ISSUER = 'https://token.actions.githubusercontent.com';
// GitHub's owner and repository names are case-insensitive; the workflow's path and the ref are not.
const SAN = String.raw`^https://github\.com/(?i:ceerkle/dreichor-trading)/\.github/workflows/build\.yml@`;
const V01 = 'application/vnd.dev.sigstore.bundle+json;version=0.1';
const V02 = 'application/vnd.dev.sigstore.bundle+json;version=0.2';

type Tool = 'cosign' | 'sigstore-go';

interface Case {
  readonly name: string;
  readonly claims?: Partial<GitHubClaims>;
  readonly instance?: Instance;
  readonly predicateType?: string;
  /** The statement names another image. */
  readonly otherSubject?: boolean;
  readonly legacyIssuer?: string;
  /** Changes the signed bundle before it is stored; returns the artifact type to store it under. */
  readonly craft?: (bundle: Record<string, unknown>, digest: string) => string | undefined;
  readonly agent: 200 | 422;
  /** Tools whose policy cannot state what this case is about. */
  readonly outside?: readonly Tool[];
}

/** Where the agent deliberately differs from a tool, by case name and tool, and why. */
const DIFFERENT: Readonly<Record<string, Partial<Record<Tool, string>>>> = {
  'a certificate whose .1 and .8 name different issuers': {
    cosign: 'stricter: cosign 3.1.1 reads .8 and accepts; the agent refuses a certificate naming two issuers',
    'sigstore-go': 'stricter: sigstore-go 1.3.0 reads .8 and accepts; the agent refuses a certificate naming two issuers',
  },
  'a v0.2 bundle stored under its own artifact type': {
    cosign: 'cosign 3 looks for referrers of the v0.3 type only; the agent also finds v0.2 ones, as `gh attestation verify` does',
  },
  'owner and repository in another case': {
    cosign: '--certificate-github-workflow-repository is compared exactly; GitHub names are case-insensitive',
  },
};

const cases: readonly Case[] = [
  { name: 'an attestation by the signer workflow (public-good instance)', agent: 200 },
  { name: "an attestation by the signer workflow (GitHub's instance: a signed timestamp)", instance: 'github', agent: 200 },
  {
    name: 'another workflow of the repository',
    claims: { job_workflow_ref: 'ceerkle/dreichor-trading/.github/workflows/pr.yml@refs/pull/7/merge' },
    agent: 422,
  },
  {
    name: 'another repository',
    claims: { repository: 'mallory/dreichor-trading' },
    agent: 422,
    outside: ['sigstore-go'],
  },
  { name: 'a ref the policy does not allow', claims: { ref: 'refs/heads/experiment' }, agent: 422, outside: ['sigstore-go'] },
  {
    name: 'another predicate type',
    predicateType: 'https://spdx.dev/Document/v2.3',
    agent: 422,
    outside: ['sigstore-go'],
  },
  { name: 'an attestation of another image', otherSubject: true, agent: 422 },
  { name: 'another issuer', claims: { iss: 'https://accounts.example.com' }, agent: 422 },
  {
    name: 'a statement changed after signing',
    craft: (bundle, digest) => {
      (bundle['dsseEnvelope'] as { payload: string }).payload = Buffer.from(JSON.stringify(provenanceStatement(digest))).toString(
        'base64',
      );
      return undefined;
    },
    otherSubject: true,
    agent: 422,
  },
  {
    name: 'a v0.1 bundle (a log promise, no inclusion proof) stored as a v0.3 artifact',
    craft: (bundle) => {
      bundle['mediaType'] = V01;
      const material = bundle['verificationMaterial'] as { tlogEntries: Record<string, unknown>[] };
      for (const entry of material.tlogEntries) delete entry['inclusionProof'];
      return undefined;
    },
    agent: 422,
  },
  {
    name: 'a v0.2 bundle stored under its own artifact type',
    craft: (bundle) => {
      bundle['mediaType'] = V02;
      return V02;
    },
    agent: 200,
  },
  { name: 'a certificate whose .1 and .8 name different issuers', legacyIssuer: 'https://accounts.example.com', agent: 422 },
  {
    name: 'owner and repository in another case',
    claims: {
      repository: 'CeerKle/Dreichor-Trading',
      job_workflow_ref: 'CeerKle/Dreichor-Trading/.github/workflows/build.yml@refs/heads/main',
    },
    agent: 200,
  },
];

describe('oracle: github-attestation, the agent against cosign 3 and sigstore-go', { skip }, () => {
  let v: Verifiers;
  let mock: SigstoreMock;
  let t: TestAgent;
  const roots = {} as Record<Instance, string>;
  before(async () => {
    if ('skip' in found) return;
    v = await Verifiers.start(found.bin, join(dir, 'verifiers'));
    mock = await SigstoreMock.start();
    for (const instance of ['public-good', 'github'] as const) {
      roots[instance] = join(dir, `${instance}.json`);
      writeFileSync(roots[instance], JSON.stringify(mock.trustedRoot(instance)));
    }
    const rootLines = join(dir, 'trusted_root.jsonl');
    writeFileSync(rootLines, mock.trustedRootLines());
    t = await startTestAgent({
      IMAGE_VERIFICATION: 'github-attestation',
      SIGSTORE_TRUSTED_ROOT_FILE: rootLines,
      ATTESTATION_REPOSITORY: 'ceerkle/dreichor-trading',
      ATTESTATION_SIGNER_WORKFLOW: 'ceerkle/dreichor-trading/.github/workflows/build.yml',
      ATTESTATION_SOURCE_REFS: 'refs/heads/main',
    });
  });
  after(async () => {
    await t?.cleanup();
    await mock?.close();
  });

  /** `cosign verify-attestation` with the agent's policy, against the image in the registry. */
  const cosign = (ref: string, instance: Instance): Promise<Verdict> =>
    v.cosign(
      'verify-attestation',
      '--trusted-root',
      roots[instance],
      ...(instance === 'github' ? ['--use-signed-timestamps', '--insecure-ignore-tlog', '--insecure-ignore-sct'] : []),
      '--certificate-oidc-issuer',
      ISSUER,
      '--certificate-identity-regexp',
      SAN,
      '--certificate-github-workflow-repository',
      'ceerkle/dreichor-trading',
      '--certificate-github-workflow-ref',
      'refs/heads/main',
      '--type',
      'https://slsa.dev/provenance/v1',
      '--allow-http-registry',
      '--allow-insecure-registry',
      ref,
    );

  /** `sigstore-go-verification` with the agent's policy as far as it states one: issuer, SAN, v0.2+. */
  const sigstoreGo = (bundleFile: string, digest: string, instance: Instance): Promise<Verdict> =>
    v.sigstoreGo(
      '-trustedrootJSONpath',
      roots[instance],
      ...(instance === 'github' ? ['-requireTlog=false', '-requireCTlog=false'] : []),
      '-expectedIssuer',
      ISSUER,
      '-expectedSANRegex',
      SAN,
      '-minBundleVersion',
      '0.2',
      '-artifact-digest',
      digest.slice('sha256:'.length),
      bundleFile,
    );

  for (const c of cases) {
    it(`${c.name}: the agent answers ${c.agent}, as the verifiers judge it`, async () => {
      const tag = `oracle-att-${process.pid}-${cases.indexOf(c)}`;
      const digest = await publishImage(sandboxInfo(), tag);
      const other = c.otherSubject === true ? await publishImage(sandboxInfo(), `${tag}-other`) : digest;
      const instance = c.instance ?? 'public-good';
      const statement = provenanceStatement(other, c.predicateType);
      const options = c.legacyIssuer === undefined ? {} : { legacyIssuer: c.legacyIssuer };
      const bundle = (await mock.attest(statement, githubClaims(c.claims), instance, options)) as Record<string, unknown>;
      const artifactType = c.craft?.(bundle, digest);
      await attachBundle(sandboxInfo().registry, REPOSITORY_PATH, digest, bundle, null, artifactType);
      const bundleFile = join(dir, `${tag}.json`);
      writeFileSync(bundleFile, JSON.stringify(bundle));

      const before = await engine.inspect(t.config.containerName);
      const r = await t.api.deploy(image(tag));
      assert.equal(r.status, c.agent, r.text);
      if (r.status === 422) assert.equal((await engine.inspect(t.config.containerName))?.Id, before?.Id, 'untouched');

      const verdicts: Record<Tool, Verdict> = {
        cosign: await cosign(`${sandboxInfo().registry}/${REPOSITORY_PATH}@${digest}`, instance),
        'sigstore-go': await sigstoreGo(bundleFile, digest, instance),
      };
      for (const tool of ['cosign', 'sigstore-go'] as const) {
        if (c.outside?.includes(tool) === true) continue;
        const verdict = verdicts[tool];
        const why = DIFFERENT[c.name]?.[tool];
        const agrees = (r.status === 200) === verdict.ok;
        assert.ok(
          why === undefined ? agrees : !agrees,
          `${tool} ${verdict.ok ? 'accepts' : 'refuses'}, the agent answers ${r.status}${why === undefined ? '' : ` (named as a difference: ${why})`}: ${verdict.output.slice(0, 600)}`,
        );
      }
    });
  }
});
