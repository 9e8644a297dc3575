// Bundles the agent into one self-contained CommonJS file, dist/agent.js, which is what gets
// installed as /opt/dreichor/<env>/deploy-agent/agent.js and run by systemd with no node_modules.
import { build } from 'esbuild';
import { mkdir, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';

await mkdir('dist', { recursive: true });

// dockerode's BuildKit session module (see the stub) is required by a relative path, which an
// alias cannot name; this resolves that one path to the stub.
const refuseBuildkitSession = {
  name: 'refuse-buildkit-session',
  setup(b) {
    b.onResolve({ filter: /^\.\/session$/ }, (args) =>
      args.importer.replace(/\\/g, '/').endsWith('node_modules/dockerode/lib/docker.js') ? { path: resolve('build/buildkit-session-refused.cjs') } : undefined,
    );
  },
};
await build({
  entryPoints: ['src/agent.ts'],
  outfile: 'dist/agent.js',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  // docker-modem loads ssh2 for ssh:// engines, which the configuration refuses; see the stub.
  alias: { ssh2: './build/ssh2-refused.cjs' },
  plugins: [refuseBuildkitSession],
  legalComments: 'none',
  logLevel: 'warning',
});
// The project is ESM; the bundle is CommonJS, and says so for when it runs from inside dist/.
await writeFile('dist/package.json', '{ "type": "commonjs" }\n');
