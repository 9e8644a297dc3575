import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { AgentError } from '../../../src/errors.js';
import {
  chooseEntry,
  chooseRunnable,
  describePlatform,
  normalize,
  type Platform,
  platformVector,
  rankOf,
} from '../../../src/supply-chain/platform.js';
import type { Descriptor } from '../../../src/supply-chain/referrers.js';
import { AMD64, digestOf as digest, entry, refused } from '../../support/platform-entries.js';
import { OCI_INDEX, OCI_MANIFEST, sha256 } from '../../support/scripted-registry.js';

/**
 * The edges of the platform choice (platform.ts) that platform.test.ts leaves open, found by mutation:
 * the rest of containerd's normalisation table, the vectors of the variants an engine may report, the
 * refusal's wording, and the registry reads of `chooseRunnable` (the Accept header asked, the purpose
 * its failures name). Everything here is pure or on a loopback server of this file's own.
 */
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
const ARM64: Platform = { os: 'linux', architecture: 'arm64', variant: '' };
const n = (architecture: string, variant?: string, os = 'linux') => describePlatform(normalize({ os, architecture, variant }));
const v = (p: Platform) => platformVector(normalize(p)).map(describePlatform);

describe('platform edges: normalisation', () => {
  it('the rest of containerd normalizeArch table', () => {
    assert.equal(n('amd64', '', 'MacOS'), 'darwin/amd64');
    assert.equal(n('amd64', '', 'Windows'), 'windows/amd64');
    assert.equal(n('AMD64', 'v2'), 'linux/amd64/v2');
    assert.equal(n('x86-64'), 'linux/amd64');
    assert.equal(n('arm64', 'v8.0'), 'linux/arm64');
    assert.equal(n('arm64', '8'), 'linux/arm64');
    assert.equal(n('arm64', '9'), 'linux/arm64/v9');
    assert.equal(n('arm64', 'v9.0'), 'linux/arm64/v9');
    assert.equal(n('arm64', 'v8.2'), 'linux/arm64/v8.2');
    assert.equal(n('armhf', 'v5'), 'linux/arm/v7');
    assert.equal(n('armel', 'v7'), 'linux/arm/v6');
    assert.equal(n('arm', '7'), 'linux/arm/v7');
    assert.equal(n('arm', '5'), 'linux/arm/v5');
    assert.equal(n('arm', '8'), 'linux/arm/v8');
    assert.equal(n('arm', 'v6'), 'linux/arm/v6');
    assert.equal(n('arm', '4'), 'linux/arm/4');
    assert.equal(n('i386'), 'linux/386');
    assert.equal(n('RISCV64', 'RVA20'), 'linux/riscv64/rva20');
  });
});

describe('platform edges: what an engine runs', () => {
  it('amd64 variants and one that is not a number', () => {
    assert.deepEqual(v({ ...AMD64, variant: 'v2' }), ['linux/amd64/v2', 'linux/amd64', 'linux/386']);
    assert.deepEqual(v({ ...AMD64, variant: 'v4' }), [
      'linux/amd64/v4',
      'linux/amd64/v3',
      'linux/amd64/v2',
      'linux/amd64',
      'linux/386',
    ]);
    assert.deepEqual(v({ ...AMD64, variant: 'vx' }), ['linux/amd64/vx', 'linux/386']);
    assert.deepEqual(v({ os: 'windows', architecture: 'amd64', variant: '' }), ['windows/amd64', 'windows/386']);
    // A variant is a level only as `v<digits>` or `<digits>`, however many digits; nothing around it.
    assert.deepEqual(v({ ...AMD64, variant: '2' }), ['linux/amd64/2', 'linux/amd64', 'linux/386']);
    assert.equal(v({ ...AMD64, variant: 'v10' }).length, 11);
    for (const odd of ['+2', 'v2 ', 'x2'])
      assert.deepEqual(v({ ...AMD64, variant: odd }), [`linux/amd64/${odd}`, 'linux/386'], odd);
  });

  it('arm stops at v5; arm64 v8.x and v9.x follow containerd table', () => {
    assert.deepEqual(v({ os: 'linux', architecture: 'arm', variant: 'v5' }), ['linux/arm/v5']);
    assert.deepEqual(v({ os: 'linux', architecture: 'arm', variant: 'v8' }), [
      'linux/arm/v8',
      'linux/arm/v7',
      'linux/arm/v6',
      'linux/arm/v5',
    ]);
    const arm = ['linux/arm/v8', 'linux/arm/v7', 'linux/arm/v6', 'linux/arm/v5'];
    assert.deepEqual(v(ARM64), ['linux/arm64', ...arm]);
    assert.deepEqual(v({ ...ARM64, variant: 'v8.2' }), ['linux/arm64/v8.2', 'linux/arm64/v8.1', 'linux/arm64', ...arm]);
    const v8upTo = (top: number) => [...Array.from({ length: top }, (_, i) => `linux/arm64/v8.${top - i}`), 'linux/arm64'];
    assert.deepEqual(v({ ...ARM64, variant: 'v9' }), ['linux/arm64/v9', ...v8upTo(5), ...arm]);
    assert.deepEqual(v({ ...ARM64, variant: 'v9.2' }), [
      'linux/arm64/v9.2',
      'linux/arm64/v9.1',
      'linux/arm64/v9',
      ...v8upTo(7),
      ...arm,
    ]);
    // v9.5 would reach v8.10: capped at v8.9.
    assert.deepEqual(v({ ...ARM64, variant: 'v9.5' }).slice(5, 7), ['linux/arm64/v9', 'linux/arm64/v8.9']);
  });

  it('an arm64 variant outside the table runs nothing; an unknown architecture only itself', () => {
    assert.deepEqual(v({ ...ARM64, variant: 'v10' }), []);
    assert.deepEqual(v({ ...ARM64, variant: 'v8.10' }), []);
    assert.deepEqual(v({ ...ARM64, variant: 'xv8' }), []);
    assert.deepEqual(v({ os: 'linux', architecture: 's390x', variant: '' }), ['linux/s390x']);
  });
});

describe('platform edges: the rank of an entry', () => {
  const vector = platformVector(AMD64);
  it('a Docker manifest is an image; an empty OS feature list needs nothing; another annotation is no attestation', () => {
    assert.equal(rankOf(entry('1', 'amd64', undefined, { mediaType: DOCKER_MANIFEST }), vector), 0);
    assert.equal(rankOf(entry('1', 'amd64', undefined, { mediaType: DOCKER_LIST }), vector), null);
    assert.equal(rankOf(entry('1', '386', undefined, { mediaType: DOCKER_MANIFEST }), vector), 1);
    const noFeatures = entry('1', 'amd64', undefined, { platform: { os: 'linux', architecture: 'amd64', 'os.features': [] } });
    assert.equal(rankOf(noFeatures, vector), 0);
    assert.equal(rankOf(entry('1', 'amd64', undefined, { annotations: { 'vnd.docker.reference.type': 'other' } }), vector), 0);
  });
});

describe('platform edges: the choice and its refusals', () => {
  it('an entry for another OS is never chosen, whatever its architecture', () => {
    const windows = entry('2', 'amd64', undefined, { platform: { os: 'windows', architecture: 'amd64' } });
    assert.match(refused([windows]), /it lists: windows\/amd64\)/);
    assert.equal(chooseEntry(digest('0'), [windows, entry('3', '386')], AMD64).digest, digest('3'));
  });

  it('a better entry listed after worse ones replaces them, even two of them', () => {
    assert.equal(
      chooseEntry(digest('0'), [entry('3', '386'), entry('4', '386'), entry('1', 'amd64')], AMD64).digest,
      digest('1'),
    );
    assert.equal(
      chooseEntry(digest('0'), [entry('1', 'amd64'), entry('3', '386'), entry('4', '386')], AMD64).digest,
      digest('1'),
    );
  });

  it('the refusal of an equal match names both digests and how many matched', () => {
    const reason = refused([entry('1', 'amd64'), entry('2', 'x86_64'), entry('3', 'amd64', 'v1')]);
    assert.match(
      reason,
      /^the image index sha256:0{64} lists 3 different images that match the engine's platform linux\/amd64 equally/,
    );
    assert.ok(reason.includes(`(${digest('1')} and ${digest('2')})`), reason);
    assert.match(
      reason,
      /: refusing to guess which one runs; nothing was pulled or recorded, the running container was not touched$/,
    );
  });

  it('the refusal of no match lists what the index offers: once each, at most eight, `none` without a platform', () => {
    const untyped: Descriptor = { mediaType: OCI_MANIFEST, digest: digest('6'), size: 1 };
    assert.match(
      refused([entry('1', 'arm64'), entry('2', 'aarch64'), untyped, entry('3', 's390x')]),
      /^the image index sha256:0{64} has no image for the engine's platform linux\/amd64 \(it lists: linux\/arm64, none, linux\/s390x\); nothing was pulled/,
    );
    assert.match(refused([]), /\(it lists: nothing\)/);
    const many = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'].map((arch, i) => entry(String(i + 1), `riscv${arch}`));
    assert.match(refused(many), /\(it lists: linux\/riscva, .*, linux\/riscvh\)/);
    assert.doesNotMatch(refused(many), /riscvi/);
  });
});

/** A registry on loopback that, as real ones do, serves a manifest only when the Accept header asks for its type. */
const stored = new Map<string, { bytes: Buffer; mediaType: string }>();
let server: Server;
let host = '';
let failing = false;
before(async () => {
  server = createServer((req, res) => {
    const found = stored.get((req.url ?? '').replace('/v2/a/b/manifests/', ''));
    const accepted = (req.headers.accept ?? '').split(',').map((t) => t.trim());
    if (failing) res.writeHead(500).end();
    else if (found === undefined || !accepted.includes(found.mediaType)) res.writeHead(404).end();
    else res.writeHead(200, { 'content-type': found.mediaType }).end(found.bytes);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((resolve) => server.close(() => resolve())));

const put = (value: object, mediaType: string): string => {
  const bytes = Buffer.from(JSON.stringify(value));
  stored.set(sha256(bytes), { bytes, mediaType });
  return sha256(bytes);
};
const image = (mediaType: string, config: string): string =>
  put({ schemaVersion: 2, mediaType, config: { mediaType: 'application/json', digest: config, size: 1 }, layers: [] }, mediaType);
const run = (tagDigest: string, engine: Platform | null, purpose?: string) =>
  chooseRunnable(
    { repository: `${host}/a/b`, tagDigest, credentials: null, engine, ...(purpose === undefined ? {} : { purpose }) },
    AbortSignal.timeout(5_000),
  );
const rejection = (promise: Promise<unknown>): Promise<AgentError> =>
  promise.then(
    () => assert.fail('resolved'),
    (error: unknown) => {
      assert.ok(error instanceof AgentError, String(error));
      return error;
    },
  );

describe('platform edges: what a tag runs, read from the registry', () => {
  it('an OCI index or a Docker list, and an OCI or a Docker manifest, each asked for by its type', async () => {
    const oci = image(OCI_MANIFEST, digest('c'));
    const docker = image(DOCKER_MANIFEST, digest('d'));
    const index = put(
      { schemaVersion: 2, manifests: [{ mediaType: OCI_MANIFEST, digest: oci, size: 1, platform: AMD64 }] },
      OCI_INDEX,
    );
    const list = put(
      { schemaVersion: 2, manifests: [{ mediaType: DOCKER_MANIFEST, digest: docker, size: 1, platform: AMD64 }] },
      DOCKER_LIST,
    );
    assert.deepEqual(await run(index, AMD64), { digest: oci, config: digest('c') });
    assert.deepEqual(await run(list, AMD64), { digest: docker, config: digest('d') });
    assert.deepEqual(await run(docker, null), { digest: docker, config: digest('d') });
  });

  it('an index that is missing or not an index, a manifest that is missing: refused, naming which', async () => {
    const missing = digest('e');
    const notIndex = put({ schemaVersion: 2, manifests: 'no' }, OCI_INDEX);
    for (const tag of [missing, notIndex]) {
      const error = await rejection(run(tag, AMD64));
      assert.equal(error.code, 'no_platform_image');
      assert.match(error.reason, new RegExp(`^the image index ${tag} could not be read from the registry; nothing was pulled`));
    }
    const error = await rejection(run(missing, null));
    assert.match(
      error.reason,
      new RegExp(`^the image manifest ${missing} could not be read from the registry; nothing was pulled`),
    );
  });

  it("a registry's failure names the purpose it was read for; a repository that does not parse is an internal error", async () => {
    failing = true;
    try {
      assert.match(
        (await rejection(run(digest('f'), AMD64, 'to choose the platform'))).reason,
        /could not be read to choose the platform/,
      );
      assert.match((await rejection(run(digest('f'), AMD64))).reason, /could not be read for verification/);
    } finally {
      failing = false;
    }
    assert.throws(
      () =>
        chooseRunnable(
          { repository: 'UPPER/Case', tagDigest: digest('f'), credentials: null, engine: null },
          AbortSignal.timeout(1),
        ),
      (error: unknown) =>
        error instanceof AgentError && error.status === 500 && /IMAGE_REPOSITORY does not parse/.test(error.reason),
    );
  });
});
