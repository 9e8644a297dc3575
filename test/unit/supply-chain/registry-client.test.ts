import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { AgentError } from '../../../src/errors.js';
import { isLoopback, RegistryClient } from '../../../src/supply-chain/registry.js';

/**
 * The registry client against small registries of the test's own on 127.0.0.1: the auth flow, where
 * credentials may go, the HTTPS rule on redirects, digests and size caps. Nothing leaves loopback:
 * a redirect to another host is refused before any request is made.
 */
const CREDENTIALS = { username: 'reader', password: 'registry-password-0123', serveraddress: 'x' };
const BLOB = Buffer.from('a blob of the registry');
const BLOB_DIGEST = `sha256:${createHash('sha256').update(BLOB).digest('hex')}`;

interface Seen {
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
}

async function listen(handler: Parameters<typeof createServer>[1]): Promise<{ server: Server; host: string }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, host: `127.0.0.1:${(server.address() as AddressInfo).port}` };
}

describe('the registry client', () => {
  const seen: Seen[] = [];
  const elsewhere: Seen[] = [];
  let registry: { server: Server; host: string };
  let other: { server: Server; host: string };
  const client = (credentials = CREDENTIALS) =>
    new RegistryClient({ host: registry.host, path: 'dreichor/runtime', credentials }, AbortSignal.timeout(10_000));

  before(async () => {
    other = await listen((req, res) => {
      elsewhere.push({ url: req.url ?? '', headers: req.headers });
      res.writeHead(200).end(BLOB);
    });
    registry = await listen((req, res) => {
      seen.push({ url: req.url ?? '', headers: req.headers });
      const url = req.url ?? '';
      if (url.startsWith('/token')) {
        const ok = req.headers.authorization === `Basic ${Buffer.from('reader:registry-password-0123').toString('base64')}`;
        return void res.writeHead(ok ? 200 : 401, { 'Content-Type': 'application/json' }).end(JSON.stringify({ token: 'T0KEN' }));
      }
      if (req.headers.authorization !== 'Bearer T0KEN') {
        return void res
          .writeHead(401, {
            'WWW-Authenticate': `Bearer realm="http://${registry.host}/token",service="test",scope="repository:dreichor/runtime:push,pull"`,
          })
          .end();
      }
      if (url.endsWith(`/blobs/${BLOB_DIGEST}`))
        return void res.writeHead(307, { Location: `http://${other.host}/signed?x=1` }).end();
      if (url.endsWith(`/blobs/sha256:${'f'.repeat(64)}`))
        return void res.writeHead(302, { Location: 'http://registry.example.invalid/blob' }).end();
      if (url.endsWith('/manifests/big')) return void res.writeHead(200, { 'Content-Length': String(10 * 1024 * 1024) }).end();
      if (url.endsWith(`/manifests/sha256:${'e'.repeat(64)}`)) return void res.writeHead(200).end('{"not":"that digest"}');
      res.writeHead(404).end();
    });
  });
  after(() => {
    registry.server.close();
    other.server.close();
  });

  it('follows a Bearer challenge to its realm with Basic credentials, asking for pull only', async () => {
    assert.equal(await client().manifest('v1', ['application/json'], 1024), null);
    const token = seen.find((s) => s.url.startsWith('/token'));
    assert.ok(token !== undefined);
    assert.match(token.url, /scope=repository%3Adreichor%2Fruntime%3Apull(&|$)/);
    assert.equal(seen.at(-1)?.headers.authorization, 'Bearer T0KEN');
  });

  it('follows a blob redirect to another origin without the registry token, and checks the digest', async () => {
    assert.deepEqual(await client().blob(BLOB_DIGEST, 1024), BLOB);
    assert.equal(elsewhere.at(-1)?.headers.authorization, undefined, 'the token stays with the registry');
  });

  it('refuses plain HTTP to a host that is not loopback, without asking it anything', async () => {
    await assert.rejects(client().blob(`sha256:${'f'.repeat(64)}`, 1024), (e: unknown) => {
      assert.ok(e instanceof AgentError);
      assert.equal(e.status, 502);
      assert.match(e.reason, /https only/);
      return true;
    });
    assert.ok(!isLoopback('registry.example.invalid') && isLoopback('127.0.0.1') && isLoopback('localhost'));
  });

  it('names a registry that answers plain HTTP where the agent speaks HTTPS (one not on loopback): 502, and why', async () => {
    // The agent speaks HTTPS to every registry but a loopback one. "[::ffff:127.0.0.1]" is loopback
    // to the kernel but not a name isLoopback lists, so this plain-HTTP registry is spoken to as one
    // elsewhere would be (an engine's "insecure-registries" entry, say), with nothing leaving the machine.
    const host = `[::ffff:127.0.0.1]:${registry.host.split(':')[1]}`;
    assert.equal(isLoopback(new URL(`http://${host}`).hostname), false, 'the premise: not loopback to the agent');
    const elsewhere = new RegistryClient(
      { host, path: 'dreichor/runtime', credentials: null, purpose: 'to choose the image' },
      AbortSignal.timeout(10_000),
    );
    await assert.rejects(elsewhere.manifest('v1', ['application/json'], 1024), (e: unknown) => {
      assert.ok(e instanceof AgentError, String(e));
      assert.equal(e.status, 502);
      assert.match(
        e.reason,
        /^the registry could not be read to choose the image \(\[::ffff:127\.0\.0\.1\]:\d+, GET \/v2\/dreichor\/runtime\/manifests\/v1: it answers plain HTTP, not HTTPS \(ERR_SSL_[A-Z_]+\); the agent reads a registry over HTTPS only, plain HTTP only on loopback/,
      );
      return true;
    });
  });

  it('refuses what is not its digest, and answers over the size limit (422)', async () => {
    await assert.rejects(client().manifest(`sha256:${'e'.repeat(64)}`, ['application/json'], 1024), /tampered/);
    await assert.rejects(client().manifest('big', ['application/json'], 1024), /more than the 1024 allowed/);
  });

  it('says so when the registry wants credentials and none are configured (502)', async () => {
    const anonymous = new RegistryClient(
      { host: registry.host, path: 'dreichor/runtime', credentials: null },
      AbortSignal.timeout(10_000),
    );
    await assert.rejects(anonymous.manifest('v1', ['application/json'], 1024), /token request: HTTP 401/);
  });
});

describe('a registry that drips its answer', () => {
  it('is cut off by the request timeout: a 504 naming the registry, never an internal error', async () => {
    const timers = new Set<NodeJS.Timeout>();
    // Headers at once, then one byte every 250 ms of a manifest that never ends.
    const drip = await listen((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' });
      const timer = setInterval(() => res.write('{'), 250);
      timers.add(timer);
      res.on('close', () => clearInterval(timer));
    });
    try {
      const client = new RegistryClient(
        { host: drip.host, path: 'dreichor/runtime', credentials: null },
        AbortSignal.timeout(30_000),
        1_000,
      );
      const began = Date.now();
      await assert.rejects(client.manifest('v1', ['application/json'], 64 * 1024), (e: unknown) => {
        assert.ok(e instanceof AgentError, `an AgentError, not ${String(e)}`);
        assert.equal(e.status, 504);
        assert.match(
          e.reason,
          new RegExp(
            `the registry could not be read for verification \\(${drip.host}, GET /v2/dreichor/runtime/manifests/v1: no complete answer within 1 s\\)`,
          ),
        );
        return true;
      });
      assert.ok(Date.now() - began < 5_000, 'cut off by the timeout, not by the drip ending');
    } finally {
      for (const timer of timers) clearInterval(timer);
      drip.server.closeAllConnections();
      drip.server.close();
    }
  });
});
