import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { AgentError } from '../../../src/errors.js';
import { isLoopback, parseChallenge, RegistryClient, type RegistryTarget } from '../../../src/supply-chain/registry.js';
import { type Answer, LoopbackHttp } from '../../support/loopback-http.js';

/**
 * The registry client's edges that registry-client.test.ts does not reach: which hosts are loopback,
 * each status and what it becomes, redirects (their limit, a missing location, credentials in a
 * URL), each kind of 401 challenge and token answer, the size caps at their boundary, and how a
 * failure names the registry and the read. One loopback server, its answer set by each test.
 */
const CREDENTIALS = { username: 'reader', password: 'registry-password-0123', serveraddress: 'x' };
const BASIC = `Basic ${Buffer.from('reader:registry-password-0123').toString('base64')}`;
const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const MANIFEST = '/v2/dreichor/runtime/manifests/v1';

let http: LoopbackHttp;
before(async () => {
  http = await LoopbackHttp.start();
});
after(() => http.close());

const client = (target: Partial<RegistryTarget> = {}, timeoutMs?: number, signal = AbortSignal.timeout(10_000)) =>
  new RegistryClient({ host: http.host, path: 'dreichor/runtime', credentials: null, ...target }, signal, timeoutMs);

/** Rejects with an AgentError of `status` whose reason is exactly `reason` (a string) or matches it. */
async function refuses(promise: Promise<unknown>, status: number, reason: string | RegExp): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof AgentError, `an AgentError, not ${String(e)}`);
    assert.equal(e.status, status, e.reason);
    assert.equal(e.code, status === 422 ? 'image_unverified' : 'registry_refused');
    if (typeof reason === 'string') assert.equal(e.reason, reason);
    else assert.match(e.reason, reason);
    return true;
  });
}
const unreadable = (detail: string, what = `GET ${MANIFEST}`, purpose = 'for verification') =>
  `the registry could not be read ${purpose} (${http.host}, ${what}: ${detail}); nothing was pulled, the running container was not touched`;

describe('which hosts are loopback (spoken to over plain HTTP)', () => {
  it('localhost, [::1] and 127.0.0.0/8 only, written whole', () => {
    for (const host of ['localhost', '[::1]', '127.0.0.1', '127.1.22.254']) assert.equal(isLoopback(host), true, host);
    for (const host of [
      '127.0.0.1.example.com',
      'evil127.0.0.1',
      '127.0.0',
      '127.0.0.1234',
      '128.0.0.1',
      'localhost.example.com',
      'xlocalhost',
      '::1',
      '[::2]',
      '',
    ]) {
      assert.equal(isLoopback(host), false, host);
    }
  });
});

describe('the registry client, answer by answer', () => {
  it('reads a manifest by tag as it is (no digest to check), with its media type and Accept', async () => {
    const body = '{"any":"manifest"}';
    http.reset((_req, res) => void res.writeHead(200, { 'Content-Type': ' application/x-m ; charset=utf-8' }).end(body));
    const fetched = await client().manifest('v1', ['application/a', 'application/b'], 1024);
    assert.deepEqual(fetched, { bytes: Buffer.from(body), mediaType: 'application/x-m', digest: sha256(body) });
    assert.equal(http.seen[0]?.url, MANIFEST);
    assert.equal(http.seen[0]?.headers.accept, 'application/a, application/b');
    assert.equal(http.seen[0]?.headers.authorization, undefined);

    http.reset((_req, res) => void res.writeHead(200).end(body));
    const byDigest = await client().manifest(sha256(body), ['application/a'], 1024);
    assert.equal(byDigest?.mediaType, null, 'no Content-Type: no media type');
    assert.equal(byDigest?.digest, sha256(body));
  });

  it('refuses a blob that is missing (422) or is not its digest (422)', async () => {
    const digest = sha256('the blob');
    http.reset();
    await refuses(
      client().blob(digest, 1024),
      422,
      `image not verified: blob ${digest} is missing from the registry; nothing was pulled or recorded, the running container was not touched`,
    );
    http.reset((_req, res) => void res.writeHead(200).end('another blob'));
    await refuses(
      client().blob(digest, 1024),
      422,
      /^image not verified: the registry served a blob whose content is not its digest/,
    );
    http.reset((_req, res) => void res.writeHead(200).end('the blob'));
    assert.deepEqual(await client().blob(digest, 1024), Buffer.from('the blob'));
    assert.equal(http.seen[0]?.url, `/v2/dreichor/runtime/blobs/${digest}`);
    assert.equal(http.seen[0]?.headers.accept, '*/*');
  });

  it('takes a referrers API that is refused or missing (4xx, 501) as not served; fails on a 5xx', async () => {
    const digest = sha256('image');
    for (const status of [400, 403, 404, 405, 499, 501]) {
      http.reset((_req, res) => void res.writeHead(status).end());
      assert.equal(await client().referrers(digest, 1024), null, String(status));
    }
    assert.equal(http.seen[0]?.url, `/v2/dreichor/runtime/referrers/${digest}`);
    assert.equal(http.seen[0]?.headers.accept, 'application/vnd.oci.image.index.v1+json');
    for (const status of [500, 502, 503]) {
      http.reset((_req, res) => void res.writeHead(status).end());
      await refuses(
        client().referrers(digest, 1024),
        502,
        unreadable(`HTTP ${status}`, `GET /v2/dreichor/runtime/referrers/${digest}`),
      );
    }
  });

  it('fails on any status but 200 and 404 of a manifest, naming it (502), in the words of its purpose', async () => {
    for (const status of [400, 403, 500, 501, 204]) {
      http.reset((_req, res) => void res.writeHead(status).end());
      await refuses(client().manifest('v1', ['a'], 1024), 502, unreadable(`HTTP ${status}`));
    }
    await refuses(
      client({ purpose: 'to choose the image' }).manifest('v1', ['a'], 1024),
      502,
      unreadable('HTTP 204', `GET ${MANIFEST}`, 'to choose the image'),
    );
    http.reset();
    assert.equal(await client().manifest('v1', ['a'], 1024), null);
  });

  it('follows each kind of redirect on its own origin, credentials kept there', async () => {
    for (const status of [301, 302, 303, 307, 308]) {
      http.reset((req, res) => {
        if (req.headers.authorization !== BASIC) return void res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="r"' }).end();
        if (req.url === MANIFEST) return void res.writeHead(status, { Location: '/elsewhere' }).end();
        res.writeHead(200).end('moved');
      });
      const fetched = await client({ credentials: CREDENTIALS }).manifest('v1', ['a'], 1024);
      assert.equal(fetched?.bytes.toString(), 'moved', String(status));
      assert.deepEqual(
        http.seen.map((s) => [s.url, s.headers.authorization]),
        [
          [MANIFEST, undefined],
          [MANIFEST, BASIC],
          ['/elsewhere', BASIC],
        ],
      );
    }
  });

  it('stops at a redirect without a location, after five redirects, and at a URL carrying credentials', async () => {
    http.reset((_req, res) => void res.writeHead(302).end());
    await refuses(client().manifest('v1', ['a'], 1024), 502, unreadable('a redirect without a location'));
    http.reset((req, res) => void res.writeHead(307, { Location: `${req.url}x` }).end());
    await refuses(client().manifest('v1', ['a'], 1024), 502, unreadable('too many redirects'));
    assert.equal(http.seen.length, 6, 'the first request and five redirects');
    for (const userinfo of ['u:p@', 'u@', ':p@']) {
      http.reset((_req, res) => void res.writeHead(302, { Location: `http://${userinfo}${http.host}/x` }).end());
      await refuses(client().manifest('v1', ['a'], 1024), 502, unreadable('a URL carrying credentials'));
      assert.equal(http.seen.length, 1, userinfo);
    }
    // HTTPS anywhere is followed (here to this plain server, which then fails the handshake).
    http.reset((_req, res) => void res.writeHead(302, { Location: `https://${http.host}/x` }).end());
    await refuses(
      client().manifest('v1', ['a'], 1024),
      502,
      /: it answers plain HTTP, not HTTPS \(ERR_SSL_WRONG_VERSION_NUMBER\)/,
    );
    http.reset((_req, res) => void res.writeHead(302, { Location: 'ftp://127.0.0.1/x' }).end());
    await refuses(
      client().manifest('v1', ['a'], 1024),
      502,
      unreadable('refusing ftp: to 127.0.0.1: https only (plain http to loopback only)'),
    );
  });

  it('answers Basic with the credentials, says so when there are none, and fails on a second 401', async () => {
    http.reset((req, res) => {
      if (req.headers.authorization === BASIC) return void res.writeHead(200).end('ok');
      res.writeHead(401, { 'WWW-Authenticate': 'BASIC realm="Registry Realm"' }).end();
    });
    assert.equal((await client({ credentials: CREDENTIALS }).manifest('v1', ['a'], 1024))?.bytes.toString(), 'ok');
    await refuses(
      client().manifest('v1', ['a'], 1024),
      502,
      unreadable('the registry asks for credentials and none are configured', 'authentication'),
    );
    http.reset((_req, res) => void res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="r"' }).end());
    await refuses(client({ credentials: CREDENTIALS }).manifest('v1', ['a'], 1024), 502, unreadable('HTTP 401'));
  });

  it('fails on a 401 without a usable challenge', async () => {
    for (const challenge of [undefined, 'Bearer service="registry"', 'Digest realm="r"', `Bearer realm="${'r'.repeat(4096)}"`]) {
      http.reset((_req, res) => void res.writeHead(401, challenge === undefined ? {} : { 'WWW-Authenticate': challenge }).end());
      await refuses(
        client({ credentials: CREDENTIALS }).manifest('v1', ['a'], 1024),
        502,
        unreadable('the registry answered 401 without a usable challenge', 'authentication'),
      );
    }
  });

  describe('a Bearer challenge', () => {
    /** The registry asks for a token at /token (with `realmQuery`), then wants `Bearer T0KEN`; the realm answers `token`. */
    const bearer = (token: (req: Parameters<LoopbackHttp['answer']>[0]) => [number, string], realmQuery = '?service=x') =>
      http.reset((req, res) => {
        if (req.url?.startsWith('/token')) {
          const [status, body] = token(req);
          return void res.writeHead(status).end(body);
        }
        if (req.headers.authorization === 'Bearer T0KEN') return void res.writeHead(200).end('ok');
        res.writeHead(401, { 'WWW-Authenticate': `Bearer realm="http://${http.host}/token${realmQuery}"` }).end();
      });

    it('asks the realm anonymously without credentials, for pull only, with no service unless named', async () => {
      bearer(() => [200, '{"access_token":"T0KEN"}'], '?scope=repository:dreichor/runtime:push');
      assert.equal((await client().manifest('v1', ['a'], 1024))?.bytes.toString(), 'ok');
      const token = http.seen[1];
      assert.equal(token?.headers.authorization, undefined);
      assert.equal(token?.url, '/token?scope=repository%3Adreichor%2Fruntime%3Apull');
    });

    it('names the service the challenge gives', async () => {
      http.reset((req, res) => {
        if (req.url?.startsWith('/token')) return void res.writeHead(200).end('{"token":"T0KEN"}');
        if (req.headers.authorization === 'Bearer T0KEN') return void res.writeHead(200).end('ok');
        res.writeHead(401, { 'WWW-Authenticate': `Bearer realm="http://${http.host}/token",service="reg.example"` }).end();
      });
      await client({ credentials: CREDENTIALS }).manifest('v1', ['a'], 1024);
      assert.equal(http.seen[1]?.url, '/token?service=reg.example&scope=repository%3Adreichor%2Fruntime%3Apull');
      assert.equal(http.seen[1]?.headers.authorization, BASIC);
    });

    it('fails on a token answer that is refused, or holds no token (502), or is too large (422)', async () => {
      for (const body of ['not json', '{}', '{"token":""}', '{"access_token":""}', `{"token":"${'t'.repeat(64 * 1024 + 1)}"}`]) {
        bearer(() => [200, body]);
        await refuses(client().manifest('v1', ['a'], 1024), 502, unreadable('the answer holds no token', 'token request'));
      }
      bearer(() => [200, `{"token":"${'t'.repeat(128 * 1024)}"}`]);
      await refuses(
        client().manifest('v1', ['a'], 1024),
        422,
        'image not verified: token request is more than the 131072 bytes allowed; nothing was pulled or recorded, the running container was not touched',
      );
      bearer(() => [403, '{"token":"T0KEN"}']);
      await refuses(client().manifest('v1', ['a'], 1024), 502, unreadable('HTTP 403', 'token request'));
    });

    it('refuses a realm that is plain HTTP elsewhere, or carries credentials, without asking it', async () => {
      for (const [realm, detail] of [
        ['http://auth.example.invalid/token', 'refusing http: to auth.example.invalid: https only (plain http to loopback only)'],
        [`http://u:p@${http.host}/token`, 'a URL carrying credentials'],
      ] as const) {
        http.reset((_req, res) => void res.writeHead(401, { 'WWW-Authenticate': `Bearer realm="${realm}"` }).end());
        await refuses(client({ credentials: CREDENTIALS }).manifest('v1', ['a'], 1024), 502, unreadable(detail, 'token request'));
        assert.equal(http.seen.length, 1);
      }
    });
  });

  it('caps a body at its limit exactly, declared or not', async () => {
    const exactly = Buffer.alloc(1024, 0x61);
    for (const declared of [true, false]) {
      http.reset((_req, res) => {
        res.writeHead(200, declared ? { 'Content-Length': String(exactly.length) } : {});
        if (declared) res.end(exactly);
        else {
          res.write(exactly.subarray(0, 512));
          res.end(exactly.subarray(512));
        }
      });
      assert.equal((await client().manifest('v1', ['a'], 1024))?.bytes.length, 1024, `declared: ${declared}`);
      assert.equal(
        (await client()
          .manifest('v1', ['a'], 1023)
          .catch((e: unknown) => e)) instanceof AgentError,
        true,
      );
    }
    http.reset((_req, res) => {
      res.writeHead(200);
      res.write(exactly);
      res.end('b');
    });
    await refuses(
      client().manifest('v1', ['a'], 1024),
      422,
      `image not verified: ${MANIFEST} is more than the 1024 bytes allowed; nothing was pulled or recorded, the running container was not touched`,
    );
    http.reset((_req, res) => void res.writeHead(200, { 'Content-Length': '1025' }).end(Buffer.alloc(1025)));
    await refuses(
      client().manifest('v1', ['a'], 1024),
      422,
      /^image not verified: \/v2\/dreichor\/runtime\/manifests\/v1 is 1025 bytes, more than the 1024 allowed;/,
    );
  });

  it('fails a read in time (504), a refused connection (502), and gives an abandoned deploy its own reason', async () => {
    http.reset(() => undefined); // never answers
    await refuses(client({}, 100).manifest('v1', ['a'], 1024), 504, unreadable('no complete answer within 0.1 s'));
    // The token's answer drips: its read is named as the token request.
    http.reset((req, res) => {
      if (!req.url?.startsWith('/token'))
        return void res.writeHead(401, { 'WWW-Authenticate': `Bearer realm="http://${http.host}/token"` }).end();
      res.writeHead(200);
      res.write('{');
    });
    await refuses(
      client({}, 150).manifest('v1', ['a'], 1024),
      504,
      unreadable('no complete answer within 0.15 s', 'token request'),
    );

    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const closed = new RegistryClient({ host: `127.0.0.1:${port}`, path: 'p', credentials: null }, AbortSignal.timeout(10_000));
    await refuses(
      closed.manifest('v1', ['a'], 1024),
      502,
      `the registry could not be read for verification (127.0.0.1:${port}, GET /v2/p/manifests/v1: connect ECONNREFUSED 127.0.0.1:${port}); nothing was pulled, the running container was not touched`,
    );

    // A token realm that refuses the connection is named as the token request.
    http.reset(
      (_req, res) => void res.writeHead(401, { 'WWW-Authenticate': `Bearer realm="http://127.0.0.1:${port}/token"` }).end(),
    );
    await refuses(
      client().manifest('v1', ['a'], 1024),
      502,
      unreadable(`connect ECONNREFUSED 127.0.0.1:${port}`, 'token request'),
    );

    const reason = new AgentError(499, 'the caller went away', { code: 'caller_gone' });
    const deploy = new AbortController();
    http.reset(() => setTimeout(() => deploy.abort(reason), 10));
    await assert.rejects(client({}, 5_000, deploy.signal).manifest('v1', ['a'], 1024), (e) => e === reason);
  });
});

describe('a WWW-Authenticate challenge, parsed', () => {
  it('reads the scheme (any case) and its parameters, quoted or not, keys in lower case', () => {
    const bearer = parseChallenge('  BEARER Realm="https://auth.example/token", service=registry.example ,Scope="a:b:pull"  ');
    assert.equal(bearer?.scheme, 'bearer');
    assert.deepEqual(
      { ...bearer?.params },
      { realm: 'https://auth.example/token', service: 'registry.example', scope: 'a:b:pull' },
    );
    const basic = parseChallenge('Basic');
    assert.equal(basic?.scheme, 'basic');
    assert.deepEqual({ ...basic?.params }, {});
    assert.deepEqual({ ...parseChallenge('Bearer realm="",x_y=')?.params }, { realm: '', x_y: '' });
  });

  it('stops at what is no parameter, and reads nothing of a header that is none or too long', () => {
    assert.deepEqual({ ...parseChallenge('Bearer realm="r", junk service="s"')?.params }, { realm: 'r' });
    assert.deepEqual({ ...parseChallenge('Bearer realm="r" junk')?.params }, {});
    assert.equal(parseChallenge(''), null);
    assert.equal(parseChallenge('"quoted"'), null);
    assert.equal(parseChallenge(', Bearer realm="r"'), null, 'the scheme comes first');
    assert.equal(parseChallenge('Bearer realm="r"\nX-Injected: 1'), null, 'one line');
    assert.equal(parseChallenge(`Bearer realm="${'r'.repeat(4096 - 15)}"`)?.params['realm']?.length, 4096 - 15);
    assert.equal(parseChallenge(`Bearer realm="${'r'.repeat(4096 - 14)}"`), null);
  });
});

describe('the registry client lets go of what it does not read', () => {
  /** Answers with `status` and a body that never ends; each answer's connection close is awaited by `closed`. */
  const closes: Promise<void>[] = [];
  const endless =
    (status: number, headers: Record<string, string> = {}): Answer =>
    (_req, res) => {
      closes.push(new Promise((resolve) => res.once('close', () => resolve())));
      res.writeHead(status, headers);
      const timer = setInterval(() => res.write(Buffer.alloc(16 * 1024)), 5);
      res.once('close', () => clearInterval(timer));
    };
  /** Every endless answer so far was closed by the client, within half a second. */
  async function closed(what: string): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), 500);
    });
    const all = Promise.all(closes).then(() => 'closed' as const);
    assert.equal(await Promise.race([all, late]), 'closed', `${what}: the connection is dropped, not held open`);
    clearTimeout(timer);
    closes.length = 0;
  }
  const digest = sha256('image');

  it('a 404, a refused referrers API, a failure, a redirect, a 401, a refused token, an answer declared too large', async () => {
    http.reset(endless(404));
    assert.equal(await client({}, 5_000).manifest('v1', ['a'], 1024), null);
    await closed('404');
    http.reset(endless(405));
    assert.equal(await client({}, 5_000).referrers(digest, 1024), null);
    await closed('referrers 405');
    http.reset(endless(500));
    await client({}, 5_000)
      .manifest('v1', ['a'], 1024)
      .catch(() => undefined);
    await closed('500');
    http.reset((req, res) => (req.url === MANIFEST ? endless(302, { Location: '/x' })(req, res) : res.writeHead(200).end('x')));
    await client({}, 5_000).manifest('v1', ['a'], 1024);
    await closed('302');
    http.reset((req, res) =>
      req.headers.authorization === BASIC
        ? res.writeHead(200).end('x')
        : endless(401, { 'WWW-Authenticate': 'Basic realm="r"' })(req, res),
    );
    await client({ credentials: CREDENTIALS }, 5_000).manifest('v1', ['a'], 1024);
    await closed('401');
    http.reset((req, res) =>
      req.url?.startsWith('/token')
        ? endless(403)(req, res)
        : res.writeHead(401, { 'WWW-Authenticate': `Bearer realm="http://${http.host}/token"` }).end(),
    );
    await client({}, 5_000)
      .manifest('v1', ['a'], 1024)
      .catch(() => undefined);
    await closed('token 403');
    http.reset(endless(200, { 'Content-Length': String(1024 * 1024 * 1024) }));
    await client({}, 5_000)
      .manifest('v1', ['a'], 1024)
      .catch(() => undefined);
    await closed('declared too large');
  });
});

describe('a registry that does not speak TLS where the agent does', () => {
  /** A TCP server on 127.0.0.1 that answers the agent's TLS hello with `bytes`; the client reaches it as a host that is not loopback. */
  async function answering(bytes: Buffer, read: (c: RegistryClient) => Promise<unknown>): Promise<unknown> {
    const sockets = new Set<Socket>();
    const server = createServer((socket) => {
      sockets.add(socket);
      socket.once('data', () => socket.end(bytes));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const host = `[::ffff:127.0.0.1]:${(server.address() as { port: number }).port}`;
      return await read(new RegistryClient({ host, path: 'p', credentials: null }, AbortSignal.timeout(10_000))).catch(
        (e: unknown) => e,
      );
    } finally {
      for (const socket of sockets) socket.destroy();
      server.close();
    }
  }

  it('names an HTTP request where a TLS record was expected (ERR_SSL_HTTP_REQUEST)', async () => {
    const e = await answering(Buffer.from('GET / HTTP/1.1\r\n\r\n'), (c) => c.manifest('v1', ['a'], 1024));
    assert.ok(e instanceof AgentError);
    assert.match(e.reason, /: it answers plain HTTP, not HTTPS \(ERR_SSL_HTTP_REQUEST\); /);
  });

  it("gives another TLS failure as OpenSSL's own message", async () => {
    // A TLS alert (handshake failure): EPROTO with a reason that is no plain-HTTP answer.
    const e = await answering(Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]), (c) => c.manifest('v1', ['a'], 1024));
    assert.ok(e instanceof AgentError, String(e));
    assert.equal(e.status, 502);
    const detail = /GET \/v2\/p\/manifests\/v1: (.*)\); nothing was pulled/s.exec(e.reason)?.[1] ?? '';
    assert.match(detail, /^write EPROTO .*alert handshake failure/);
    assert.doesNotMatch(detail, /plain HTTP/);
  });
});
