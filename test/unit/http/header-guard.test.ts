import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  createHeaderGuard,
  NOT_A_CLIENT_ID_MARKER,
  NOT_A_RAY_MARKER,
  OTHER_PATH_MARKER,
  SECRET_MARKER,
} from '../../../src/http/header-guard.js';

// The guard's grammars and markers one by one: the app and sink tests pass whole requests through it
// and see only a few shapes, which left an unanchored pattern or a loosened bound unseen.
const SECRET = 'correcthorsebatterystaple';
const guard = createHeaderGuard([{ name: 'CF_ACCESS_CLIENT_SECRET', value: SECRET }], ['Legacy Client Id']);

describe('header guard: the claimed client id', () => {
  it('keeps a value with a client id shape, from one character up to 101 before .access', () => {
    for (const id of [
      'a.access',
      'ops-deploy_1.access',
      `${'0123456789abcdef'.repeat(2)}.access`,
      `A${'b'.repeat(100)}.access`,
    ]) {
      assert.equal(guard.claimedClientId(id), id);
    }
  });

  it('withholds anything else as not a client id', () => {
    for (const value of [
      '',
      '.access',
      '-ops.access',
      '_ops.access',
      `A${'b'.repeat(101)}.access`,
      'ops.access ',
      ' ops.access',
      'ops.accessx',
      'opsXaccess',
      'ops.acces',
      'x ops.access',
      'ops.access\nx',
      'ops.x.access',
    ]) {
      assert.equal(guard.claimedClientId(value), NOT_A_CLIENT_ID_MARKER, JSON.stringify(value));
    }
  });

  it('keeps a configured id even outside the grammar, and withholds a secret in any form', () => {
    assert.equal(guard.claimedClientId('Legacy Client Id'), 'Legacy Client Id');
    assert.equal(guard.claimedClientId(SECRET), SECRET_MARKER);
    assert.equal(guard.claimedClientId(Buffer.from(SECRET).toString('hex')), SECRET_MARKER);
    assert.equal(guard.claimedClientId(`${SECRET}.access`), SECRET_MARKER);
  });

  it('records nothing for a header absent or repeated', () => {
    assert.equal(guard.claimedClientId(undefined), null);
    assert.equal(guard.claimedClientId(['ops.access', 'ops.access']), null);
  });
});

describe('header guard: the path', () => {
  it('keeps the three endpoints, without their query', () => {
    assert.equal(guard.path('/v1/deploy'), '/v1/deploy');
    assert.equal(guard.path('/v1/status?verbose=1'), '/v1/status');
    assert.equal(guard.path(`/v1/stop?token=${SECRET}`), '/v1/stop');
  });

  it('withholds any other path, and a missing URL', () => {
    for (const url of [undefined, '', '/', '/v1/deploy/', '/v1/Deploy', '/v1/deployx', `/${SECRET}`, '?/v1/stop']) {
      assert.equal(guard.path(url), OTHER_PATH_MARKER, String(url));
    }
  });
});

describe('header guard: the cf-ray', () => {
  it('keeps a ray id, with or without its colo', () => {
    assert.equal(guard.cfRay('0123456789abcdef'), '0123456789abcdef');
    assert.equal(guard.cfRay('0123456789abcdef-FRA'), '0123456789abcdef-FRA');
  });

  it('withholds anything else', () => {
    for (const value of [
      '',
      '0123456789abcde',
      '0123456789abcdef0',
      '0123456789ABCDEF',
      'x0123456789abcdef',
      '0123456789abcdef-fra',
      '0123456789abcdef-FR',
      '0123456789abcdef-FRAX',
      '0123456789abcdefFRA',
      '0123456789abcdef-FRA ',
      SECRET,
    ]) {
      assert.equal(guard.cfRay(value), NOT_A_RAY_MARKER, value);
    }
  });

  it('withholds a ray-shaped value that is a configured secret', () => {
    const rayShaped = '0123456789abcdef-ZRH';
    const strict = createHeaderGuard([{ name: 'REGISTRY_PASSWORD', value: rayShaped }]);
    assert.equal(strict.cfRay(rayShaped), NOT_A_RAY_MARKER);
    // Found by the redactor, not the hash: the secret inside a longer value is still withheld.
    const inner = createHeaderGuard([{ name: 'REGISTRY_PASSWORD', value: '0123456789abcdef' }]);
    assert.equal(inner.cfRay('0123456789abcdef-ZRH'), NOT_A_RAY_MARKER);
  });

  it('records nothing for a header absent or repeated', () => {
    assert.equal(guard.cfRay(undefined), undefined);
    assert.equal(guard.cfRay(['0123456789abcdef']), undefined);
  });
});

describe('header guard: the markers', () => {
  it('say in the log why a value was withheld, each its own words', () => {
    // What a reader of the audit and request logs sees: an emptied or shared marker would hide why.
    assert.equal(SECRET_MARKER, '[withheld: a configured secret]');
    assert.equal(NOT_A_CLIENT_ID_MARKER, '[withheld: not a client id]');
    assert.equal(OTHER_PATH_MARKER, '[withheld: not an endpoint of the agent]');
    assert.equal(NOT_A_RAY_MARKER, '[withheld: not a ray id]');
  });
});
