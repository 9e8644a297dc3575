// Bundles the agent into one self-contained CommonJS file, dist/agent.js, which is what gets
// installed as /opt/dreichor/<env>/deploy-agent/agent.js and run by systemd with no node_modules.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';

// `--out <dir>`: where to write (default dist/). `--release`: also write the release file,
// dreichor-deploy-agent-<version>.js, and its .sha256 (what .github/workflows/release.yml publishes).
// Reproducible: the bundle depends on the sources, the lockfile's modules and the commit only (no
// time, no absolute path, no host name), so two builds of one commit give the same bytes; the unit
// test test/unit/build.test.ts builds twice into two folders and compares.
const { values: options } = parseArgs({
  options: { out: { type: 'string', default: 'dist' }, release: { type: 'boolean', default: false } },
});
const out = options.out;
await mkdir(out, { recursive: true });

const git = (...args) => execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();

// `agent.js --version` and the "listening" log line name the version and the commit built from. The
// version is the git tag (v1.2.3 -> 1.2.3; after it, `git describe`'s 1.2.3-4-g<commit>); with no tag,
// 0.0.0-dev+<commit>. A tree with uncommitted changes says so in the commit.
let commit = 'unknown';
let version = '0.0.0-dev+unknown';
try {
  commit = git('rev-parse', '--short=12', 'HEAD');
  if (git('status', '--porcelain', '--untracked-files=no') !== '') commit += '-modified';
  version = `0.0.0-dev+${commit.replace('-modified', '.modified')}`;
  const described = git('describe', '--tags', '--match', 'v[0-9]*');
  version = described.replace(/^v/, '');
} catch {
  // not a git checkout, or no tag: the fallback above
}
if (!/^[0-9A-Za-z.+-]{1,64}$/.test(version)) throw new Error(`unusable version ${JSON.stringify(version)}`);

// Modules dockerode and zod require by relative paths, which an alias cannot name, resolved to
// stubs (see each stub): what the agent never runs is not carried, and not held in memory.
const fromPackage = (args, file) => args.importer.replace(/\\/g, '/').endsWith(file);
const stubs = {
  name: 'stubs',
  setup(b) {
    b.onResolve({ filter: /^\.\/session$/ }, (args) =>
      fromPackage(args, 'node_modules/dockerode/lib/docker.js')
        ? { path: resolve('build/buildkit-session-refused.cjs') }
        : undefined,
    );
    b.onResolve({ filter: /^https$/ }, (args) =>
      fromPackage(args, 'node_modules/docker-modem/lib/http.js') ? { path: resolve('build/https-refused.cjs') } : undefined,
    );
    b.onResolve({ filter: /^(\.\/buildkit|tar-fs)$/ }, (args) =>
      fromPackage(args, 'node_modules/dockerode/lib/docker.js') || fromPackage(args, 'node_modules/dockerode/lib/util.js')
        ? { path: resolve('build/dockerode-build-refused.cjs') }
        : undefined,
    );
    // zod carries its error messages in some fifty languages; the agent's reasons are in English.
    b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) =>
      /node_modules\/zod\/v4\/(classic\/external|core\/index)\.js$/.test(args.importer.replace(/\\/g, '/'))
        ? { path: 'zod-locales-en', namespace: 'stub', pluginData: resolve(args.resolveDir, '../locales/en.js') }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'stub' }, (args) => ({
      contents: `export { default as en } from ${JSON.stringify(args.pluginData)};`,
      loader: 'js',
      resolveDir: resolve('.'),
    }));
  },
};
await build({
  // src/main.ts: the agent, or (started by the agent) one supply-chain check in a process of its own.
  entryPoints: ['src/main.ts'],
  outfile: join(out, 'agent.js'),
  bundle: true,
  platform: 'node',
  // Production runs Node.js 24 LTS, and so do the tests (scripts/setup.sh).
  target: 'node24',
  define: { __AGENT_VERSION__: JSON.stringify(version), __AGENT_COMMIT__: JSON.stringify(commit) },
  format: 'cjs',
  // docker-modem loads ssh2 for ssh:// engines, which the configuration refuses; body-parser loads
  // iconv-lite for charsets the agent refuses; mime-types indexes every media type for an agent that
  // answers JSON; pino loads thread-stream for transports the agent does not use; Express loads qs,
  // send and serve-static for query strings, bodies and files the agent never parses or serves, and
  // debug for a tracer that never prints under systemd; docker-modem loads a userland copy of
  // node:stream, dockerode a .dockerignore parser for image builds. See the stubs.
  alias: {
    ssh2: './build/ssh2-refused.cjs',
    'iconv-lite': './build/iconv-utf8-only.cjs',
    'mime-db': './build/mime-db-subset.cjs',
    'thread-stream': './build/thread-stream-refused.cjs',
    qs: './build/qs-refused.cjs',
    send: './build/static-files-refused.cjs',
    'serve-static': './build/static-files-refused.cjs',
    debug: './build/debug-silent.cjs',
    'readable-stream': './build/readable-stream-node.cjs',
    '@balena/dockerignore': './build/dockerode-build-refused.cjs',
  },
  plugins: [stubs],
  legalComments: 'none',
  // Memory: V8 keeps the bundle's source for lazy compilation, and a single non-ASCII character in a
  // comment made it a two-byte string of 5.5 MB. Without comments and whitespace it is one-byte and a
  // third of that. Identifiers are not minified, so stack traces still read; `keepNames` is off: it
  // wrapped every function and class in a naming call at start-up (0.5 MB idle, issue 24), and V8
  // names them from their declarations anyway (only the few renamed on a clash read `parse2`).
  minifyWhitespace: true,
  minifySyntax: true,
  charset: 'ascii',
  logLevel: 'warning',
  // verify-process.ts reads import.meta.url to tell source (tests) from the bundle, where it is empty.
  logOverride: { 'empty-import-meta': 'silent' },
});
// The project is ESM; the bundle is CommonJS, and says so for when it runs from inside dist/.
await writeFile(join(out, 'package.json'), '{ "type": "commonjs" }\n');

if (options.release) {
  const name = `dreichor-deploy-agent-${version}.js`;
  const bytes = await readFile(join(out, 'agent.js'));
  await writeFile(join(out, name), bytes);
  // The format of sha256sum, so `sha256sum -c` checks it.
  await writeFile(join(out, `${name}.sha256`), `${createHash('sha256').update(bytes).digest('hex')}  ${name}\n`);
  process.stdout.write(`${join(out, name)}\n`);
}
