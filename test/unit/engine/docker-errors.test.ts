import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { translate } from '../../../src/engine/docker-errors.js';
import { AgentError } from '../../../src/errors.js';
import { createRedactor } from '../../../src/policy/redact.js';

/** What leaves the engine wrapper when the engine refuses: a reason, and a cause, both masked. */
const SECRET = 'postgres://trader:Sup3r-s3cret-pw@db.internal/dreichor';
const redact = createRedactor([{ name: 'DATABASE_URL', value: SECRET }]);

describe('engine errors', () => {
  it('the raw engine error kept as the cause is masked too: loggers print causes', () => {
    const raw = Object.assign(new Error(`(HTTP code 500) server error - exec failed: ${SECRET}`), {
      statusCode: 500,
      json: { message: `exec failed: ${SECRET}` },
    });
    const error = translate('start of container 0123', raw, new AbortController().signal, 10_000, redact);
    assert.ok(error instanceof AgentError);
    assert.doesNotMatch(error.reason, /Sup3r/);
    assert.match(error.reason, /\[DATABASE_URL\]/);
    const cause = error.cause as Error & { statusCode?: number };
    assert.ok(cause instanceof Error);
    assert.doesNotMatch(cause.message, /Sup3r/);
    assert.equal(cause.statusCode, 500, 'the engine status is kept');

    // What pino writes for it, causes included.
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(line) });
    logger.error({ err: error }, 'deploy failed');
    assert.equal(lines.length, 1);
    assert.doesNotMatch(lines[0] ?? '', /Sup3r/);
  });

  it('an unreachable engine keeps its code in the cause', () => {
    const raw = Object.assign(new Error(`connect ECONNREFUSED /run/docker.sock ${SECRET}`), { code: 'ECONNREFUSED' });
    const error = translate('inspect of container x', raw, new AbortController().signal, 10_000, redact);
    assert.ok(error instanceof AgentError);
    assert.equal(error.status, 503);
    assert.equal((error.cause as NodeJS.ErrnoException).code, 'ECONNREFUSED');
    assert.doesNotMatch(String((error.cause as Error).message), /Sup3r/);
  });
});
