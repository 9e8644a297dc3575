// Bundles the agent into one self-contained CommonJS file, dist/agent.js, which is what gets
// installed as /opt/dreichor/<env>/deploy-agent/agent.js and run by systemd with no node_modules.
import { build } from 'esbuild';
import { mkdir, writeFile } from 'node:fs/promises';

await mkdir('dist', { recursive: true });
await build({
  entryPoints: ['src/agent.ts'],
  outfile: 'dist/agent.js',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  // docker-modem loads ssh2 for ssh:// engines, which the configuration refuses; see the stub.
  alias: { ssh2: './build/ssh2-refused.cjs' },
  legalComments: 'none',
  logLevel: 'warning',
});
// The project is ESM; the bundle is CommonJS, and says so for when it runs from inside dist/.
await writeFile('dist/package.json', '{ "type": "commonjs" }\n');
