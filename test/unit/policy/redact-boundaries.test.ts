import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { createRedactor, type NamedSecret, runtimeSecrets, tail } from '../../../src/policy/redact.js';
import { propertyRuns } from '../../support/sampling.js';

// The exact answers below pin the boundaries mutation testing found unguarded (docs/TESTING.md):
// which parts of a URL become secrets, a value cut at an edge of the text, the spans of decoded
// escapes, and the markers of touching or overlapping matches.

describe('which parts of a runtime variable are secrets', () => {
  const cases: ReadonlyArray<readonly [string, string, readonly NamedSecret[]]> = [
    ['a value of exactly 6 characters', 'abc123', [{ name: 'V', value: 'abc123' }]],
    ['a value of 5 characters', 'abc12', []],
    [
      'a one-letter scheme still makes a URL',
      'x://usr:pa55wd@h',
      [
        { name: 'V', value: 'x://usr:pa55wd@h' },
        { name: 'V user-info', value: 'usr:pa55wd' },
        { name: 'V password', value: 'pa55wd' },
      ],
    ],
    [
      'a short user-info with a colon is masked as a whole, its short password is not',
      'r://u:pw@h',
      [
        { name: 'V', value: 'r://u:pw@h' },
        { name: 'V user-info', value: 'u:pw' },
      ],
    ],
    ['a short user name alone is no secret', 'postgres://bob@db/x', [{ name: 'V', value: 'postgres://bob@db/x' }]],
    [
      'a user name of 6 characters alone is',
      'postgres://trader@db/x',
      [
        { name: 'V', value: 'postgres://trader@db/x' },
        { name: 'V user-info', value: 'trader' },
      ],
    ],
    [
      'a password of 5 characters is not masked alone',
      'r://u:abcde@h',
      [
        { name: 'V', value: 'r://u:abcde@h' },
        { name: 'V user-info', value: 'u:abcde' },
      ],
    ],
    [
      'a password that decodes to 4 characters is masked only as written',
      'r://u:abc%21@h',
      [
        { name: 'V', value: 'r://u:abc%21@h' },
        { name: 'V user-info', value: 'u:abc%21' },
        { name: 'V password', value: 'abc%21' },
      ],
    ],
    [
      'a password that decodes to exactly 6 characters is masked decoded too',
      'r://u:abcde%21@h',
      [
        { name: 'V', value: 'r://u:abcde%21@h' },
        { name: 'V user-info', value: 'u:abcde%21' },
        { name: 'V password', value: 'abcde%21' },
        { name: 'V password', value: 'abcde!' },
      ],
    ],
    [
      'a password with no escape is listed once',
      'r://u:abcdef@h',
      [
        { name: 'V', value: 'r://u:abcdef@h' },
        { name: 'V user-info', value: 'u:abcdef' },
        { name: 'V password', value: 'abcdef' },
      ],
    ],
    [
      'a password that is not valid percent-encoding is masked as written',
      'r://:abc%zzdef@h',
      [
        { name: 'V', value: 'r://:abc%zzdef@h' },
        { name: 'V user-info', value: ':abc%zzdef' },
        { name: 'V password', value: 'abc%zzdef' },
      ],
    ],
  ];
  for (const [title, value, expected] of cases) {
    it(title, () => assert.deepEqual(runtimeSecrets({ V: value }), expected));
  }
});

/** The longest k such that `text` starts with the last k characters of `secret`, by brute force. */
function headOverlap(secret: string, text: string): number {
  for (let k = Math.min(secret.length, text.length); k > 0; k -= 1) if (secret.endsWith(text.slice(0, k))) return k;
  return 0;
}

/** The longest k such that `text` ends with the first k characters of `secret`, by brute force. */
function tailOverlap(text: string, secret: string): number {
  for (let k = Math.min(secret.length, text.length); k > 0; k -= 1) if (text.endsWith(secret.slice(0, k))) return k;
  return 0;
}

describe('a piece of a secret at an edge of the text', () => {
  it('property: the longest piece of 4 characters or more at either edge is masked, however repetitive the secret', () => {
    // Two letters make secrets whose starts recur inside them ("aab" in "aaab"), where a naive scan
    // for the overlap falls back too far and leaves the piece visible.
    const ab = fc.constantFrom('a', 'b');
    fc.assert(
      fc.property(
        fc.string({ unit: ab, minLength: 6, maxLength: 14 }),
        fc.string({ unit: ab, maxLength: 16 }),
        fc.string({ unit: ab, maxLength: 16 }),
        (secret, first, last) => {
          const text = `${first}#${last}`;
          fc.pre(!text.includes(secret));
          const head = headOverlap(secret, first);
          const end = tailOverlap(last, secret);
          const expected = `${head >= 4 ? `[S]${first.slice(head)}` : first}#${end >= 4 ? `${last.slice(0, last.length - end)}[S]` : last}`;
          assert.equal(createRedactor([{ name: 'S', value: secret }])(text), expected);
        },
      ),
      {
        ...propertyRuns(400),
        // Found by search: here a scan whose fallback skips a level misses the piece of 4 ("aaba").
        examples: [
          ['aabaaaaa', '', 'aabaaaba'],
          ['aabaaaba', 'aabaaaaa', ''],
        ],
      },
    );
  });

  it('a piece of a longer form must stand for about 4 characters of the value', () => {
    // The hex form is twice as long as the value: 4 hex digits are 2 characters, not enough.
    const redact = createRedactor([{ name: 'S', value: 'qwertyuiop' }]);
    assert.equal(redact('dump 7177'), 'dump 7177');
    assert.equal(redact('dump 71776572'), 'dump [S]');
  });

  it('a wrapped, JSON-escaped or percent-encoded value cut at the end of the text is masked', () => {
    const long = createRedactor([{ name: 'S', value: 'abcdefghijklmnopqrstuvwxyz0123' }]);
    assert.equal(long('log line\nabcdefghij\nklmnop'), 'log line\n[S]');
    const quoted = createRedactor([{ name: 'S', value: 'pa"ss/word-123' }]);
    assert.equal(quoted('{"k":"pa\\"ss\\/wo'), '{"k":"[S]');
    const encoded = createRedactor([{ name: 'S', value: 'p@ss:w0rd/long' }]);
    assert.equal(encoded('url=p%40ss%3Aw0r'), 'url=[S]');
  });
});

describe('the markers', () => {
  const redact = createRedactor([
    { name: 'A', value: 'abcdefgh' },
    { name: 'B', value: 'efghijkl' },
    { name: 'C', value: 'abcdefghijkl' },
    { name: 'D', value: 'mnopqr' },
    { name: 'E', value: 'stuvwx!' },
    { name: 'F', value: 'stuvwx%21' },
    { name: 'G', value: 'xyzxyzxy' },
  ]);
  const cases: ReadonlyArray<readonly [string, string, string]> = [
    ['overlapping matches are named together, in order', 'abcdefgh ijkl efghijkl', '[A] ijkl [B]'],
    ['a match inside a longer one at the same start adds nothing', '<abcdefghijkl>', '<[C]>'],
    ['two matches that touch keep a marker each', 'abcdefghmnopqr', '[A][D]'],
    ['of two values matching the same span, the first names it', '(stuvwx%21)', '([E])'],
    ['overlapping matches of one value name it once', 'xyzxyzxyzxy', '[G]'],
    ['overlapping matches of two values', 'mnopqrstuvwx%21', '[D][E]'],
  ];
  for (const [title, text, expected] of cases) it(title, () => assert.equal(redact(text), expected));

  it('two overlapping values make one marker naming both', () => {
    const two = createRedactor([
      { name: 'A', value: 'abcdefgh' },
      { name: 'B', value: 'efghijkl' },
    ]);
    assert.equal(two('abcdefghijkl'), '[A,B]');
    assert.equal(two('abcdefghijkl, abcdefghijkl'), '[A,B], [A,B]');
  });

  it('no secret, or an empty one, leaves the text as it is', () => {
    assert.equal(createRedactor([])('some text'), 'some text');
    assert.equal(createRedactor([{ name: 'E', value: '' }])('some text'), 'some text');
  });

  it('a short value is not looked for across spaces and line breaks', () => {
    assert.equal(createRedactor([{ name: 'S', value: 'abc123' }])('abc 123\nnext'), 'abc 123\nnext');
  });

  it('a long text (more units than one call can spread) gets one marker per match', () => {
    const filler = 'x'.repeat(5000);
    const redact1 = createRedactor([{ name: 'S', value: 'secret-value' }]);
    assert.equal(redact1(`${filler} secret-value ${filler}\n`), `${filler} [S] ${filler}\n`);
  });
});

describe('matching in decoded views', () => {
  const cases: ReadonlyArray<readonly [string, string, string, string]> = [
    // [title, secret, text, expected]
    ['any letter in another case, Z too', 'zulu-Zebra', 'ZULU-zebra', '[S]'],
    ['a non-ASCII letter in another case', 'Éclair-secret', 'éCLAIR-SECRET', '[S]'],
    ["PHP's escaped slash", 'ab/cd/ef', '"ab\\/cd\\/ef"', '"[S]"'],
    ['a backspace escape', 'ab\bcdef', '"ab\\bcdef"', '"[S]"'],
    ['a form feed escape', 'ab\fcdef', '"ab\\fcdef"', '"[S]"'],
    ['a newline escape (a PEM key in JSON)', 'ab\ncdefgh', '"ab\\ncdefgh"', '"[S]"'],
    ['a carriage return escape', 'ab\rcdef', '"ab\\rcdef"', '"[S]"'],
    ['a tab escape', 'ab\tcdef', '"ab\\tcdef"', '"[S]"'],
    ['an escape as the last character of the value', 'abcdef"', '{"k":"abcdef\\""}', '{"k":"[S]"}'],
    ["Python's \\x escape followed by hex digits", 'café1234abcd', "'caf\\xe91234abcd'", "'[S]'"],
    ['an uppercase \\U escape', 'aé-secret', 'a\\U00e9-secret', '[S]'],
    ['percent-encoded two-byte character starting with C2', 'pa££word', 'p=pa%C2%A3%C2%A3word', 'p=[S]'],
    [
      'percent-encoded three-byte character starting with E0',
      'नमस्ते-key',
      'k=%E0%A4%A8%E0%A4%AE%E0%A4%B8%E0%A5%8D%E0%A4%A4%E0%A5%87-key',
      'k=[S]',
    ],
    ['a stray byte before an encoded value', "!abc'def", 'x%C3%21abc%27def', 'x%C3[S]'],
    ['a lead byte without its next byte inside an encoded value', 'ab%C3cd-secret!', 'v=ab%C3cd-secret%21', 'v=[S]'],
    ['a lone invalid byte inside an encoded value', 'ab%FFcd!ef', 'v=ab%FFcd%21ef', 'v=[S]'],
    ['a byte sequence beyond U+10FFFF next to an encoded value', 'abc!defg', '%F4%90%80%80abc%21defg', '%F4%90%80%80[S]'],
    // An escape, or a character's bytes, cut off by the end of the text is masked with the piece before.
    ['a percent-encoded value cut inside an escape', 'p@ss:w0rd/long', 'url=p%40ss%3', 'url=[S]'],
    ['a percent-encoded value cut after its percent sign', 'p@ss:w0rd/long', 'url=p%40ss%', 'url=[S]'],
    ['a percent-encoded value cut inside a character', 'abcdé-long', 'v=abcd%C3%A', 'v=[S]'],
    ['a percent-encoded value cut between the bytes of a character', 'abcdé-long', 'v=abcd%C3', 'v=[S]'],
    ['a JSON-escaped value cut inside an escape', 'pass<word>', '{"k":"pass\\u00', '{"k":"[S]'],
    ['a JSON-escaped value cut after its backslash', 'pass<word>', '{"k":"pass\\', '{"k":"[S]'],
    ['a hex-escaped value cut inside an escape', 'pass<word>', "'pass\\x3", "'[S]"],
    ['a whole escape at the end of the text is no cut one', 'abc<defgh', 'log abc\\u003c', 'log [S]'],
    ['a whole percent escape at the end of the text is no cut one', 'abc<defgh', 'log abc%3C', 'log [S]'],
    ['a cut escape after text that is no secret stays', 'pass<word>', 'pass<word> %4', '[S] %4'],
    ['a text that is only a cut escape stays', 'pass<word>', '%4', '%4'],
    // A cut escape right after whole ones: the whole ones still decode (the piece is their text).
    ['a value cut after whole escapes of its own', 'abcdefghij', 'v=ab%43%44%4', 'v=[S]'],
    // A percent sign that starts no escape is no cut one: what follows it is still decoded.
    ['a stray percent sign before an encoded value', 'p@ssword1', '50% done; url=%70%40ssword1', '50% done; url=[S]'],
    [
      'a lone lead byte, then a stray percent sign, before an encoded value',
      'p@ssword1',
      'x=%C3%zz url=%70%40ssword1',
      'x=%C3%zz url=[S]',
    ],
    // A lead byte whose character is not cut by the end of the text (a stray percent sign or a last
    // letter after it): no cut escape, so the match before it does not reach over the rest of the text.
    [
      'a lead byte and a stray percent sign after a value: the rest stays',
      'pass<word>',
      'pass<word>%C3%zz rest',
      '[S]%C3%zz rest',
    ],
    ['a lead byte and a last letter after a value: they stay', 'pass<word>', 'pass<word>%C3a', '[S]%C3a'],
    // A byte that starts no character is kept as it is, not taken for a character cut by the end.
    [
      'an invalid byte before a value encoded whole at the end of the text',
      'p@ssword1',
      'v=%FF%70%40%73%73%77%6F%72%64%31',
      'v=%FF[S]',
    ],
    ['a percent-encoded value after other text', 'pass!word', 'user=bob&pw=pass%21word&x=1', 'user=bob&pw=[S]&x=1'],
  ];
  for (const [title, secret, text, expected] of cases) {
    it(title, () => assert.equal(createRedactor([{ name: 'S', value: secret }])(text), expected));
  }
});

describe('the end of long output', () => {
  const cases: ReadonlyArray<readonly [string, string, number, string]> = [
    ['a text within the limit is kept whole, all its lines', 'first\nsecond', 100, 'first\nsecond'],
    ['a text exactly at the limit is kept whole', 'ab\ncd', 5, 'ab\ncd'],
    ['a last line that is only a line break is no line start', `${'y'.repeat(10)}\n`, 8, '[cut] y\n'],
    ['a cut at a line start', 'one\ntwo\nthree', 10, 'two\nthree'],
  ];
  for (const [title, text, limit, expected] of cases) it(title, () => assert.equal(tail(text, limit), expected));
});
