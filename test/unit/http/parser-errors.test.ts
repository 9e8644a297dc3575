import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { type RunningAgent, startAgent } from '../../../src/http/app.js';
import { type AccessStandIn, AUD, startAccessStandIn, TEAM } from '../../support/jwks.js';
import { unitConfig } from '../../support/unit-config.js';

/**
 * What Node's HTTP parser refuses before Express sees it, and the status fast path's own failures,
 * answered by the real agent on an ephemeral port: every error is the JSON shape with an
 * X-Request-Id. No engine is needed: nothing here gets that far.
 */
const root = mkdtempSync(join(tmpdir(), 'dreichor-parser-errors-'));
after(() => rmSync(root, { recursive: true, force: true }));
const SECRET = 'a-secret-of-enough-length';
const AUTH = { 'cf-access-client-id': 'client.access', 'cf-access-client-secret': SECRET, 'content-type': 'application/json' };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let n = 0;
async function agent(extra: Record<string, string> = {}, level: pino.Level = 'info') {
  n += 1;
  const lines: string[] = [];
  const logger = pino(
    { level },
    new Writable({
      write(chunk: Buffer, _e, done) {
        lines.push(chunk.toString('utf8'));
        done();
      },
    }),
  );
  const config = unitConfig(join(root, `a${n}`), { DOCKER_HOST: `unix://${join(root, 'no-engine.sock')}`, ...extra });
  const running = await startAgent(config, { logger, port: 0, accessJwt: { fetchTimeoutMs: 1_000 } });
  return { running, logs: () => lines.join('') };
}

/** Sends raw bytes, returns everything the agent answered before it closed the connection. */
function raw(a: RunningAgent, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(a.port, '127.0.0.1');
    let answer = '';
    socket.setEncoding('utf8');
    socket.on('data', (c: string) => (answer += c));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(answer));
    socket.setTimeout(5_000, () => {
      socket.destroy();
      reject(new Error(`no answer in 5 s: ${answer}`));
    });
    socket.write(bytes);
  });
}

function assertJsonError(answer: string, status: number): void {
  const [head = '', body = ''] = answer.split('\r\n\r\n');
  assert.match(head, new RegExp(`^HTTP/1\\.1 ${status} `), answer);
  assert.match(head, /\r\ncontent-type: application\/json/i, answer);
  const id = /\r\nx-request-id: (\S+)/i.exec(head)?.[1] ?? '';
  assert.match(id, UUID, answer);
  const json = JSON.parse(body) as Record<string, unknown>;
  assert.equal(json['status'], 'error');
  assert.equal(typeof json['reason'], 'string');
}

describe('errors of the HTTP parser', () => {
  let a: Awaited<ReturnType<typeof agent>>;
  before(async () => {
    a = await agent();
  });
  after(() => a.running.close());

  it('a header block over 16 KiB: 431, JSON, with a request id', async () => {
    const answer = await raw(a.running, `GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    assertJsonError(answer, 431);
  });

  it('a request line that does not parse: 400, JSON, with a request id', async () => {
    assertJsonError(await raw(a.running, 'GARBAGE\r\n\r\n'), 400);
    assertJsonError(await raw(a.running, 'GET /v1/status HTTP/1.1\r\nBad Header\r\n\r\n'), 400);
  });

  it('Expect other than 100-continue: 417, JSON, with a request id', async () => {
    const answer = await raw(
      a.running,
      `POST /v1/deploy HTTP/1.1\r\nHost: x\r\nExpect: foo\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`,
    );
    assertJsonError(answer, 417);
    assert.match(a.logs(), /"status":417/, 'and a log line');
  });

  it('logs the path without its query and a cf-ray only of a ray id shape', async () => {
    const res = await fetch(`${a.running.url}/v1/status?secret=query-secret-value`, {
      headers: { ...AUTH, 'cf-access-client-secret': 'wrong-secret-0123456789', 'cf-ray': 'r'.repeat(5_000) },
    });
    assert.equal(res.status, 401);
    const line =
      a
        .logs()
        .split('\n')
        .find((l) => l.includes(res.headers.get('x-request-id') ?? '-')) ?? '';
    assert.match(line, /"url":"\/v1\/status"/, line);
    assert.ok(!a.logs().includes('query-secret-value'), 'no query string in the log');
    assert.ok(!a.logs().includes('rrrrrrrrrrrrrrrrrrrrrrrrrrrrrr'), 'no unbounded cf-ray in the log');
    assert.match(line, /"cf_ray":"\[withheld: not a ray id\]"/);
  });
});

describe('the status fast path, with the Access JWT check', () => {
  let access: AccessStandIn;
  let hanging: Server;
  let hits = 0;
  let hangingUrl = '';
  before(async () => {
    access = await startAccessStandIn();
    // A key endpoint that accepts the connection and never answers.
    hanging = createServer(() => {
      hits += 1;
    });
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
    hangingUrl = `http://127.0.0.1:${(hanging.address() as AddressInfo).port}/cdn-cgi/access/certs`;
  });
  after(async () => {
    hanging.closeAllConnections();
    hanging.close();
    await access.close();
  });

  it('a hanging key endpoint: one verification, 503 keys_unavailable after one timeout, with a request id', async () => {
    const a = await agent({ CF_ACCESS_TEAM_DOMAIN: TEAM, CF_ACCESS_AUD: AUD, CF_ACCESS_CERTS_URL: hangingUrl });
    try {
      const started = Date.now();
      const res = await fetch(`${a.running.url}/v1/status`, {
        headers: { ...AUTH, 'cf-access-jwt-assertion': await access.sign() },
      });
      const took = Date.now() - started;
      const body = (await res.json()) as Record<string, unknown>;
      assert.equal(res.status, 503, JSON.stringify(body));
      assert.match(String(body['reason']), /signing keys could not be fetched/);
      assert.match(res.headers.get('x-request-id') ?? '', UUID);
      assert.equal(hits, 1, 'the keys were asked for once');
      assert.ok(took < 1_800, `one fetch timeout, not two (${took} ms)`);
    } finally {
      await a.running.close();
    }
  });

  it('a bad JWT on the fast path: 401 with a request id; a key set that does not parse: 503', async () => {
    const a = await agent({ CF_ACCESS_TEAM_DOMAIN: TEAM, CF_ACCESS_AUD: AUD, CF_ACCESS_CERTS_URL: access.certsUrl });
    const html = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<html>login</html>'));
    await new Promise<void>((resolve) => html.listen(0, '127.0.0.1', resolve));
    const b = await agent({
      CF_ACCESS_TEAM_DOMAIN: TEAM,
      CF_ACCESS_AUD: AUD,
      CF_ACCESS_CERTS_URL: `http://127.0.0.1:${(html.address() as AddressInfo).port}/certs`,
    });
    try {
      const bad = await fetch(`${a.running.url}/v1/status`, {
        headers: { ...AUTH, 'cf-access-jwt-assertion': await access.sign({ aud: 'another-app' }) },
      });
      assert.equal(bad.status, 401);
      assert.match(bad.headers.get('x-request-id') ?? '', UUID);
      assert.match(a.logs(), /"statusCode":401/, 'the refusal is logged');
      // No engine here: the deployer's own part of the status is stood in for; the route adds the keys' age.
      Object.assign(a.running.deployer, { status: () => Promise.resolve({ running: false }) });
      const ok = await fetch(`${a.running.url}/v1/status`, {
        headers: { ...AUTH, 'cf-access-jwt-assertion': await access.sign() },
      });
      const status = (await ok.json()) as Record<string, unknown>;
      assert.equal(ok.status, 200, JSON.stringify(status));
      assert.equal(status['access_keys_age_seconds'], 0, JSON.stringify(status));
      for (const [method, path] of [
        ['GET', '/v1/status'],
        ['POST', '/v1/stop'],
      ] as const) {
        const res = await fetch(`${b.running.url}${path}`, {
          method,
          headers: { ...AUTH, 'cf-access-jwt-assertion': await access.sign() },
          ...(method === 'POST' ? { body: '{}' } : {}),
        });
        assert.equal(res.status, 503, `${path}: ${await res.text()}`);
      }
    } finally {
      await a.running.close();
      await b.running.close();
      html.close();
    }
  });
});
