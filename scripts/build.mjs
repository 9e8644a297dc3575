// Bundles the agent into one self-contained CommonJS file, dist/agent.js, which is what gets
// installed as /opt/dreichor/<env>/deploy-agent/agent.js and run by systemd with no node_modules.
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { build } from 'esbuild';

await mkdir('dist', { recursive: true });

// `agent.js --version` and the "listening" log line name the version and the commit built from.
const { version } = JSON.parse(await readFile('package.json', 'utf8'));
let commit = 'unknown';
try {
  commit = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  }).trim();
  if (execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' }).trim() !== '')
    commit += '-modified';
} catch {
  // not a git checkout: "unknown"
}

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
  outfile: 'dist/agent.js',
  bundle: true,
  platform: 'node',
  // Production runs Node.js 24 LTS, and so do the tests (scripts/setup.sh).
  target: 'node24',
  define: { __AGENT_VERSION__: JSON.stringify(version), __AGENT_COMMIT__: JSON.stringify(commit) },
  format: 'cjs',
  // docker-modem loads ssh2 for ssh:// engines, which the configuration refuses; body-parser loads
  // iconv-lite for charsets the agent refuses; mime-types indexes every media type for an agent that
  // answers JSON; pino loads thread-stream for transports the agent does not use. See the stubs.
  alias: {
    ssh2: './build/ssh2-refused.cjs',
    'iconv-lite': './build/iconv-utf8-only.cjs',
    'mime-db': './build/mime-db-subset.cjs',
    'thread-stream': './build/thread-stream-refused.cjs',
  },
  plugins: [stubs],
  legalComments: 'none',
  // Memory: V8 keeps the bundle's source for lazy compilation, and a single non-ASCII character in a
  // comment made it a two-byte string of 5.5 MB. Without comments and whitespace it is one-byte and a
  // third of that. Names are kept, so stack traces still read.
  minifyWhitespace: true,
  minifySyntax: true,
  keepNames: true,
  charset: 'ascii',
  logLevel: 'warning',
  // verify-process.ts reads import.meta.url to tell source (tests) from the bundle, where it is empty.
  logOverride: { 'empty-import-meta': 'silent' },
});
// The project is ESM; the bundle is CommonJS, and says so for when it runs from inside dist/.
await writeFile('dist/package.json', '{ "type": "commonjs" }\n');
