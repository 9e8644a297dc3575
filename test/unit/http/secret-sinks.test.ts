import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { pino } from 'pino';
import { secretsOf } from '../../../src/config/config.js';
import { Deployer } from '../../../src/deploy/deployer.js';
import { createApp } from '../../../src/http/app.js';
import { SECRET_MARKER } from '../../../src/http/header-guard.js';
import { RefusalThrottle } from '../../../src/http/refusals.js';
import { formsOf } from '../../../src/policy/redact-forms.js';
import { fold, viewsOf } from '../../../src/policy/redact-views.js';
import { AuditLog } from '../../../src/state/audit.js';
import { writeFileAtomic } from '../../../src/state/files.js';
import { DeployJournal } from '../../../src/state/journal.js';
import { StateStore } from '../../../src/state/state.js';
import { FakeEngine } from '../../support/fake-engine.js';
import { UNIT_REPOSITORY, unitConfig } from '../../support/unit-config.js';

/**
 * No secret is ever written, in any form, from any header: every configured secret (the service token
 * secret, the rotating one, the registry password), sent in every header a caller could put it in (and
 * the URL), in every encoding the redactor knows, is looked for in every sink the agent writes: its
 * log (stdout), the audit log, the deploy journal and the state file. Every write to the journal and
 * the state is captured, not only what is left on disk at the end.
 *
 * The secrets are generated (visible ASCII, 16 to 64 characters; one of them shaped like a client id,
 * `….access`, to get past the client id grammar): SECRET_SINKS_RUNS sets how many sets (default 1),
 * SECRET_SINKS_SEED the seed (printed).
 */
const PLACES = [
  'cf-access-client-id',
  'cf-access-client-secret',
  'cf-access-jwt-assertion',
  'authorization',
  'cookie',
  'cf-ray',
  'user-agent',
  'x-request-id',
  'x-forwarded-for',
  'url query',
  'url path',
] as const;
type Place = (typeof PLACES)[number];
const SINKS = ['stdout log', 'audit', 'journal', 'state'] as const;
type Sink = (typeof SINKS)[number];

// On tmpfs where there is one: every request fsyncs the audit log, the journal or the state.
const root = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'dreichor-secret-sinks-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** Every form the redactor finds, and what a caller's tooling may add: percent-encoding, \u escapes, upper case. */
function sentForms(secret: string): string[] {
  const escaped = [...secret].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('');
  return [...new Set([...formsOf(secret), encodeURIComponent(secret), escaped, secret.toUpperCase()])];
}

interface World {
  readonly url: string;
  readonly clientId: string;
  readonly primary: string;
  readonly sinks: Record<Sink, string[]>;
  readonly engine: FakeEngine;
  readonly auditFile: string;
  close(): Promise<void>;
}

let worlds = 0;
async function world(secrets: readonly [string, string, string]): Promise<World> {
  worlds += 1;
  const dir = join(root, `w${worlds}`);
  const config = unitConfig(dir, {
    CF_ACCESS_CLIENT_SECRET: secrets[0],
    CF_ACCESS_ROTATION_CLIENT_ID: 'next.access',
    CF_ACCESS_ROTATION_CLIENT_SECRET: secrets[1],
    REGISTRY_USERNAME: 'puller',
    REGISTRY_PASSWORD: secrets[2],
  });
  assert.deepEqual(
    secretsOf(config).map((s) => s.value),
    [...secrets],
  );
  const sinks: Record<Sink, string[]> = { 'stdout log': [], audit: [], journal: [], state: [] };
  const capture = (sink: Sink) => async (file: string, content: string) => {
    sinks[sink].push(content);
    await writeFileAtomic(file, content);
  };
  const logger = pino(
    { level: 'trace' },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        sinks['stdout log'].push(chunk.toString('utf8'));
        done();
      },
    }),
  );
  const engine = new FakeEngine();
  const auditFile = join(config.stateDir, 'audit.jsonl');
  const store = await StateStore.open(config.stateDir, capture('state'));
  const audit = await AuditLog.open(auditFile);
  const deployer = new Deployer({
    // The rules, not the waiting: the scripted runtime is checked for 10 ms.
    config: { ...config, startCheckSeconds: 0.01 },
    engine,
    store,
    audit,
    journal: new DeployJournal(config.stateDir, capture('journal')),
    logger,
  });
  // Every refusal is audited one by one: a minute passes between any two.
  let clock = 0;
  const refusals = new RefusalThrottle((summary, reason) => audit.refusalsCounted(summary, reason), {
    now: () => (clock += 61_000),
  });
  const app = createApp({ config, deployer, audit, refusals, logger, verifyJwt: null });
  const server: Server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    clientId: config.serviceTokens[0]?.clientId ?? '',
    primary: secrets[0],
    sinks,
    engine,
    auditFile,
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await deployer.shutdown();
      await audit.close();
    },
  };
}

/**
 * Sends `form` in each of `places` on a deploy (audited, journaled, recorded in the state), a stop
 * and a status; the rest of each request is right. The places that do not decide where a request
 * goes (every header but the two token headers, and the query) are sent together, in one request.
 */
async function send(w: World, places: readonly Place[], form: string): Promise<void> {
  for (const [method, path, body] of [
    ['POST', '/v1/deploy', JSON.stringify({ image: `${UNIT_REPOSITORY}:v1` })],
    ['POST', '/v1/stop', '{}'],
    ['GET', '/v1/status', undefined],
  ] as const) {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'cf-access-client-id': w.clientId,
      'cf-access-client-secret': w.primary,
    };
    let url = `${w.url}${path}`;
    for (const place of places) {
      if (place === 'url query') url += `?token=${encodeURIComponent(form)}`;
      else if (place === 'url path') url += `/${encodeURIComponent(form)}`;
      // The two token headers swapped: the client id header carries the secret, the secret header the id.
      else if (place === 'cf-access-client-id') Object.assign(headers, { [place]: form, 'cf-access-client-secret': w.clientId });
      else headers[place] = form;
    }
    if (path === '/v1/stop') w.engine.seed('dreichor-runtime-dev');
    const res = await fetch(url, { method, headers, ...(body === undefined ? {} : { body }) });
    await res.arrayBuffer();
  }
}

/** The requests of one form: each place that decides the route alone, the others together. */
const ROUTING: readonly Place[] = ['cf-access-client-id', 'cf-access-client-secret', 'url path'];
const REQUESTS: readonly (readonly Place[])[] = [...ROUTING.map((p) => [p]), PLACES.filter((p) => !ROUTING.includes(p))];

/** Whether any decoded view of any line of `text` holds any form of `secret`, case folded. */
function holds(text: string, secret: string): boolean {
  const forms = sentForms(secret).map(fold);
  for (const line of text.split('\n')) {
    for (const view of viewsOf(line))
      if (forms.some((f) => view.text.includes(f))) {
        if (process.env['DEBUG_SINKS']) process.stderr.write(`LEAK ${line}\n`);
        return true;
      }
  }
  return false;
}

// Visible ASCII, as the configuration now requires; one shaped like a client id.
const secretArb = fc.stringMatching(/^[\x21-\x7e]{16,64}$/);
const idShapedArb = fc.stringMatching(/^[a-f0-9]{12,40}$/).map((s) => `${s}.access`);

describe('no secret is written from any header', () => {
  it('every secret x every header x every form x every sink', async () => {
    const seed = Number(process.env['SECRET_SINKS_SEED'] ?? Date.now() % 1_000_000);
    const numRuns = Number(process.env['SECRET_SINKS_RUNS'] ?? 1);
    let combinations = 0;
    let formsSent = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.tuple(secretArb, idShapedArb, secretArb).filter(([a, b, c]) => new Set([a, b, c]).size === 3),
        async (secrets) => {
          const w = await world(secrets);
          try {
            for (const secret of secrets) {
              for (const form of sentForms(secret)) {
                formsSent += 1;
                for (const places of REQUESTS) await send(w, places, form);
              }
            }
          } finally {
            await w.close();
          }
          w.sinks.audit.push(readFileSync(w.auditFile, 'utf8'));
          for (const sink of SINKS) {
            const text = w.sinks[sink].join('\n');
            for (const [i, secret] of secrets.entries()) {
              assert.ok(!holds(text, secret), `the ${sink} holds secret #${i} (${secret.slice(0, 3)}...) in some form`);
            }
          }
          // The test sent what it claims: the swapped headers reached the audit log, as a marker.
          const claimed = w.sinks.audit
            .join('\n')
            .split('\n')
            .filter((l) => l.includes('claimed_client_id'))
            .map((l) => (JSON.parse(l) as Record<string, unknown>)['claimed_client_id']);
          assert.ok(claimed.includes(SECRET_MARKER), 'a swapped secret was audited as the marker');
          assert.ok(w.sinks.journal.length > 0 && w.sinks.state.length > 0, 'the journal and state were written');
          combinations += secrets.reduce((n, s) => n + sentForms(s).length, 0) * PLACES.length * SINKS.length;
        },
      ),
      { numRuns, seed, endOnFailure: true },
    );
    process.stdout.write(
      `# secret sinks (seed ${seed}, runs ${numRuns}): ${combinations} secret x header x form x sink combinations checked (${formsSent} forms x ${PLACES.length} places x ${SINKS.length} sinks)\n`,
    );
    assert.ok(combinations > 0);
  });
});
