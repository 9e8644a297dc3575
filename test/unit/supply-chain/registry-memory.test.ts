import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { build } from 'esbuild';

/**
 * Memory: the agent reads the registry (a verified deploy's platform choice, in the agent itself)
 * without loading undici, the global fetch's engine, which stays in memory for the process's life
 * once loaded (+16 MiB of RSS measured on Node.js 24; see supply-chain/http-get.ts). Checked as the
 * agent runs, a CommonJS bundle (an ESM `import 'node:http'` itself loads undici, for the namespace's
 * WebSocket), in a process of its own: Node.js lists the modules it loaded in process.moduleLoadList.
 */
const SCRIPT = `
const { createServer } = require('node:http');
const { RegistryClient } = require(process.argv[1]);
const server = createServer((req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
server.listen(0, '127.0.0.1', async () => {
  const host = '127.0.0.1:' + server.address().port;
  const client = new RegistryClient({ host, path: 'a/b', credentials: null }, AbortSignal.timeout(10_000));
  const fetched = await client.manifest('v1', ['application/json'], 1024);
  server.close();
  const undici = process.moduleLoadList.filter((m) => m.includes('undici'));
  process.stdout.write(JSON.stringify({ read: fetched?.bytes.toString(), undici }));
});
`;

describe('the registry client and memory', () => {
  it('reads the registry without loading undici (the global fetch)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'registry-memory-'));
    try {
      const bundle = join(dir, 'registry.cjs');
      const built = await build({
        entryPoints: ['src/supply-chain/registry.ts'],
        bundle: true,
        platform: 'node',
        format: 'cjs',
        write: false,
        logLevel: 'silent',
      });
      await writeFile(bundle, built.outputFiles[0]?.contents ?? '');
      const { stdout } = await promisify(execFile)(process.execPath, ['-e', SCRIPT, bundle], { timeout: 60_000 });
      const result = JSON.parse(stdout) as { read: string; undici: string[] };
      assert.equal(result.read, '{}');
      assert.deepEqual(result.undici, []);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
