import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { Engine } from '../../src/docker.js';
import type { RunningAgent } from '../../src/http/app.js';
import { parseImageReference } from '../../src/policy/image.js';
import { engine, repository, startTestAgent, type TestAgent, TOKEN } from '../support/harness.js';

/**
 * Hostile input: generated requests (methods, paths, headers, content types, sizes, unicode and
 * reference-grammar edge cases) thrown at the real agent. Every answer must be a JSON error or a
 * status, never a 5xx; the process must stay up; and no refused request may reach an engine call
 * that changes anything. The engine is the real one, with its mutating calls recorded.
 */
const RUNS = Number(process.env['FUZZ_RUNS'] ?? 10_000);
const MUTATING = ['pull', 'create', 'start', 'stop', 'remove', 'rename'] as const;
const READING = ['resolveTag', 'inspectImage', 'inspectContainer', 'networkExists', 'listByLabels', 'logsTail'] as const;

interface Generated {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string | null;
}

const tagChars = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-:@/ '.split(''));

describe('hostile input', () => {
  let t: TestAgent;
  const calls: string[] = [];

  before(async () => {
    // Record every mutating engine call the agent makes, and let it through to the real engine.
    const original = Engine.prototype;
    for (const name of [...MUTATING, ...READING]) {
      const fn = original[name] as (...args: unknown[]) => Promise<unknown>;
      Object.defineProperty(original, name, {
        configurable: true,
        writable: true,
        value: function recorded(this: Engine, ...args: unknown[]) {
          calls.push(name);
          return fn.apply(this, args);
        },
      });
    }
    t = await startTestAgent({}, { environment: 'prod' });
  });
  after(async () => {
    await t.cleanup();
  });

  it(`${RUNS} generated requests: no 5xx, JSON errors only, no engine change for a refused request`, async () => {
    const repo = repository();
    const reference = fc.oneof(
      fc.string({ unit: 'grapheme', maxLength: 80 }),
      fc.stringMatching(/^[a-z0-9.:/_@-]{0,120}$/),
      fc.array(tagChars, { maxLength: 140 }).map((cs) => `${repo}:${cs.join('')}`),
      // Shapes that make backtracking reference parsers explode.
      fc
        .tuple(
          fc.constantFrom('-', 'a-', 'a_', 'v1', 'a.', '__'),
          fc.integer({ min: 1, max: 250 }),
          fc.constantFrom('', '!', ':', '@', '-'),
        )
        .map(([unit, n, end]) => `${repo}:${unit.repeat(n)}${end}`),
      fc.constantFrom(
        `${repo}:latest`,
        `${repo}:LATEST`,
        repo,
        `${repo}:`,
        `${repo}@sha256:${'a'.repeat(64)}`,
        `${repo}:v1@sha256:${'a'.repeat(63)}`,
        `${repo}-x:v1`,
        `${repo}/x:v1`,
        `${repo}:v1\u0000`,
        `${repo}:v1\n`,
        `${repo}:\u00e9`,
        `${repo.toUpperCase()}:v1`,
      ),
    );
    const body = fc.oneof(
      { arbitrary: fc.record({ image: reference }).map((o) => JSON.stringify(o)), weight: 6 },
      fc.record({ image: reference }, { requiredKeys: [] }).map((o) => JSON.stringify(o)),
      fc
        .record({ image: reference, environment: fc.oneof(fc.constantFrom('dev', 'prod', 'PROD', ''), fc.string()) })
        .map((o) => JSON.stringify(o)),
      fc
        .tuple(
          reference,
          fc.constantFrom('container_name', 'volumes', 'env', 'command', 'network', '__proto__', 'constructor', 'Image'),
          fc.jsonValue(),
        )
        .map(([image, key, extra]) => JSON.stringify({ image, [key]: extra })),
      fc.jsonValue().map((v) => JSON.stringify(v)),
      fc.string({ unit: 'binary', maxLength: 300 }),
      fc.constantFrom('', '{', '{"image":', '{"image":"a"}}', '\u0000', 'x'.repeat(5000), `{"image":"${'a'.repeat(4100)}"}`),
      fc.constant(null),
    );
    // Weighted so that most requests get past routing and authentication to the body and the
    // image policy, where the interesting refusals are; the rest probe the outer layers.
    const printable = (max: number) => fc.string({ maxLength: max }).filter((v) => /^[\x21-\x7e]*$/.test(v));
    const secret = fc.oneof(
      { arbitrary: fc.constant(TOKEN.secret), weight: 8 },
      fc.constant(TOKEN.secret.toUpperCase()),
      printable(40),
    );
    const id = fc.oneof({ arbitrary: fc.constant(TOKEN.id), weight: 8 }, printable(40));
    const contentType = fc.oneof(
      { arbitrary: fc.constantFrom('application/json', 'application/json; charset=utf-8', 'APPLICATION/JSON'), weight: 6 },
      fc.constantFrom(
        'text/plain',
        'application/x-www-form-urlencoded',
        'application/json; charset=latin1',
        'multipart/form-data; boundary=x',
        '',
        'application/jsonx',
      ),
    );
    const sometimes = <T>(a: fc.Arbitrary<T>) => fc.option(a, { freq: 10, nil: undefined });
    const generated: fc.Arbitrary<Generated> = fc.record({
      method: fc.oneof(
        { arbitrary: fc.constant('POST'), weight: 6 },
        fc.constantFrom('GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'),
      ),
      path: fc.oneof(
        { arbitrary: fc.constantFrom('/v1/deploy', '/v1/deploy', '/v1/deploy', '/v1/stop', '/v1/status'), weight: 8 },
        fc.constantFrom(
          '/v1/deploy/',
          '/V1/DEPLOY',
          '/v1/deploy?x=1',
          '/v1/%64eploy',
          '//v1/deploy',
          '/v1/deploy/..',
          '/',
          '/v1/deploy%00',
        ),
        fc.webPath(),
      ),
      headers: fc
        .record({
          id: sometimes(id),
          secret: sometimes(secret),
          type: sometimes(contentType),
          jwt: fc.option(printable(50), { freq: 5, nil: undefined }),
        })
        .map(({ id: i, secret: sec, type, jwt }) => {
          const h: Record<string, string> = {};
          if (i !== undefined) h['cf-access-client-id'] = i;
          if (sec !== undefined) h['cf-access-client-secret'] = sec;
          if (type !== undefined) h['content-type'] = type;
          if (jwt !== undefined) h['cf-access-jwt-assertion'] = jwt;
          return h;
        }),
      body,
    });

    let count = 0;
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(
        generated.filter((g) => !wouldDeploy(g, repo)),
        async (g) => {
          const before = calls.length;
          const res = await send(t.agent, g);
          count += 1;
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          assert.ok(res.status < 500, `${res.status} for ${JSON.stringify(g).slice(0, 300)}: ${res.text}`);
          if (g.method !== 'HEAD') {
            assert.match(res.contentType, /^application\/json/, `not JSON: ${JSON.stringify(g).slice(0, 200)}`);
            const parsed = JSON.parse(res.text) as Record<string, unknown>;
            if (res.status !== 200) {
              assert.equal(parsed['status'], 'error');
              assert.equal(typeof parsed['reason'], 'string');
            }
          }
          // Only an accepted stop may touch the engine; and it has nothing to stop here.
          const changed = calls
            .slice(before)
            .filter((c) => (MUTATING as readonly string[]).includes(c) && c !== 'stop' && c !== 'remove');
          assert.deepEqual(changed, [], `engine changed by ${JSON.stringify(g).slice(0, 300)}`);
        },
      ),
      { numRuns: RUNS, interruptAfterTimeLimit: 600_000 },
    );
    assert.equal(count, RUNS, 'every generated request was sent');
    assert.deepEqual(await engine.named(t.config.containerName), [], 'nothing was created');
    // The agent is still up and well.
    assert.equal((await t.api.status()).status, 200);
    process.stdout.write(`# fuzz: ${count} requests, statuses ${JSON.stringify(Object.fromEntries(statuses))}\n`);
  });

  it('10,000 requests with a wrong token cause no engine call at all', async () => {
    const before = calls.length;
    const wrong: Record<string, string>[] = [
      {
        'cf-access-client-id': TOKEN.id,
        'cf-access-client-secret': 'wrong-secret-0123456789',
        'content-type': 'application/json',
      },
      { 'cf-access-client-id': 'intruder.access', 'cf-access-client-secret': TOKEN.secret, 'content-type': 'application/json' },
      { 'content-type': 'application/json' },
    ];
    const paths: [string, string][] = [
      ['POST', '/v1/deploy'],
      ['GET', '/v1/status'],
      ['POST', '/v1/stop'],
    ];
    const counts = new Map<number, number>();
    for (let batch = 0; batch < 100; batch += 1) {
      const answers = await Promise.all(
        Array.from({ length: 100 }, (_, i) => {
          const [method, path] = paths[i % 3] ?? ['GET', '/v1/status'];
          return send(t.agent, {
            method,
            path,
            headers: wrong[(batch + i) % 3] ?? {},
            body: method === 'POST' ? JSON.stringify({ image: `${repository()}:v1` }) : null,
          });
        }),
      );
      for (const a of answers) counts.set(a.status, (counts.get(a.status) ?? 0) + 1);
    }
    assert.deepEqual(Object.fromEntries(counts), { 401: 10_000 });
    assert.deepEqual(calls.slice(before), [], 'not one engine call');
  });
});

/** The one request shape that would really deploy: valid everything. Filtered out of the run. */
function wouldDeploy(g: Generated, repo: string): boolean {
  if (g.method !== 'POST' || !/^\/v1\/deploy(\?.*)?$/.test(g.path) || g.body === null) return false;
  if (g.headers['cf-access-client-id'] !== TOKEN.id || g.headers['cf-access-client-secret'] !== TOKEN.secret) return false;
  try {
    const body = JSON.parse(g.body) as { image?: unknown };
    if (typeof body.image !== 'string') return false;
    parseImageReference(body.image, { repository: repo, environment: 'prod' });
    return true;
  } catch {
    return false;
  }
}

function send(agent: RunningAgent, g: Generated): Promise<{ status: number; contentType: string; text: string }> {
  return new Promise((resolve, reject) => {
    const url = new URL(agent.url);
    const headers: Record<string, string | number> = { ...g.headers };
    if (g.body !== null) headers['content-length'] = Buffer.byteLength(g.body);
    const req = request(
      { host: url.hostname, port: url.port, method: g.method, path: g.path, headers, timeout: 20_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            contentType: String(res.headers['content-type'] ?? ''),
            text: Buffer.concat(chunks).toString('utf8'),
          }),
        );
      },
    );
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.end(g.body ?? undefined);
  });
}
