import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { openApiText } from '../../src/routes/openapi.js';
import { OpenApiChecker } from '../support/openapi.js';

describe('docs/openapi.json', () => {
  it('is what the agent schemas generate (run `node --import tsx scripts/openapi.ts` after changing a route)', () => {
    assert.equal(readFileSync('docs/openapi.json', 'utf8'), openApiText());
  });

  it('is OpenAPI 3.1 with the three endpoints, their answers, the error shape and the headers', () => {
    const doc = JSON.parse(openApiText()) as {
      openapi: string;
      paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
      components: { schemas: Record<string, unknown>; headers: Record<string, unknown> };
    };
    assert.equal(doc.openapi, '3.1.0');
    assert.deepEqual(Object.keys(doc.paths).sort(), ['/v1/deploy', '/v1/status', '/v1/stop']);
    assert.deepEqual(Object.keys(doc.paths['/v1/deploy'] ?? {}), ['post']);
    assert.deepEqual(Object.keys(doc.paths['/v1/status'] ?? {}), ['get']);
    assert.ok(doc.paths['/v1/deploy']?.['post']?.responses['422']);
    assert.ok(doc.components.schemas['Error'] && doc.components.headers['RequestId']);
  });

  const checker = OpenApiChecker.fromFile();
  const headers = (extra: Record<string, string> = {}) =>
    new Headers({ 'content-type': 'application/json; charset=utf-8', 'x-request-id': 'r1', ...extra });
  const deployed = {
    status: 'deployed',
    container_name: 'dreichor-runtime-dev',
    image: 'ghcr.io/x/runtime:v1',
    environment: 'dev',
    image_digest: `sha256:${'a'.repeat(64)}`,
    tag_digest: `sha256:${'a'.repeat(64)}`,
    container_id: 'c1',
    started_at: null,
    previous_image: null,
  };

  it('accepts answers as the agent gives them', () => {
    assert.deepEqual(checker.problems('POST', '/v1/deploy', 200, headers(), JSON.stringify(deployed)), []);
    const error = JSON.stringify({ status: 'error', reason: 'no' });
    assert.deepEqual(checker.problems('POST', '/v1/deploy', 409, headers(), error), []);
    assert.deepEqual(checker.problems('GET', '/nowhere', 404, headers(), error), []);
    assert.deepEqual(checker.problems('GET', '/v1/deploy', 405, headers({ allow: 'POST' }), error), []);
  });

  it('refuses an answer that differs from the document', () => {
    const bad = (what: string, problems: string[]) => assert.ok(problems.length > 0, `${what} passed`);
    bad('an extra field', checker.problems('POST', '/v1/deploy', 200, headers(), JSON.stringify({ ...deployed, extra: 1 })));
    bad(
      'a missing field',
      checker.problems('POST', '/v1/deploy', 200, headers(), JSON.stringify({ ...deployed, image: undefined })),
    );
    bad('an error as a 200', checker.problems('POST', '/v1/stop', 200, headers(), '{"status":"error","reason":"x"}'));
    bad(
      'no request id',
      checker.problems('POST', '/v1/deploy', 200, new Headers({ 'content-type': 'application/json' }), JSON.stringify(deployed)),
    );
    bad('an HTML error', checker.problems('GET', '/v1/status', 500, new Headers({ 'x-request-id': 'r' }), '<html>'));
    bad('a 405 without Allow', checker.problems('GET', '/v1/deploy', 405, headers(), '{"status":"error","reason":"x"}'));
  });
});
