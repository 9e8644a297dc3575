import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import { AgentError } from '../../../src/errors.js';
import {
  artifactManifest,
  type Descriptor,
  findReferrers,
  indexSchema,
  manifestSchema,
  parseJson,
  referrersTag,
} from '../../../src/supply-chain/referrers.js';
import { RegistryClient } from '../../../src/supply-chain/registry.js';
import { OCI_INDEX, OCI_MANIFEST, ScriptedRegistry } from '../../support/scripted-registry.js';

/**
 * What the registry holds about a digest (referrers.ts), read directly: the referrers API and the
 * `sha256-<hex>` tag merged once each, the artifact-type filter, the candidate limit, and the schemas
 * every answer is parsed with. The verifiers' tests reach these only through a whole verification.
 */
const SUBJECT = `sha256:${'a'.repeat(64)}`;
const BUNDLE = 'application/vnd.dev.sigstore.bundle.v0.3+json';
const SBOM = 'application/spdx+json';
const d = (c: string, artifactType?: string): Descriptor => ({
  mediaType: OCI_MANIFEST,
  digest: `sha256:${c.repeat(64)}`,
  size: 1,
  ...(artifactType === undefined ? {} : { artifactType }),
});
const wanted = (t: string) => t === BUNDLE;
const hex = (i: number) => i.toString(16).padStart(64, '0');

let registry: ScriptedRegistry;
before(async () => {
  registry = await ScriptedRegistry.start();
});
after(() => registry.close());
beforeEach(() => registry.reset());
const client = () =>
  new RegistryClient({ host: registry.host, path: registry.path, credentials: null }, AbortSignal.timeout(5_000));
const found = async (digest = SUBJECT) => (await findReferrers(client(), digest, wanted)).map((r) => r.digest);

describe('referrers: the API and the tag, merged', () => {
  it('keeps the wanted and the undecided types from both, once each, in the order found', async () => {
    registry.referrers.set(SUBJECT, [d('1', BUNDLE), d('2', SBOM), d('3'), d('4', 'application/vnd.oci.empty.v1+json')]);
    registry.index([d('5', BUNDLE), d('1', BUNDLE), d('6', '')], referrersTag(SUBJECT));
    assert.deepEqual(
      await found(),
      ['1', '3', '4', '5', '6'].map((c) => `sha256:${c.repeat(64)}`),
    );
  });

  it('reads the tag alone when the registry has no referrers API, and nothing when neither has any', async () => {
    registry.referrersApi = false;
    assert.deepEqual(await found(), []);
    registry.index([d('5', BUNDLE)], referrersTag(SUBJECT));
    assert.deepEqual(await found(), [`sha256:${'5'.repeat(64)}`]);
    assert.ok(registry.requests.includes(`GET /v2/${registry.path}/manifests/sha256-${'a'.repeat(64)}`));
  });

  it('an answer that is not an index is skipped, the other still read', async () => {
    registry.referrers.set(SUBJECT, [d('1', BUNDLE)]);
    registry.manifest({ schemaVersion: 2, manifests: 'none' }, OCI_INDEX, referrersTag(SUBJECT));
    assert.deepEqual(await found(), [`sha256:${'1'.repeat(64)}`]);
  });

  it('32 candidates are read; 33 are refused, whatever does not match not counted', async () => {
    const many = (k: number) => Array.from({ length: k }, (_, i) => ({ ...d('0', BUNDLE), digest: `sha256:${hex(i + 1)}` }));
    registry.referrers.set(SUBJECT, [...many(32), d('f', SBOM)]);
    assert.equal((await found()).length, 32);
    registry.referrers.set(SUBJECT, many(33));
    await assert.rejects(found(), (error: unknown) => {
      assert.ok(error instanceof AgentError && error.status === 422 && error.code === 'image_unverified', String(error));
      assert.match(error.reason, new RegExp(`lists 33 candidate attestations for ${SUBJECT}, more than the 32 allowed`));
      return true;
    });
  });
});

describe('referrers: a referrer manifest, and the schemas', () => {
  const manifest = (extra: object = {}) => ({
    schemaVersion: 2,
    config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: `sha256:${'e'.repeat(64)}`, size: 2 },
    layers: [{ mediaType: BUNDLE, digest: `sha256:${'b'.repeat(64)}`, size: 10 }],
    ...extra,
  });

  it('an artifact manifest is read by digest; a missing or malformed one is null', async () => {
    const stored = registry.manifest(manifest({ artifactType: BUNDLE }), OCI_MANIFEST);
    assert.equal((await artifactManifest(client(), stored.digest))?.artifactType, BUNDLE);
    assert.equal(await artifactManifest(client(), `sha256:${'9'.repeat(64)}`), null);
    const bad = registry.manifest({ schemaVersion: 2, layers: [] }, OCI_MANIFEST);
    assert.equal(await artifactManifest(client(), bad.digest), null);
  });

  it('the referrers tag of a digest', () => {
    assert.equal(referrersTag(SUBJECT), `sha256-${'a'.repeat(64)}`);
  });

  it('what does not parse is null, never a throw', () => {
    const json = (value: unknown) => Buffer.from(JSON.stringify(value));
    assert.equal(parseJson(Buffer.from('{'), manifestSchema), null);
    assert.ok(parseJson(json(manifest()), manifestSchema) !== null);
    assert.equal(parseJson(json(manifest({ schemaVersion: 1 })), manifestSchema), null);
    const withDigest = (digest: string) => json(manifest({ config: { mediaType: 'x', digest, size: 1 } }));
    for (const digest of [
      `sha256:${'A'.repeat(64)}`,
      `xsha256:${'a'.repeat(64)}`,
      `sha256:${'a'.repeat(64)}0`,
      `sha256:${'g'.repeat(64)}`,
    ]) {
      assert.equal(parseJson(withDigest(digest), manifestSchema), null, digest);
    }
    for (const size of [-1, 1.5]) {
      assert.equal(parseJson(json(manifest({ config: { mediaType: 'x', digest: SUBJECT, size } })), manifestSchema), null);
    }
    const index = (manifests: unknown) => json({ schemaVersion: 2, manifests });
    assert.deepEqual(parseJson(index([]), indexSchema)?.manifests, []);
    const platform = { os: 'linux', architecture: 'arm', variant: 'v7' };
    assert.deepEqual(parseJson(index([{ ...d('1'), platform }]), indexSchema)?.manifests[0]?.platform, platform);
    assert.equal(parseJson(index([{ ...d('1'), platform: { os: 'linux' } }]), indexSchema), null);
  });
});

describe('referrers: what the registry is asked for', () => {
  it('the tag as an OCI index and a referrer as an OCI manifest, by the Accept header', async () => {
    const accepts: string[] = [];
    const server = createServer((req, res) => {
      accepts.push(`${req.url?.split('/').pop()?.slice(0, 8)} ${req.headers.accept}`);
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
      const own = new RegistryClient({ host, path: 'a/b', credentials: null }, AbortSignal.timeout(5_000));
      await findReferrers(own, SUBJECT, wanted);
      assert.equal(await artifactManifest(own, SUBJECT), null);
      assert.deepEqual(accepts.sort(), [`sha256-a ${OCI_INDEX}`, `sha256:a ${OCI_INDEX}`, `sha256:a ${OCI_MANIFEST}`]);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
