import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { enginePlatform, variantFromMachine } from '../../../src/engine/engine-platform.js';
import { normalize, platformVector } from '../../../src/supply-chain/platform.js';
import { AMD64, chosen, digestOf as digest, entry, refused } from '../../support/platform-entries.js';
import { OCI_MANIFEST as OCI } from '../../support/scripted-registry.js';

/**
 * The platform choice (platform.ts) against containerd's platform matcher, whose rules and tables
 * (github.com/containerd/platforms: database.go `normalizeArch`, compare.go `platformVector`) the
 * expectations below are copied from; and the engine's platform as read from its API.
 */
const ARM64 = { os: 'linux', architecture: 'arm64', variant: 'v8' };

describe('platform: normalised as containerd does', () => {
  it('names and variants', () => {
    const n = (architecture: string, variant?: string) => {
      const p = normalize({ os: 'Linux', architecture, variant });
      return `${p.os}/${p.architecture}${p.variant === '' ? '' : `/${p.variant}`}`;
    };
    assert.equal(n('x86_64'), 'linux/amd64');
    assert.equal(n('X86-64', 'V1'), 'linux/amd64');
    assert.equal(n('amd64', 'v3'), 'linux/amd64/v3');
    assert.equal(n('aarch64'), 'linux/arm64');
    assert.equal(n('arm64', 'v8'), 'linux/arm64');
    assert.equal(n('arm64', '9.0'), 'linux/arm64/v9');
    assert.equal(n('armhf'), 'linux/arm/v7');
    assert.equal(n('armel'), 'linux/arm/v6');
    assert.equal(n('arm'), 'linux/arm/v7');
    assert.equal(n('arm', '6'), 'linux/arm/v6');
    assert.equal(n('i386', 'whatever'), 'linux/386');
  });

  it("what an engine runs, best first (containerd's Only)", () => {
    const v = (p: { os: string; architecture: string; variant: string }) =>
      platformVector(normalize(p)).map((x) => `${x.architecture}${x.variant === '' ? '' : `/${x.variant}`}`);
    assert.deepEqual(v(AMD64), ['amd64', '386']);
    assert.deepEqual(v({ ...AMD64, variant: 'v3' }), ['amd64/v3', 'amd64/v2', 'amd64', '386']);
    assert.deepEqual(v(ARM64), ['arm64', 'arm/v8', 'arm/v7', 'arm/v6', 'arm/v5']);
    assert.deepEqual(v({ os: 'linux', architecture: 'arm', variant: 'v7' }), ['arm/v7', 'arm/v6', 'arm/v5']);
    assert.deepEqual(v({ ...ARM64, variant: 'v9.1' }).slice(0, 4), ['arm64/v9.1', 'arm64/v9', 'arm64/v8.6', 'arm64/v8.5']);
  });
});

describe('platform: the manifest chosen from an index', () => {
  it("the issue's first shape: the attested manifest under a variant the engine does not run is not the engine's", () => {
    assert.equal(chosen([entry('1', 'amd64', 'v9'), entry('2', 'amd64')]), digest('2'));
  });

  it("the issue's second shape: an alias of the platform before the platform matches equally: refused", () => {
    assert.match(refused([entry('2', 'x86_64'), entry('1', 'amd64')]), /2 different images that match .*linux\/amd64 equally/);
    assert.match(refused([entry('2', 'amd64', 'v1'), entry('1', 'amd64')], AMD64), /equally/);
    assert.match(refused([entry('2', 'aarch64'), entry('1', 'arm64', 'v8')], ARM64), /equally/);
  });

  it('the same manifest listed twice is one image', () => {
    assert.equal(chosen([entry('1', 'amd64'), entry('1', 'x86_64')]), digest('1'));
  });

  it('the best match wins over what the engine can also run; order does not matter', () => {
    assert.equal(chosen([entry('3', '386'), entry('1', 'amd64')]), digest('1'));
    assert.equal(chosen([entry('3', '386')]), digest('3'));
    assert.equal(chosen([entry('5', 'arm', 'v7'), entry('1', 'aarch64')], ARM64), digest('1'));
    assert.equal(chosen([entry('5', 'arm', 'v6'), entry('6', 'armhf')], ARM64), digest('6'));
    assert.equal(chosen([entry('1', 'amd64', 'v2'), entry('2', 'amd64', 'v3')], { ...AMD64, variant: 'v3' }), digest('2'));
  });

  it('never a nested index, an attestation manifest, an entry without a platform or needing OS features', () => {
    const never = [
      entry('4', 'amd64', undefined, { mediaType: 'application/vnd.oci.image.index.v1+json' }),
      entry('5', 'amd64', undefined, { annotations: { 'vnd.docker.reference.type': 'attestation-manifest' } }),
      { mediaType: OCI, digest: digest('6'), size: 1 },
      entry('7', 'unknown'),
      entry('8', 'amd64', undefined, { platform: { os: 'linux', architecture: 'amd64', 'os.features': ['sse4'] } }),
      entry('9', 'arm64'),
    ];
    assert.match(refused(never), /no image for the engine's platform linux\/amd64/);
    assert.equal(chosen([...never, entry('1', 'amd64')]), digest('1'));
  });
});

describe("the engine's platform, from its API", () => {
  it('os and architecture from GET /version; the ARM variant from the machine name, as containerd falls back to', () => {
    assert.deepEqual(enginePlatform({ Os: 'linux', Arch: 'amd64' }, null), AMD64);
    assert.deepEqual(enginePlatform({ Os: 'linux', Arch: 'arm64' }, { Architecture: 'aarch64' }), ARM64);
    assert.deepEqual(enginePlatform({ Os: 'linux', Arch: 'arm' }, { Architecture: 'armv7l' }), {
      os: 'linux',
      architecture: 'arm',
      variant: 'v7',
    });
    assert.equal(variantFromMachine('armv6l'), 'v6');
    assert.equal(variantFromMachine('x86_64'), '');
    assert.throws(() => enginePlatform({ Os: 'linux' }, null));
  });
});
