import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

// The release is reproducible: two builds of one commit, into two folders, give the same bytes, and
// the bundle names no path of the machine that built it (release.yml builds it; anyone can rebuild
// the tag and compare with the attested file).
describe('scripts/build.mjs', () => {
  const root = mkdtempSync(join(tmpdir(), 'dreichor-build-'));
  after(() => rmSync(root, { recursive: true, force: true }));
  const buildInto = (name: string): string => {
    const out = join(root, name);
    execFileSync(process.execPath, ['scripts/build.mjs', '--out', out, '--release'], { stdio: 'pipe', timeout: 60_000 });
    return out;
  };
  const first = buildInto('first');
  const second = buildInto('second');

  it('gives the same bytes twice, release file and checksum included', () => {
    const files = readdirSync(first).sort();
    assert.deepEqual(readdirSync(second).sort(), files);
    assert.equal(files.filter((f) => /^dreichor-deploy-agent-.+\.js(\.sha256)?$/.test(f)).length, 2);
    for (const file of files)
      assert.ok(readFileSync(join(first, file)).equals(readFileSync(join(second, file))), `${file} differs`);
  });

  it('names no path of the build machine', () => {
    const bundle = readFileSync(join(first, 'agent.js'), 'utf8');
    assert.ok(!bundle.includes(process.cwd()), 'the checkout path is in the bundle');
    assert.ok(!bundle.includes(root), 'the output path is in the bundle');
  });

  it('names its version in the release file, its checksum and --version', () => {
    const release = readdirSync(first).find((f) => f.endsWith('.js') && f !== 'agent.js') ?? '';
    const version = release.replace(/^dreichor-deploy-agent-/, '').replace(/\.js$/, '');
    const printed = execFileSync(process.execPath, [join(first, 'agent.js'), '--version'], { encoding: 'utf8' });
    assert.match(printed, new RegExp(`^dreichor-deploy-agent ${version.replace(/[.+]/g, '\\$&')} \\(`));
    const [hash, name] = readFileSync(join(first, `${release}.sha256`), 'utf8')
      .trim()
      .split(/\s+/);
    assert.equal(name, release);
    assert.equal(
      hash,
      createHash('sha256')
        .update(readFileSync(join(first, release)))
        .digest('hex'),
    );
  });

  // Memory (BENCHMARKS.md): what the agent never runs is not carried. Each module the bundle carries
  // is a key of esbuild's wrapper ("node_modules/<package>/..."), and zod's unused schema types are
  // left out only when zod is imported as a namespace (`import * as z from './zod.js'`): `import { z }` keeps all
  // of them (about 2.5 MB of the idle agent).
  it('carries none of the stubbed packages, and only the zod schema types the agent uses', () => {
    const bundle = readFileSync(join(first, 'agent.js'), 'utf8');
    const stubbed = ['ssh2', 'iconv-lite', 'mime-db', 'thread-stream', 'qs', 'send', 'serve-static', 'debug'];
    for (const name of [...stubbed, 'readable-stream', '@balena/dockerignore', 'tar-fs', '@grpc/grpc-js']) {
      assert.ok(!bundle.includes(`"node_modules/${name}/`), `${name} is in the bundle`);
    }
    for (const unused of ['ZodTemplateLiteral', 'ZodPromise', 'ZodFile', 'ZodBigInt'])
      assert.ok(!bundle.includes(unused), `zod's ${unused} is in the bundle: is zod imported as \`import { z }\`?`);
    // zod's classic API names its types "ZodString" and the like, zod/mini "ZodMiniString": one module
    // importing 'zod' rather than src/zod.ts brings the classic build back (about 2 MB idle, issue 24).
    assert.ok(!bundle.includes('"ZodString"'), "zod's classic build is in the bundle: import zod from src/zod.ts");
    assert.ok(bundle.includes('"ZodMiniString"'));
    assert.ok(bundle.includes('"build/qs-refused.cjs"'), 'the qs stub is not in the bundle');
  });

  it('takes the version from the git tag: v9.8.7 builds 9.8.7', () => {
    const clone = join(root, 'clone');
    execFileSync('git', ['clone', '--quiet', '--no-hardlinks', '--shared', process.cwd(), clone], { stdio: 'pipe' });
    execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', 'tag', '-a', 'v9.8.7', '-m', 'v9.8.7'], {
      cwd: clone,
      stdio: 'pipe',
    });
    symlinkSync(join(process.cwd(), 'node_modules'), join(clone, 'node_modules'));
    const out = join(root, 'tagged');
    execFileSync(process.execPath, ['scripts/build.mjs', '--out', out, '--release'], {
      cwd: clone,
      stdio: 'pipe',
      timeout: 60_000,
    });
    assert.ok(readdirSync(out).includes('dreichor-deploy-agent-9.8.7.js'), readdirSync(out).join(' '));
    const printed = execFileSync(process.execPath, [join(out, 'agent.js'), '--version'], { encoding: 'utf8' });
    assert.match(printed, /^dreichor-deploy-agent 9\.8\.7 \([0-9a-f]{12}\)\n$/);
  });
});
