import assert from 'node:assert/strict';
import { describe, it, mock } from 'node:test';
import type { Response } from 'express';
import { pino } from 'pino';
import { AgentError, type ErrorCode } from '../../../src/errors.js';
import { PER_MINUTE, RefusalThrottle } from '../../../src/http/refusals.js';
import {
  type AuditContext,
  authenticatedClient,
  clientIdOf,
  createReply,
  setAuditContext,
  setClientId,
} from '../../../src/http/respond.js';
import type { AuditLog } from '../../../src/state/audit.js';
import type { OutcomeRecord, RefusalSummary } from '../../../src/state/audit-records.js';

// createReply with a recording audit log and a fake response: the app tests reach it through Express,
// where the outcome of each status, the fields of the audit line and an unwritable line are not all seen.

interface Sent {
  status?: number;
  body?: unknown;
}

/** A response with what reply() reads and calls, recording what it sends. */
function fakeResponse(state: { headersSent?: boolean; destroyed?: boolean } = {}): { res: Response; sent: Sent } {
  const sent: Sent = {};
  const res = {
    locals: {},
    headersSent: state.headersSent ?? false,
    destroyed: state.destroyed ?? false,
    status(status: number) {
      sent.status = status;
      return this;
    },
    json(body: unknown) {
      sent.body = body;
      return this;
    },
  };
  return { res: res as unknown as Response, sent };
}

const context = (over: Partial<AuditContext> = {}): AuditContext => ({
  requestId: 'req-1',
  endpoint: '/v1/deploy',
  startedAt: Date.now(),
  image: 'registry.example/app:1',
  claimedClientId: 'claimed.access',
  ...over,
});

function setup(options: { failAudit?: boolean } = {}) {
  const lines: OutcomeRecord[] = [];
  const audit = {
    outcome: async (r: OutcomeRecord) => {
      if (options.failAudit === true) throw new Error('disk\n  full');
      lines.push(r);
    },
  } as unknown as AuditLog;
  const summaries: RefusalSummary[] = [];
  const refusals = new RefusalThrottle(async (s) => void summaries.push(s));
  const logged: string[] = [];
  const logger = pino({ level: 'error' }, { write: (line: string) => void logged.push(line) });
  return { reply: createReply(audit, refusals, logger), lines, refusals, summaries, logged };
}

/** Replies once for an authenticated (or not) request with this context, returning the audit line. */
async function outcomeFor(status: number, body: object, code?: ErrorCode, clientId: string | null = 'ops.access') {
  const { reply, lines } = setup();
  const { res, sent } = fakeResponse();
  setAuditContext(res, context());
  if (clientId !== null) setClientId(res, clientId);
  await reply(res, status, body, code);
  assert.equal(sent.status, status);
  assert.deepEqual(sent.body, body);
  return lines[0];
}

describe('createReply: the audit line before the answer', () => {
  it('names the outcome of each answer', async () => {
    assert.equal((await outcomeFor(200, { status: 'stopped' }))?.outcome, 'stopped');
    assert.equal((await outcomeFor(200, { status: 'deployed' }))?.outcome, 'deployed');
    assert.equal((await outcomeFor(200, {}))?.outcome, 'deployed');
    assert.equal((await outcomeFor(499, { status: 'error', reason: 'x' }, 'caller_gone'))?.outcome, 'abandoned');
    assert.equal((await outcomeFor(499, { status: 'error', reason: 'x' }))?.outcome, 'refused');
    assert.equal((await outcomeFor(500, { status: 'error', reason: 'x' }))?.outcome, 'failed');
  });

  it('writes the request, the caller, the reason and the duration; never a claimed id for a client', async () => {
    mock.timers.enable({ apis: ['Date'], now: 10_000 });
    try {
      const { reply, lines } = setup();
      const { res } = fakeResponse();
      setAuditContext(res, context({ startedAt: 9_250 }));
      setClientId(res, 'ops.access');
      await reply(res, 409, { status: 'error', reason: 'busy' }, 'busy');
      assert.deepEqual(lines[0], {
        requestId: 'req-1',
        clientId: 'ops.access',
        claimedClientId: null,
        endpoint: '/v1/deploy',
        image: 'registry.example/app:1',
        outcome: 'refused',
        status: 409,
        reason: 'busy',
        durationMs: 750,
      });
    } finally {
      mock.timers.reset();
    }
  });

  it('records the claimed id of a request that failed authentication, and no reason when none is a string', async () => {
    const line = await outcomeFor(401, { status: 'error', reason: 42 }, undefined, null);
    assert.equal(line?.clientId, null);
    assert.equal(line?.claimedClientId, 'claimed.access');
    assert.equal(line?.reason, null);
  });

  it("adds a body's provenance, and the digests of a deploy that answered 200 only", async () => {
    const provenance = { builder: 'ci' };
    const digests = { tag: 'sha256:aa', image: 'sha256:bb' };
    for (const [status, withDigests] of [
      [200, true],
      [502, false],
    ] as const) {
      const { reply, lines } = setup();
      const { res } = fakeResponse();
      setAuditContext(res, { ...context(), digests });
      setClientId(res, 'ops.access');
      await reply(res, status, { status: 'deployed', provenance });
      assert.deepEqual(lines[0]?.provenance, provenance);
      assert.deepEqual(lines[0]?.digests, withDigests ? digests : undefined);
      assert.equal('digests' in (lines[0] ?? {}), withDigests);
    }
    assert.equal('provenance' in ((await outcomeFor(200, { provenance: null })) ?? {}), false);
    assert.equal('provenance' in ((await outcomeFor(200, { provenance: 'ci' })) ?? {}), false);
  });

  it('a success whose audit line cannot be written answers 500, saying both; a refusal keeps its status', async () => {
    const { reply, logged } = setup({ failAudit: true });
    const { res, sent } = fakeResponse();
    setAuditContext(res, context());
    setClientId(res, 'ops.access');
    await reply(res, 200, { status: 'deployed' });
    assert.equal(sent.status, 500);
    assert.deepEqual(sent.body, {
      status: 'error',
      reason: 'the request succeeded ({"status":"deployed"}) but its audit line could not be written: disk full',
    });
    assert.match(logged[0] ?? '', /"requestId":"req-1".*"msg":"audit line not written"/);
    const refused = fakeResponse();
    setAuditContext(refused.res, context());
    await reply(refused.res, 401, { status: 'error', reason: 'no' });
    assert.equal(refused.sent.status, 401);
  });

  it('answers a request without an audit context without writing anything', async () => {
    const { reply, lines } = setup();
    const { res, sent } = fakeResponse();
    await reply(res, 200, { status: 'ok' });
    assert.equal(lines.length, 0);
    assert.equal(sent.status, 200);
  });

  it('sends nothing to a caller gone or already answered, yet audits', async () => {
    for (const state of [{ headersSent: true }, { destroyed: true }]) {
      const { reply, lines } = setup();
      const { res, sent } = fakeResponse(state);
      setAuditContext(res, context());
      await reply(res, 401, { status: 'error', reason: 'no' });
      assert.equal(lines.length, 1);
      assert.deepEqual(sent, {});
    }
  });

  it('beyond the rate, counts refusals before authentication; an authenticated request is always written', async () => {
    const { reply, lines, refusals, summaries } = setup();
    for (let i = 0; i < PER_MINUTE; i += 1) assert.equal(refusals.admit(), true);
    const anonymous = fakeResponse();
    setAuditContext(anonymous.res, context({ endpoint: '/v1/stop' }));
    await reply(anonymous.res, 401, { status: 'error', reason: 'no' });
    assert.equal(lines.length, 0);
    assert.equal(anonymous.sent.status, 401);
    const client = fakeResponse();
    setAuditContext(client.res, context());
    setClientId(client.res, 'ops.access');
    await reply(client.res, 409, { status: 'error', reason: 'busy' });
    assert.equal(lines.length, 1);
    await refusals.close();
    assert.deepEqual(
      summaries.map((s) => [s.count, s.endpoints, s.statuses]),
      [[1, { '/v1/stop': 1 }, { '401': 1 }]],
    );
  });

  it('a refusal without an audit context takes none of the slots of those audited one by one', async () => {
    const { reply, lines } = setup();
    for (let i = 0; i < PER_MINUTE + 5; i += 1) await reply(fakeResponse().res, 404, { status: 'error', reason: 'no' });
    const { res } = fakeResponse();
    setAuditContext(res, context());
    await reply(res, 401, { status: 'error', reason: 'no' });
    assert.equal(lines.length, 1, 'audited alone, not counted');
  });
});

describe('the authenticated client of a response', () => {
  it('is the id set by authentication, and its absence is an internal error', () => {
    const { res } = fakeResponse();
    assert.equal(clientIdOf(res), null);
    assert.throws(
      () => authenticatedClient(res),
      (e: unknown) =>
        e instanceof AgentError && e.status === 500 && e.code === 'internal' && /without authentication/.test(e.reason),
    );
    res.locals.clientId = 7;
    assert.equal(clientIdOf(res), null, 'only a string is a client id');
    setClientId(res, 'ops.access');
    assert.equal(clientIdOf(res), 'ops.access');
    assert.equal(authenticatedClient(res), 'ops.access');
  });
});
