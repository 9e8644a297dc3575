import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { createRedactor, runtimeSecrets, tail } from '../../../src/policy/redact.js';
import { propertyRuns } from '../../support/sampling.js';

const ENV = {
  DATABASE_URL: 'postgres://trader:S3cr3t-pa55w0rd@db.internal:5432/dreichor',
  REDIS_URL: 'redis://:r3dis-pass%21@cache:6379/0',
  API_KEY: 'ak_live_0123456789',
  SAFETY_MODE: 'on',
  LOG_LEVEL: 'info',
};

describe('masking secrets in text from the runtime', () => {
  const redact = createRedactor(runtimeSecrets(ENV));

  it('replaces every value of 6 characters or more by a marker naming its variable', () => {
    assert.equal(redact(`connecting to ${ENV.DATABASE_URL} now`), 'connecting to [DATABASE_URL] now');
    assert.equal(redact(`key=${ENV.API_KEY}; key again ${ENV.API_KEY}`), 'key=[API_KEY]; key again [API_KEY]');
    // Short values are ordinary words and stay.
    assert.equal(redact('SAFETY_MODE=on LOG_LEVEL=info'), 'SAFETY_MODE=on LOG_LEVEL=info');
  });

  it('masks the user-info of a URL, and its password alone, raw or decoded', () => {
    assert.equal(redact('login trader:S3cr3t-pa55w0rd at db'), 'login [DATABASE_URL user-info] at db');
    assert.equal(redact('password S3cr3t-pa55w0rd rejected'), 'password [DATABASE_URL password] rejected');
    assert.equal(redact('redis auth r3dis-pass!'), 'redis auth [REDIS_URL password]');
    assert.equal(
      redact('postgres://trader:S3cr3t-pa55w0rd@replica:5432/x'),
      'postgres://[DATABASE_URL user-info]@replica:5432/x',
    );
  });

  it('finds a value in its JSON-escaped form, as a runtime that logs JSON prints it', () => {
    const withQuote = createRedactor([{ name: 'TOKEN', value: 'ab"cd\\ef/gh' }]);
    assert.equal(withQuote(JSON.stringify({ token: 'ab"cd\\ef/gh' })), '{"token":"[TOKEN]"}');
  });

  it('masks a piece of a value at either edge of the text', () => {
    assert.equal(redact(`3cr3t-pa55w0rd@db.internal:5432/dreichor\nnext line`), '[DATABASE_URL]\nnext line');
    assert.equal(redact(`0123456789 and more`), '[API_KEY] and more');
    assert.equal(redact('last words: postgres://trader:S3cr'), 'last words: [DATABASE_URL]');
  });

  it('keeps the end of long output, cut at a line start, so no line is left in part', () => {
    const lines = Array.from({ length: 100 }, (_, i) => `line ${i} ${'x'.repeat(40)}`).join('\n');
    const cut = tail(lines, 2000);
    assert.ok(cut.length <= 2000);
    assert.ok(cut.startsWith('line '), cut.slice(0, 20));
    assert.ok(cut.endsWith(`line 99 ${'x'.repeat(40)}`));
    const one = tail('y'.repeat(5000), 2000);
    assert.equal(one.length, 2000);
    assert.ok(one.startsWith('[cut] y'));
  });

  it('property: no secret survives, whatever surrounds it, however the output is cut', () => {
    const secretChars = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_%!@:/'.split(''));
    fc.assert(
      fc.property(
        fc.string({ unit: secretChars, minLength: 6, maxLength: 3000 }),
        fc.array(fc.string({ maxLength: 200 }), { maxLength: 20 }),
        fc.integer({ min: 100, max: 2000 }),
        (secret, around, limit) => {
          const masked = createRedactor([{ name: 'S', value: secret }]);
          const text = around.join(`\n${secret}\n`);
          const out = tail(masked(`${text}${secret}`), limit);
          assert.ok(!out.includes(secret));
          // Nor the secret's first or last 16 characters, as the cut could have left them.
          if (secret.length > 16) assert.ok(!out.includes(secret.slice(0, 16)) && !out.includes(secret.slice(-16)), out);
        },
      ),
      propertyRuns(300),
    );
  });
});
