import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { contentTypeProblem } from '../../../src/http/content-type.js';

// The pure check behind every request's 415, case by case: the app tests send only a few headers,
// which left a loosened or tightened check (a charset skipped, a media type not trimmed) unseen.
const MEDIA = 'Content-Type must be application/json';
const CHARSET = 'request body must be UTF-8 (Content-Type: application/json; charset=utf-8, or no charset)';

/** The refusal's reason, or null when the header is accepted. */
const reason = (header: string | undefined): string | null => {
  const problem = contentTypeProblem(header);
  if (problem === null) return null;
  assert.equal(problem.status, 415);
  assert.equal(problem.code, 'unsupported_media_type');
  return problem.reason;
};

describe('contentTypeProblem: application/json in UTF-8 only', () => {
  it('accepts the media type alone, in any case and with spaces around it', () => {
    assert.equal(reason('application/json'), null);
    assert.equal(reason('Application/JSON'), null);
    assert.equal(reason('  application/json  '), null);
  });

  it('refuses a missing header, an empty one and any other media type', () => {
    assert.equal(reason(undefined), MEDIA);
    assert.equal(reason(''), MEDIA);
    assert.equal(reason('text/plain'), MEDIA);
    assert.equal(reason('application/json5'), MEDIA);
    assert.equal(reason('application/jsonx; charset=utf-8'), MEDIA);
  });

  it('accepts UTF-8 by its registered name, in any case, quoted or spaced', () => {
    for (const header of [
      'application/json; charset=utf-8',
      'application/json;charset=UTF-8',
      'application/json; CHARSET=Utf-8',
      'application/json; charset="utf-8"',
      'application/json;  charset =  utf-8  ',
    ]) {
      assert.equal(reason(header), null, header);
    }
  });

  it('refuses every other charset, an empty one and one only partly quoted', () => {
    for (const header of [
      // Not the registered name, and the body parser refuses it: refused here with this reason.
      'application/json; charset=utf8',
      'application/json; CHARSET=Utf8',
      'application/json; charset=utf-16',
      'application/json; charset=latin1',
      'application/json; charset=',
      'application/json; charset',
      'application/json; charset="utf-8',
      'application/json; charset=x"utf-8"',
      'application/json; charset="utf-8"x',
      'application/json; charset=utf-8x',
      // Quotes count only around the whole value: unquoting a part would make these "utf-8".
      'application/json; charset=utf"-8"',
      'application/json; charset="utf"-8',
      'application/json; charset=xutf-8',
    ]) {
      assert.equal(reason(header), CHARSET, header);
    }
  });

  it('reads every charset parameter, not only the first', () => {
    assert.equal(reason('application/json; charset=utf-8; charset=utf-16'), CHARSET);
    assert.equal(reason('application/json; charset=utf-16; charset=utf-8'), CHARSET);
    // Another parameter first does not end the search.
    assert.equal(reason('application/json; foo=bar; charset=utf-16'), CHARSET);
  });

  it('ignores other parameters, whatever their value', () => {
    assert.equal(reason('application/json; boundary=utf-16'), null);
    assert.equal(reason('application/json; xcharset=utf-16'), null);
    assert.equal(reason('application/json; charsetx=utf-16'), null);
    assert.equal(reason('application/json; foo=bar; charset=utf-8'), null);
    assert.equal(reason('application/json; foo'), null);
  });
});
