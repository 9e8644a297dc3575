/**
 * httpGet's https path (node:https is loaded at the first https GET, not at start): what the registry
 * client uses against GHCR. Every other test reads a registry over plain http on loopback, so this is
 * the one that shows the https path works, and that it verifies the server's certificate.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { httpGet } from '../../../src/supply-chain/http-get.js';
import { tempDir } from '../../support/temp-dir.js';

/** A self-signed certificate for 127.0.0.1, made by Debian's openssl. */
function selfSigned(): { key: Buffer; cert: Buffer } {
  const dir = tempDir('http-get');
  const [key, cert] = [join(dir, 'key.pem'), join(dir, 'cert.pem')];
  const run = spawnSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { encoding: 'utf8', timeout: 10_000 },
  );
  assert.equal(run.status, 0, run.stderr);
  return { key: readFileSync(key), cert: readFileSync(cert) };
}

describe('httpGet over https', () => {
  it('speaks TLS and refuses a certificate no trusted authority signed', async () => {
    const server = createServer(selfSigned(), (_req, res) => res.writeHead(200).end('{}'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    let served = 0;
    server.on('request', () => {
      served += 1;
    });
    try {
      const url = new URL(`https://127.0.0.1:${(server.address() as AddressInfo).port}/v2/`);
      const error = await httpGet(url, {}, AbortSignal.timeout(5_000)).then(
        () => null,
        (e: unknown) => e,
      );
      assert.ok(error instanceof Error, 'a self-signed certificate was accepted');
      assert.equal((error as NodeJS.ErrnoException).code, 'DEPTH_ZERO_SELF_SIGNED_CERT');
      assert.equal(served, 0, 'the request reached the server');
    } finally {
      server.close();
    }
  });
});
