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

// dockerode's BuildKit session module (see the stub) is required by a relative path, which an
// alias cannot name; this resolves that one path to the stub.
const refuseBuildkitSession = {
  name: 'refuse-buildkit-session',
  setup(b) {
    b.onResolve({ filter: /^\.\/session$/ }, (args) =>
      args.importer.replace(/\\/g, '/').endsWith('node_modules/dockerode/lib/docker.js')
        ? { path: resolve('build/buildkit-session-refused.cjs') }
        : undefined,
    );
  },
};
await build({
  entryPoints: ['src/agent.ts'],
  outfile: 'dist/agent.js',
  bundle: true,
  platform: 'node',
  // Production runs Node.js 24 LTS; the bundle also runs on Node 20, where the tests run it.
  target: 'node24',
  define: { __AGENT_VERSION__: JSON.stringify(version), __AGENT_COMMIT__: JSON.stringify(commit) },
  format: 'cjs',
  // docker-modem loads ssh2 for ssh:// engines, which the configuration refuses; see the stub.
  alias: { ssh2: './build/ssh2-refused.cjs' },
  plugins: [refuseBuildkitSession],
  legalComments: 'none',
  logLevel: 'warning',
});
// The project is ESM; the bundle is CommonJS, and says so for when it runs from inside dist/.
await writeFile('dist/package.json', '{ "type": "commonjs" }\n');
