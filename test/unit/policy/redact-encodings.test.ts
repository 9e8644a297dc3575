import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { createRedactor, type NamedSecret, runtimeSecrets } from '../../../src/policy/redact.js';
import { propertyRuns } from '../../support/sampling.js';

// The encoders below are written from each library's documented behaviour, not from the redactor's.
const hex4 = (unit: number): string => unit.toString(16).padStart(4, '0');
const upperEscapes = (text: string): string => text.replace(/\\u([0-9a-f]{4})/g, (_, h: string) => `\\u${h.toUpperCase()}`);
/** Go's encoding/json: HTML-safe (<, >, & escaped) and U+2028/2029 escaped. */
const goJson = (s: string): string =>
  JSON.stringify(s)
    .slice(1, -1)
    .replace(/[<>&\u2028\u2029]/g, (c) => `\\u${hex4(c.charCodeAt(0))}`);
/** Python's json.dumps with ensure_ascii: every non-ASCII UTF-16 unit escaped. */
const pythonJson = (s: string): string =>
  JSON.stringify(s)
    .slice(1, -1)
    .split('')
    .map((c) => (c.charCodeAt(0) < 0x80 ? c : `\\u${hex4(c.charCodeAt(0))}`))
    .join('');
const strictUri = (s: string): string =>
  encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
/** Python's urllib.parse.quote(s): like RFC 3986 strict, but '/' is safe by default. */
const pythonQuote = (s: string): string => strictUri(s).replaceAll('%2F', '/');
const formEncoded = (s: string): string => new URLSearchParams([['k', s]]).toString().slice(2);
const lowerPercent = (s: string): string => s.replace(/%[0-9A-F]{2}/g, (p) => p.toLowerCase());
const hexOf = (s: string): string => Buffer.from(s, 'utf8').toString('hex');

const ENCODINGS: ReadonlyArray<readonly [string, (secret: string) => string]> = [
  ['JSON.stringify', (s) => JSON.stringify(s).slice(1, -1)],
  ['Go JSON, lowercase \\u', goJson],
  ['Go JSON, uppercase \\u', (s) => upperEscapes(goJson(s))],
  ['Python JSON, lowercase \\u', pythonJson],
  ['Python JSON, uppercase \\u', (s) => upperEscapes(pythonJson(s))],
  ['encodeURIComponent', encodeURIComponent],
  ['RFC 3986 strict', strictUri],
  ['RFC 3986 strict, lowercase hex', (s) => lowerPercent(strictUri(s))],
  ["Python quote() keeping '/'", pythonQuote],
  ["form encoding, '+' for a space", formEncoded],
  ['hex of UTF-8, lowercase', hexOf],
  ['hex of UTF-8, uppercase', (s) => hexOf(s).toUpperCase()],
  ['NFC', (s) => s.normalize('NFC')],
  ['NFD', (s) => s.normalize('NFD')],
];

/** A line of a Basic auth header whose credentials hold the secret `offset` bytes after a 3-byte boundary. */
function basicAuth(secret: string, offset: number, url: boolean): { line: string; core: string } {
  const before = Buffer.from('u:p'.slice(0, offset));
  const bytes = Buffer.from(secret, 'utf8');
  const encoded = Buffer.concat([before, bytes, Buffer.from('@x')]).toString(url ? 'base64url' : 'base64');
  const core = encoded.slice(Math.ceil((offset * 8) / 6), Math.floor(((offset + bytes.length) * 8) / 6));
  return { line: `Authorization: Basic ${encoded}`, core };
}

function wrap(secret: string, first: number, column: number, breakWith: string): string {
  const points = Array.from(secret);
  const lines = [points.slice(0, first).join('')];
  for (let i = first; i < points.length; i += column) lines.push(points.slice(i, i + column).join(''));
  return lines.join(breakWith);
}

describe('each encoding a runtime may print a secret in, one example each (all leaked before)', () => {
  const secret = "pä$$ wörd&<1>!'(2)*/x€";
  const mask = createRedactor([{ name: 'PW', value: secret }]);
  for (const [name, encode] of ENCODINGS.filter(([n]) => n !== 'NFC' && n !== 'JSON.stringify')) {
    it(name, () => {
      const encoded = encode(secret);
      assert.notEqual(encoded, secret);
      assert.equal(mask(`password=${encoded}; next`), 'password=[PW]; next');
    });
  }

  it('NFC, configured in NFD', () => {
    const nfd = createRedactor([{ name: 'PW', value: 'Grüße-Schlüssel'.normalize('NFD') }]);
    assert.equal(nfd(`key ${'Grüße-Schlüssel'.normalize('NFC')} end`), 'key [PW] end');
  });

  for (const offset of [0, 1, 2]) {
    for (const url of [false, true]) {
      it(`base64${url ? 'url' : ''} in a Basic auth header, the password ${offset} bytes after a boundary`, () => {
        const redact = createRedactor(runtimeSecrets({ DATABASE_URL: 'postgres://trader:S3cr3t>pa55w0rd~@db/x' }));
        const { line, core } = basicAuth('S3cr3t>pa55w0rd~', offset, url);
        const out = redact(line);
        assert.ok(!out.includes(core), out);
        assert.match(out, /\[DATABASE_URL password\]/);
      });
    }
  }

  it('wrapped at a column, with and without indentation', () => {
    const token = 'correct-horse-battery-staple-42';
    const redact = createRedactor([{ name: 'TOKEN', value: token }]);
    assert.equal(redact(`token: ${wrap(token, 10, 16, '\n')}\nnext`), 'token: [TOKEN]\nnext');
    assert.equal(redact(`token: ${wrap(token, 3, 8, '\r\n\t    ')} end`), 'token: [TOKEN] end');
    // Broken where the value has a space: the space starts the next line.
    const phrase = createRedactor([{ name: 'PHRASE', value: 'correct horse battery staple' }]);
    assert.equal(phrase('phrase: correct horse\n battery staple.'), 'phrase: [PHRASE].');
  });

  it('two overlapping secrets: the union is masked, named once', () => {
    const redact = createRedactor([
      { name: 'A', value: 'abcdef-123456' },
      { name: 'B', value: '123456-ghijkl' },
    ]);
    assert.equal(redact('x abcdef-123456-ghijkl y'), 'x [A,B] y');
  });
});

// Neither alphabet has a character of the other, nor of a marker, so filler cannot recreate a secret
// or one of its encodings, and no 4-character piece of a secret can be made of filler and markers.
const ASCII = [...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789', ...` &<>"\\/%+!'()*-_.:@?=$`];
const UNICODE = ['ä', 'ö', 'ü', 'Ä', 'Ö', 'Ü', 'ß', 'é', 'Å', 'ñ', 'a\u0308', 'e\u0301', 'A\u030a', '€', '中', '😀', '\u2028'];
const FILLER = fc.string({ unit: fc.constantFrom(...'|^;,{}#\n'), maxLength: 40 });

const secretOf = (chars: readonly string[], minLength: number) =>
  fc.string({ unit: fc.constantFrom(...chars), minLength, maxLength: 40 });
const anySecret = (minLength: number) =>
  fc.oneof(secretOf(ASCII, minLength), secretOf(UNICODE, minLength), secretOf([...ASCII, ...UNICODE], minLength));
const RUNS = propertyRuns(200);

describe('property: no encoding of a secret survives, whatever surrounds it', () => {
  for (const [name, encode] of ENCODINGS) {
    it(name, () => {
      fc.assert(
        fc.property(anySecret(6), FILLER, FILLER, (secret, before, after) => {
          const encoded = encode(secret);
          const out = createRedactor([{ name: 'S', value: secret }])(`${before}${encoded}${after}`);
          assert.ok(!out.includes(encoded), out);
        }),
        RUNS,
      );
    });
  }

  for (const offset of [0, 1, 2]) {
    for (const url of [false, true]) {
      it(`base64${url ? 'url' : ''} at alignment ${offset}`, () => {
        fc.assert(
          fc.property(anySecret(6), FILLER, FILLER, (secret, before, after) => {
            const { line, core } = basicAuth(secret, offset, url);
            const out = createRedactor([{ name: 'S', value: secret }])(`${before}${line}${after}`);
            assert.ok(!out.includes(core), out);
          }),
          RUNS,
        );
      });
    }
  }

  for (const indented of [false, true]) {
    it(`wrapped at a random column ${indented ? 'with' : 'without'} indentation (values of 20+ characters)`, () => {
      const noSpace = (chars: readonly string[]) => chars.filter((c) => !/\s/.test(c));
      const indent = indented ? fc.string({ unit: fc.constantFrom(' ', '\t'), minLength: 1, maxLength: 8 }) : fc.constant('');
      fc.assert(
        fc.property(
          fc.oneof(secretOf(noSpace(ASCII), 20), secretOf(noSpace([...ASCII, ...UNICODE]), 20)),
          fc.integer({ min: 1, max: 30 }),
          fc.integer({ min: 1, max: 30 }),
          fc.constantFrom('\n', '\r\n'),
          indent,
          FILLER,
          FILLER,
          (secret, first, column, newline, spaces, before, after) => {
            const out = createRedactor([{ name: 'S', value: secret }])(
              `${before}${wrap(secret, first, column, `${newline}${spaces}`)}${after}`,
            );
            assert.ok(!out.replace(/\s/g, '').includes(secret), out);
          },
        ),
        RUNS,
      );
    });
  }

  it('two overlapping secrets: neither survives, nor any 4-character piece of either', () => {
    const piece = (chars: readonly string[], min: number, max: number) =>
      fc.string({ unit: fc.constantFrom(...chars), minLength: min, maxLength: max });
    const chars = [...ASCII, ...UNICODE];
    fc.assert(
      fc.property(
        piece(chars, 5, 15),
        piece(chars, 1, 10),
        piece(chars, 5, 15),
        fc.boolean(),
        FILLER,
        FILLER,
        (x, y, z, swap, before, after) => {
          const secrets: NamedSecret[] = [
            { name: 'A', value: `${x}${y}` },
            { name: 'B', value: `${y}${z}` },
          ];
          const out = createRedactor(swap ? secrets.reverse() : secrets)(`${before}${x}${y}${z}${after}`);
          for (const { value } of secrets) {
            assert.ok(!out.includes(value), out);
            for (let i = 0; i + 4 <= value.length; i += 1) assert.ok(!out.includes(value.slice(i, i + 4)), out);
          }
        },
      ),
      RUNS,
    );
  });
});
