import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { spawnAgent } from '../support/agent-process.js';
import { attachBundle, MEDIA, RegistryWriter } from '../support/cosign.js';
import { engine, image, removeContainersNamed, startTestAgent, type TestAgent, TOKEN, testEnv } from '../support/harness.js';
import { deployOnlyVerified, pushHonestIndex, pushHostileIndexes } from '../support/hostile-index.js';
import { RegistryStandIn } from '../support/registry-standin.js';
import { freePort, publishImage, REPOSITORY_PATH, sandboxInfo } from '../support/sandbox.js';
import { type GitHubClaims, githubClaims, type Instance, provenanceStatement, SigstoreMock } from '../support/sigstore-mock.js';

/**
 * IMAGE_VERIFICATION=github-attestation on the real engine and Debian's docker-registry: images
 * built and pushed for real, attestations signed for real (@sigstore/mock + @sigstore/sign) and
 * stored beside them as actions/attest stores them (@sigstore/oci: the sha256- tag, since this
 * registry has no referrers API, exactly as on GHCR). Every refusal shows the runtime untouched,
 * nothing pulled, nothing recorded, and the refusal audited.
 */
const dir = mkdtempSync(join(tmpdir(), 'dreichor-supply-chain-'));
let mock: SigstoreMock;
let rootFile: string;
let n = 0;

const policy = (extra: Record<string, string | undefined> = {}): Record<string, string | undefined> => ({
  IMAGE_VERIFICATION: 'github-attestation',
  SIGSTORE_TRUSTED_ROOT_FILE: rootFile,
  ATTESTATION_REPOSITORY: 'ceerkle/dreichor-trading',
  ATTESTATION_SIGNER_WORKFLOW: 'ceerkle/dreichor-trading/.github/workflows/build.yml',
  ATTESTATION_SOURCE_REFS: 'refs/heads/main,refs/tags/v*',
  ...extra,
});

interface Published {
  readonly tag: string;
  readonly digest: string;
}

/** Builds and pushes a new image; with `attest`, attaches an attestation made with those claims. */
async function publish(
  attest: {
    claims?: Partial<GitHubClaims>;
    instance?: Instance;
    predicateType?: string;
    subject?: string;
    /** Changes the signed bundle before it is stored (a forgery). */
    forge?: (bundle: { dsseEnvelope: { payload: string } }, digest: string) => void;
    /** How many times it is stored (as distinct referrers). */
    copies?: number;
  } | null = {},
  host = sandboxInfo().registry,
): Promise<Published> {
  n += 1;
  const tag = `sc-${process.pid}-${n}`;
  const digest = await publishImage(sandboxInfo(), tag);
  if (attest !== null) {
    const statement = provenanceStatement(attest.subject ?? digest, attest.predicateType);
    const bundle = await mock.attest(statement, githubClaims(attest.claims), attest.instance ?? 'public-good');
    attest.forge?.(bundle as { dsseEnvelope: { payload: string } }, digest);
    for (let i = 0; i < (attest.copies ?? 1); i++) {
      // Each copy is its own referrer: the annotation makes its manifest differ.
      await attachBundle(host, REPOSITORY_PATH, digest, { ...bundle, copy: i });
    }
  }
  return { tag, digest };
}

/** A forgery: the statement of another image, signed, with this image's statement put in its place. */
const forgeSubject = (bundle: { dsseEnvelope: { payload: string } }, digest: string): void => {
  bundle.dsseEnvelope.payload = Buffer.from(JSON.stringify(provenanceStatement(digest))).toString('base64');
};

const tagsOf = (t: TestAgent): Record<string, unknown> => {
  try {
    return (JSON.parse(readFileSync(join(t.config.stateDir, 'state.json'), 'utf8')) as { tags: Record<string, unknown> }).tags;
  } catch {
    return {};
  }
};

/** Deploys `p` and checks the refusal: its status and reason, and that nothing changed anywhere. */
async function refusedUntouched(t: TestAgent, ref: string, p: Published, status: number, reason: RegExp): Promise<void> {
  const before = await engine.inspect(t.config.containerName);
  const r = await t.api.deploy(ref);
  assert.equal(r.status, status, r.text);
  assert.match(String(r.body['reason']), reason);
  assert.doesNotMatch(String(r.body['reason']), /BEGIN|MII[A-Za-z0-9+/]{20}/, 'no key material or certificate in a reason');
  const after = await engine.inspect(t.config.containerName);
  assert.equal(after?.Id, before?.Id, 'the running container is the same');
  assert.equal(after?.State.StartedAt, before?.State.StartedAt, 'and was not restarted');
  assert.equal(after?.State.Running, before?.State.Running);
  assert.equal(after?.Image, before?.Image, 'and runs the same image');
  assert.equal(await engine.imageId(`${ref.split(':').slice(0, -1).join(':')}@${p.digest}`), null, 'nothing was pulled');
  assert.equal(tagsOf(t)[p.tag], undefined, 'the tag was not recorded');
  const line = t.auditLines().at(-1);
  assert.equal(line?.['outcome'], status < 500 ? 'refused' : 'failed');
  assert.equal(line?.['status'], status);
  assert.equal(line?.['provenance'], undefined);
}

describe('supply chain: GitHub attestations before anything runs', () => {
  let t: TestAgent;
  before(async () => {
    mock = await SigstoreMock.start();
    rootFile = join(dir, 'trusted_root.jsonl');
    writeFileSync(rootFile, mock.trustedRootLines());
    t = await startTestAgent(policy());
  });
  after(async () => {
    await t.cleanup();
    await mock.close();
  });

  it('deploys an attested image; the answer, the audit line and status carry its provenance', async () => {
    const p = await publish();
    const r = await t.api.deploy(image(p.tag));
    assert.equal(r.status, 200, r.text);
    const provenance = r.body['provenance'] as Record<string, unknown>;
    assert.deepEqual(provenance, {
      verified_by: 'github-attestation',
      subject_digest: p.digest,
      repository: 'https://github.com/ceerkle/dreichor-trading',
      commit: 'a'.repeat(40),
      ref: 'refs/heads/main',
      workflow: 'https://github.com/ceerkle/dreichor-trading/.github/workflows/build.yml@refs/heads/main',
      run_url: 'https://github.com/ceerkle/dreichor-trading/actions/runs/4242/attempts/1',
      predicate_type: 'https://slsa.dev/provenance/v1',
      key_fingerprint: null,
    });
    const line = t.auditLines().find((l) => l['request_id'] === r.headers.get('x-request-id') && l['outcome'] === 'deployed');
    assert.deepEqual(line?.['provenance'], provenance);
    const status = await t.api.status();
    assert.deepEqual(status.body['provenance'], provenance);
    const labels = (await engine.inspect(t.config.containerName))?.Config.Labels ?? {};
    assert.deepEqual(JSON.parse(labels['io.dreichor.provenance'] ?? 'null'), provenance);
  });

  it("deploys an image attested by GitHub's own instance (a signed timestamp, no transparency log)", async () => {
    const p = await publish({ instance: 'github' });
    const r = await t.api.deploy(image(p.tag));
    assert.equal(r.status, 200, r.text);
    assert.equal((r.body['provenance'] as Record<string, unknown>)['subject_digest'], p.digest);
  });

  it('refuses, naming the check, with the runtime untouched, nothing pulled or recorded', async () => {
    const running = await engine.inspect(t.config.containerName);
    assert.equal(running?.State.Running, true, 'a runtime runs during the refusals');
    const other = await publish(null);
    const cases: [Parameters<typeof publish>[0], RegExp][] = [
      [null, /image not verified: no attestation found for sha256:[0-9a-f]{64}/],
      [
        { claims: { job_workflow_ref: 'ceerkle/dreichor-trading/.github/workflows/pr.yml@refs/pull/7/merge' } },
        /signed by workflow .*pr\.yml.*not ATTESTATION_SIGNER_WORKFLOW/,
      ],
      [{ claims: { repository: 'mallory/dreichor-trading' } }, /not ATTESTATION_REPOSITORY/],
      [
        { claims: { ref: 'refs/heads/experiment' } },
        /ref "refs\/heads\/experiment", which ATTESTATION_SOURCE_REFS does not allow/,
      ],
      [{ predicateType: 'https://spdx.dev/Document/v2.3' }, /predicate type .*not ATTESTATION_PREDICATE_TYPE/],
      [{ subject: other.digest }, /subject is another digest/],
      [
        { claims: { iss: 'https://accounts.example.com' } },
        /certificate issuer is "https:\/\/accounts.example.com", not the configured ATTESTATION_ISSUER/,
      ],
      [
        { instance: 'public-good', subject: other.digest, forge: forgeSubject },
        /does not verify against SIGSTORE_TRUSTED_ROOT_FILE/,
      ],
      [{ copies: 33 }, /more than .*32/],
    ];
    for (const [attest, reason] of cases) {
      const p = await publish(attest);
      await refusedUntouched(t, image(p.tag), p, 422, reason);
    }
  });

  it('works the same from the bundle (dist/agent.js), where sigstore is loaded only in the verification process', async () => {
    const p = await publish();
    const port = await freePort();
    const { env, folders } = testEnv({ ...policy(), PORT: String(port) });
    const agent = spawnAgent(env);
    try {
      await agent.ready();
      const r = await agent.api.deploy(image(p.tag));
      assert.equal(r.status, 200, `${r.text}\n${agent.output().slice(-1000)}`);
      assert.equal((r.body['provenance'] as Record<string, unknown>)['subject_digest'], p.digest);
      const refused = await agent.api.deploy(image((await publish(null)).tag));
      assert.equal(refused.status, 422, refused.text);

      // The workflow's script: its job summary shows the commit and the run that built what runs.
      const summaryFile = join(folders.root, 'summary.md');
      const script = spawnSync(process.execPath, ['scripts/deploy-and-verify.mjs'], {
        env: {
          PATH: process.env['PATH'] ?? '',
          AGENT_URL: `http://127.0.0.1:${port}`,
          CF_ACCESS_CLIENT_ID: TOKEN.id,
          CF_ACCESS_CLIENT_SECRET: TOKEN.secret,
          ENVIRONMENT: 'dev',
          IMAGE: image(p.tag),
          GITHUB_STEP_SUMMARY: summaryFile,
        },
        encoding: 'utf8',
        timeout: 60_000,
      });
      assert.equal(script.status, 0, `${script.stdout}${script.stderr}`);
      assert.match(script.stdout, /built: https:\/\/github.com\/ceerkle\/dreichor-trading at a{40} \(refs\/heads\/main\)/);
      const summary = readFileSync(summaryFile, 'utf8');
      assert.match(
        summary,
        /\| built from \| `https:\/\/github.com\/ceerkle\/dreichor-trading` commit `a{40}` \(`refs\/heads\/main`\) \|/,
      );
      assert.match(
        summary,
        /\| build run \| `https:\/\/github.com\/ceerkle\/dreichor-trading\/actions\/runs\/4242\/attempts\/1` \|/,
      );
    } finally {
      await agent.stop();
      await removeContainersNamed(env['CONTAINER_NAME'] ?? '');
      rmSync(folders.root, { recursive: true, force: true });
    }
  });

  it('for an image index: an attestation of the index, or of the manifest this platform runs from it', async () => {
    const registry = sandboxInfo().registry;
    const writer = new RegistryWriter(registry, REPOSITORY_PATH);
    /** A one-platform index (as docker/build-push-action pushes) over a new image, under a tag of its own. */
    const indexOver = async (p: Published) => {
      const platform = await engine.platform();
      const m = await writer.platformManifest(p.digest, platform);
      const indexType = m.mediaType === MEDIA.oci ? MEDIA.ociIndex : MEDIA.dockerList;
      const index = {
        schemaVersion: 2,
        mediaType: indexType,
        manifests: [{ ...m, platform: { os: platform.os, architecture: platform.architecture } }],
      };
      const tag = `${p.tag}-index`;
      return { tag, digest: await writer.manifest(tag, index, indexType), manifest: m.digest };
    };
    // Attested as the platform's manifest (attest-build-provenance given that digest).
    const first = await indexOver(await publish(null));
    await attachBundle(
      registry,
      REPOSITORY_PATH,
      first.manifest,
      await mock.attest(provenanceStatement(first.manifest), githubClaims()),
    );
    const r1 = await t.api.deploy(image(first.tag));
    assert.equal(r1.status, 200, r1.text);
    assert.equal((r1.body['provenance'] as Record<string, unknown>)['subject_digest'], first.manifest);
    // Attested as the index (the digest build-push-action outputs for a multi-platform build).
    const second = await indexOver(await publish(null));
    const bundle = await mock.attest(provenanceStatement(second.digest), githubClaims());
    await attachBundle(registry, REPOSITORY_PATH, second.digest, bundle);
    const r2 = await t.api.deploy(image(second.tag));
    assert.equal(r2.status, 200, r2.text);
    assert.equal((r2.body['provenance'] as Record<string, unknown>)['subject_digest'], second.digest);
    // Neither: refused.
    const third = await indexOver(await publish(null));
    const r3 = await t.api.deploy(image(third.tag));
    assert.equal(r3.status, 422, r3.text);
  });

  it('an index that hides an unsigned image beside an attested one: exactly the attested manifest runs, or 4xx untouched', async () => {
    const registry = sandboxInfo().registry;
    const writer = new RegistryWriter(registry, REPOSITORY_PATH);
    const platform = await engine.platform();
    // v1's manifest for this platform, attested as attest-build-provenance does; and an unsigned one.
    const v1 = await writer.platformManifest((await publish(null)).digest, platform);
    await attachBundle(registry, REPOSITORY_PATH, v1.digest, await mock.attest(provenanceStatement(v1.digest), githubClaims()));
    const unsigned = await writer.platformManifest((await publish(null)).digest, platform);
    const repository = image('x').slice(0, -2);
    const unsignedRefusal = /image not verified: no attestation found for .*sha256/;
    for (const index of await pushHostileIndexes(writer, v1, unsigned, platform, unsignedRefusal)) {
      await deployOnlyVerified(t, repository, index, v1.digest);
    }

    // The attested manifest for the engine's platform, beside entries never chosen (another variant,
    // an attestation manifest, another platform): it runs, by its digest; the tag keeps the index.
    const p = await pushHonestIndex(writer, v1, unsigned, platform);
    const r = await t.api.deploy(image(p.tag));
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body['image_digest'], v1.digest);
    assert.equal(r.body['tag_digest'], p.digest);
    assert.equal((r.body['provenance'] as Record<string, unknown>)['subject_digest'], v1.digest);
    const running = await engine.inspect(t.config.containerName);
    const ref = `${repository}@${v1.digest}`;
    assert.equal(running?.Config.Image, ref, 'created from the manifest, never the index');
    assert.equal(running?.Image, await engine.imageId(ref), "the engine's image is the verified manifest's");
    assert.equal(running?.Config.Labels['io.dreichor.image-digest'], v1.digest);
    assert.equal(running?.Config.Labels['io.dreichor.tag-digest'], p.digest);
    assert.equal(tagsOf(t)[p.tag] === undefined, false, 'the tag is recorded');
    const status = await t.api.status();
    assert.equal(status.body['image_digest'], v1.digest);
    assert.equal(status.body['tag_digest'], p.digest);
    // The audit line keeps the two apart too: the tag's digest is the index's, the image's is what runs.
    const line = t.auditLines().find((l) => l['request_id'] === r.headers.get('x-request-id') && l['outcome'] === 'deployed');
    assert.equal(line?.['tag_digest'], p.digest, JSON.stringify(line));
    assert.equal(line?.['image_digest'], v1.digest, JSON.stringify(line));
  });

  it("verifies a rollback again, under today's policy", async () => {
    const p = await publish({ claims: { ref: 'refs/heads/main' } });
    assert.equal((await t.api.deploy(image(p.tag))).status, 200);
    const newer = await publish({ claims: { ref: 'refs/tags/v2.0.0' } });
    assert.equal((await t.api.deploy(image(newer.tag))).status, 200);
    // Today's policy: tags only. The older image, built from main, may no longer run.
    const tagsOnly = await startTestAgent(policy({ ATTESTATION_SOURCE_REFS: 'refs/tags/v*' }));
    try {
      assert.equal((await tagsOnly.api.deploy(image(newer.tag))).status, 200);
      const back = await tagsOnly.api.deploy(image(p.tag));
      assert.equal(back.status, 422, back.text);
      assert.match(String(back.body['reason']), /ATTESTATION_SOURCE_REFS/);
    } finally {
      await tagsOnly.cleanup();
    }
  });
});

describe('supply chain: the registry, as the agent reads it', () => {
  let standIn: RegistryStandIn;
  let t: TestAgent;
  const ref = (tag: string) => `${standIn.host}/${REPOSITORY_PATH}:${tag}`;
  before(async () => {
    mock = await SigstoreMock.start();
    rootFile = join(dir, 'trusted_root-2.jsonl');
    writeFileSync(rootFile, mock.trustedRootLines());
    standIn = await RegistryStandIn.start(sandboxInfo().registry);
    t = await startTestAgent(policy({ IMAGE_REPOSITORY: `${standIn.host}/${REPOSITORY_PATH}` }));
  });
  after(async () => {
    await t.cleanup();
    await standIn.close();
    await mock.close();
  });

  it('finds an attestation through the OCI referrers API', async () => {
    const p = await publish(null);
    const bundle = Buffer.from(JSON.stringify(await mock.attest(provenanceStatement(p.digest), githubClaims())));
    const writer = new RegistryWriter(sandboxInfo().registry, REPOSITORY_PATH);
    const mediaType = 'application/vnd.dev.sigstore.bundle.v0.3+json';
    const manifest = await writer.artifact(
      bundle,
      mediaType,
      {},
      { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: p.digest, size: 0 },
    );
    const artifact = { ...manifest, artifactType: mediaType };
    // Pushed by its digest, with no tag: only the referrers API can lead to it.
    const digest = `sha256:${createHash('sha256').update(JSON.stringify(artifact)).digest('hex')}`;
    await writer.manifest(digest, artifact);
    standIn.referrers.set(p.digest, [
      { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: 1, artifactType: mediaType },
    ]);
    const r = await t.api.deploy(ref(p.tag));
    assert.equal(r.status, 200, r.text);
    assert.ok(
      standIn.agentRequests.some((q) => q.includes(`/referrers/${p.digest}`)),
      'the agent asked the referrers API',
    );
  });

  it('refuses a blob whose content is not its digest (tampered in transit or in storage)', async () => {
    const p = await publish();
    standIn.mode = 'tamper-blobs-for-agent';
    try {
      await refusedUntouched(t, ref(p.tag), p, 422, /not its digest .*\(tampered\)/);
    } finally {
      standIn.mode = 'normal';
    }
  });

  it('answers 502 when the registry cannot be read for verification', async () => {
    const p = await publish();
    standIn.mode = 'unreachable-for-agent';
    try {
      await refusedUntouched(t, ref(p.tag), p, 502, /the registry could not be read for verification/);
    } finally {
      standIn.mode = 'normal';
    }
    assert.equal((await t.api.deploy(ref(p.tag))).status, 200, 'and deploys once it can');
  });
});
