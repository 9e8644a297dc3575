import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { attachBundle, cosignBundle, cosignKey, pushLegacySignature, RegistryWriter } from '../support/cosign.js';
import { engine, image, startTestAgent, type TestAgent } from '../support/harness.js';
import { AUTH_PASSWORD, AUTH_USER, docker, publishImage, REPOSITORY_PATH, sandboxInfo } from '../support/sandbox.js';
import { TOKEN_PASSWORD, TOKEN_USER, TokenRegistry } from '../support/token-registry.js';

/**
 * IMAGE_VERIFICATION=cosign-key on the real engine and registry: cosign's legacy `.sig` tag and
 * cosign 3's bundle, both made with node:crypto; a signature by another key refused with the runtime
 * untouched. And a registry that wants Bearer tokens (docker-registry with `auth: token` and a token
 * server of the test's own): the agent follows the 401 to the realm with the pull's credentials.
 */
const dir = mkdtempSync(join(tmpdir(), 'dreichor-cosign-'));
const key = cosignKey();
const stranger = cosignKey();
const keyFile = join(dir, 'cosign.pub');
writeFileSync(keyFile, key.publicKeyPem);
let n = 0;

async function publish(): Promise<{ tag: string; digest: string }> {
  n += 1;
  const tag = `cosign-${process.pid}-${n}`;
  return { tag, digest: await publishImage(sandboxInfo(), tag) };
}

describe('supply chain: cosign signatures with a key', () => {
  let t: TestAgent;
  const writer = () => new RegistryWriter(sandboxInfo().registry, REPOSITORY_PATH);
  before(async () => {
    t = await startTestAgent({ IMAGE_VERIFICATION: 'cosign-key', COSIGN_PUBLIC_KEY_FILE: keyFile });
  });
  after(() => t.cleanup());

  it("deploys an image signed in cosign's legacy form (the .sig tag), with the key's fingerprint", async () => {
    const p = await publish();
    await pushLegacySignature(writer(), key.privateKey, p.digest);
    const r = await t.api.deploy(image(p.tag));
    assert.equal(r.status, 200, r.text);
    const provenance = r.body['provenance'] as Record<string, unknown>;
    assert.equal(provenance['verified_by'], 'cosign-key');
    assert.equal(provenance['subject_digest'], p.digest);
    assert.equal(
      provenance['key_fingerprint'],
      t.config.imageVerification.mode === 'cosign-key' ? t.config.imageVerification.fingerprint : '',
    );
  });

  it("deploys an image signed in cosign 3's bundle form (a DSSE statement stored as a referrer)", async () => {
    const p = await publish();
    await attachBundle(sandboxInfo().registry, REPOSITORY_PATH, p.digest, cosignBundle(key.privateKey, p.digest));
    const r = await t.api.deploy(image(p.tag));
    assert.equal(r.status, 200, r.text);
    assert.equal((r.body['provenance'] as Record<string, unknown>)['predicate_type'], 'https://sigstore.dev/cosign/sign/v1');
  });

  it('refuses signatures by another key, or of another digest, with the runtime untouched and nothing pulled', async () => {
    const running = await engine.inspect(t.config.containerName);
    assert.equal(running?.State.Running, true);
    const other = await publish();
    const cases: [(p: { digest: string }) => Promise<void>, RegExp][] = [
      [(p) => pushLegacySignature(writer(), stranger.privateKey, p.digest), /not made with COSIGN_PUBLIC_KEY_FILE/],
      [
        (p) => attachBundle(sandboxInfo().registry, REPOSITORY_PATH, p.digest, cosignBundle(stranger.privateKey, p.digest)),
        /not made with COSIGN_PUBLIC_KEY_FILE/,
      ],
      [(p) => pushLegacySignature(writer(), key.privateKey, p.digest, other.digest), /signs another digest/],
      [() => Promise.resolve(), /no signature found/],
    ];
    for (const [sign, reason] of cases) {
      const p = await publish();
      await sign(p);
      const r = await t.api.deploy(image(p.tag));
      assert.equal(r.status, 422, r.text);
      assert.match(String(r.body['reason']), reason);
      const now = await engine.inspect(t.config.containerName);
      assert.equal(now?.Id, running?.Id);
      assert.equal(now?.State.StartedAt, running?.State.StartedAt);
      assert.equal(await engine.imageId(`${sandboxInfo().registry}/${REPOSITORY_PATH}@${p.digest}`), null, 'nothing was pulled');
      assert.equal(t.auditLines().at(-1)?.['outcome'], 'refused');
    }
  });
});

describe('supply chain: a registry that wants Basic credentials', () => {
  it('answers its challenge with the pull credentials (422 for an unsigned image, not 502)', async () => {
    const info = sandboxInfo();
    const t = await startTestAgent({
      IMAGE_VERIFICATION: 'cosign-key',
      COSIGN_PUBLIC_KEY_FILE: keyFile,
      IMAGE_REPOSITORY: `${info.authRegistry}/${REPOSITORY_PATH}`,
      REGISTRY_USERNAME: AUTH_USER,
      REGISTRY_PASSWORD: AUTH_PASSWORD,
    });
    try {
      const r = await t.api.deploy(`${info.authRegistry}/${REPOSITORY_PATH}:v1`);
      assert.equal(r.status, 422, r.text);
      assert.match(String(r.body['reason']), /no signature found/);
      assert.equal(await engine.imageId(`${info.authRegistry}/${REPOSITORY_PATH}:v1`), null, 'nothing was pulled');
    } finally {
      await t.cleanup();
    }
  });
});

describe('supply chain: a registry that wants Bearer tokens', () => {
  let registry: TokenRegistry;
  let t: TestAgent;
  before(async () => {
    registry = await TokenRegistry.start(dir);
  });
  after(async () => {
    await t?.cleanup();
    await registry.close();
  });

  it('follows the 401 to the token realm with the pull credentials, then verifies and deploys', async () => {
    const info = sandboxInfo();
    const p = await publish();
    const source = `${info.registry}/${REPOSITORY_PATH}:${p.tag}`;
    const target = `${registry.host}/${REPOSITORY_PATH}:${p.tag}`;
    await docker(info, 'pull', source);
    await docker(info, 'tag', source, target);
    await docker(info, 'login', '-u', TOKEN_USER, '-p', TOKEN_PASSWORD, registry.host);
    try {
      await docker(info, 'push', target);
    } finally {
      await docker(info, 'logout', registry.host).catch(() => undefined);
      await docker(info, 'rmi', source, target);
    }
    const credentials = { username: TOKEN_USER, password: TOKEN_PASSWORD };
    await attachBundle(registry.host, REPOSITORY_PATH, p.digest, cosignBundle(key.privateKey, p.digest), credentials);

    t = await startTestAgent({
      IMAGE_VERIFICATION: 'cosign-key',
      COSIGN_PUBLIC_KEY_FILE: keyFile,
      IMAGE_REPOSITORY: `${registry.host}/${REPOSITORY_PATH}`,
      REGISTRY_USERNAME: TOKEN_USER,
      REGISTRY_PASSWORD: TOKEN_PASSWORD,
    });
    const r = await t.api.deploy(`${registry.host}/${REPOSITORY_PATH}:${p.tag}`);
    assert.equal(r.status, 200, r.text);
    assert.ok(
      registry.tokensIssued.some((s) => s.startsWith('node ') && s.endsWith(`repository:${REPOSITORY_PATH}:pull`)),
      `the agent asked the realm for a pull token: ${registry.tokensIssued.join(' | ')}`,
    );
  });
});
