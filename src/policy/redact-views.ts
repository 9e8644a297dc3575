/**
 * Decoded views of a text, in which a secret is looked for as it was configured, and the way back
 * from each unit of a view to the characters of the text it came from.
 *
 * Security: a runtime prints a secret escaped in more ways than can be listed per secret: Go's JSON
 * escapes `<>&` and U+2028/2029 as `\u003c`, Python's escapes every non-ASCII character, Gson also
 * `=` and `'`, PHP `/` as `\/`; URL-encoders each keep a different set of characters (`!'()*`, `/`,
 * `+` for a space) and print hex in either case; a line wrapper cuts a long value anywhere. Undoing
 * these in the text, in any mix, finds all of them with one search for the value itself.
 */

/** A view of a text: unit `i` of `text` came from the text's units `start[i]` to `end[i]` (exclusive). */
export interface View {
  readonly text: string;
  readonly start: readonly number[];
  readonly end: readonly number[];
  /** Whitespace is left out of this view (see `unwrapLines`). */
  readonly unwrapped: boolean;
}

type Decoder = (view: View) => View | null;

/**
 * Every view of `text`: as it is, and each combination of lines unwrapped, JSON escapes undone and
 * percent-encoding undone, in that order (the layout of the log, the escaping of the line, the
 * encoding of the value). A decoder with nothing to undo adds no view. Each view is case-folded.
 */
export function viewsOf(text: string): View[] {
  let views: View[] = [asView(text)];
  for (const decode of [unwrapLines, unescapeJson, decodePercent] satisfies Decoder[]) {
    views = [...views, ...views.map(decode).filter((view) => view !== null)];
  }
  return views.map((view) => ({ ...view, text: fold(view.text) }));
}

/** A secret's form as it is searched for in a view without whitespace. */
export function unwrappedForm(form: string): string {
  return form.replace(/[ \t\r\n]/g, '');
}

/**
 * Case-insensitive for everything (over-masking is safe, a leak is not), and a `+` is a space, as in
 * form encoding. Per UTF-16 unit, so that indices in the folded text are those of the view: a unit
 * whose lowercase is longer ("İ") is kept as it is, in the text and in the secret alike.
 */
export function fold(text: string): string {
  const units: number[] = [];
  for (let i = 0; i < text.length; i += 1) {
    const unit = text.charCodeAt(i);
    if (unit === 0x2b) units.push(0x20);
    else if (unit >= 0x41 && unit <= 0x5a) units.push(unit + 0x20);
    else if (unit < 0x80) units.push(unit);
    else {
      const lower = String.fromCharCode(unit).toLowerCase();
      units.push(lower.length === 1 ? lower.charCodeAt(0) : unit);
    }
  }
  return fromUnits(units);
}

/** Builds a view from units of another, each carrying the span of the original it came from. */
class ViewBuilder {
  private readonly units: number[] = [];
  private readonly start: number[] = [];
  private readonly end: number[] = [];

  constructor(private readonly from: View) {}

  /** Unit `unit`, decoded from the source view's units `first` to `last` (inclusive). */
  push(unit: number, first: number, last: number): void {
    this.units.push(unit);
    this.start.push(this.from.start[first] ?? 0);
    this.end.push(this.from.end[last] ?? 0);
  }

  keep(index: number): void {
    this.push(this.from.text.charCodeAt(index), index, index);
  }

  /**
   * An escape cut off by the end of the text (`%3`, `\u00`) decodes to nothing, and the last unit
   * before it reaches over it: a piece of a value that ends there is then at the view's end, where
   * it is masked with the cut escape, instead of one escape away from it and left visible.
   */
  cutOff(): void {
    const last = this.end.length - 1;
    if (last >= 0) this.end[last] = this.from.end[this.from.text.length - 1] ?? 0;
  }

  build(unwrapped: boolean): View {
    return { text: fromUnits(this.units), start: this.start, end: this.end, unwrapped };
  }
}

/**
 * A text with line breaks loses all its spaces, tabs and line breaks in this view, not only the
 * breaks and the indentation after them: a wrapper that breaks a value where it has a space (or keeps
 * the space at the end of the line) would otherwise leave a view in which the value's own space is
 * gone or doubled. The secret's form loses them too (`unwrappedForm`).
 */
function unwrapLines(view: View): View | null {
  const text = view.text;
  if (!/[\r\n]/.test(text)) return null;
  const out = new ViewBuilder(view);
  for (let i = 0; i < text.length; i += 1) {
    if (!WHITESPACE.has(text.charCodeAt(i))) out.keep(i);
  }
  return out.build(true);
}

const WHITESPACE: ReadonlySet<number> = new Set([0x20, 0x09, 0x0d, 0x0a]);

const JSON_ESCAPES: Readonly<Record<string, string>> = {
  '"': '"',
  '\\': '\\',
  '/': '/',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
};

/** JSON's escapes, `\u` with hex in either case, and `\xXX` (Python's and JavaScript's reprs). */
function unescapeJson(view: View): View | null {
  const text = view.text;
  if (!text.includes('\\')) return null;
  const out = new ViewBuilder(view);
  for (let i = 0; i < text.length; ) {
    const next = text[i + 1] ?? '';
    const simple = JSON_ESCAPES[next];
    const digits = next === 'u' || next === 'U' ? 4 : next === 'x' ? 2 : 0;
    if (text[i] === '\\' && isCut(text, i + 2, digits, next === '')) {
      out.cutOff();
      break;
    }
    if (text[i] !== '\\') {
      out.keep(i);
      i += 1;
    } else if (digits > 0 && isHex(text, i + 2, digits)) {
      out.push(Number.parseInt(text.slice(i + 2, i + 2 + digits), 16), i, i + 1 + digits);
      i += 2 + digits;
    } else if (simple !== undefined) {
      out.push(simple.charCodeAt(0), i, i + 1);
      i += 2;
    } else {
      out.keep(i);
      i += 1;
    }
  }
  return out.build(view.unwrapped);
}

/** Runs of `%XX` (hex in either case) read as UTF-8; a byte that is not part of a character stays. */
function decodePercent(view: View): View | null {
  const text = view.text;
  if (!text.includes('%')) return null;
  const out = new ViewBuilder(view);
  for (let i = 0; i < text.length; ) {
    const at: number[] = [];
    while (text[i] === '%' && isHex(text, i + 1, 2)) {
      at.push(i);
      i += 3;
    }
    if (at.length === 0 && text[i] === '%' && isCut(text, i + 1, 2, i + 1 === text.length)) {
      out.cutOff();
      break;
    }
    if (at.length === 0) {
      out.keep(i);
      i += 1;
      continue;
    }
    const bytes = at.map((p) => Number.parseInt(text.slice(p + 1, p + 3), 16));
    const atEnd = i === text.length || (text[i] === '%' && isCut(text, i + 1, 2, i + 1 === text.length));
    for (let b = 0; b < bytes.length; ) {
      const { codePoint, length } = utf8At(bytes, b);
      // A character whose bytes the end of the text cut off (`%C3` of `%C3%A9`) is cut off too.
      if (codePoint === null && atEnd && utf8At([...bytes, 0x80, 0x80, 0x80], b).codePoint !== null) {
        out.cutOff();
        break;
      }
      const first = at[b] ?? 0;
      if (codePoint === null) {
        for (let k = 0; k < 3; k += 1) out.keep(first + k);
      } else {
        const last = (at[b + length - 1] ?? 0) + 2;
        for (const unit of String.fromCodePoint(codePoint)) {
          for (let k = 0; k < unit.length; k += 1) out.push(unit.charCodeAt(k), first, last);
        }
      }
      b += length;
    }
  }
  return out.build(view.unwrapped);
}

/** The character whose UTF-8 encoding starts at `bytes[index]`, or null (and length 1) if none does. */
function utf8At(bytes: readonly number[], index: number): { codePoint: number | null; length: number } {
  const lead = bytes[index] ?? 0;
  const length =
    lead < 0x80 ? 1 : lead >= 0xc2 && lead < 0xe0 ? 2 : lead >= 0xe0 && lead < 0xf0 ? 3 : lead >= 0xf0 && lead < 0xf5 ? 4 : 0;
  if (length === 0 || index + length > bytes.length) return { codePoint: null, length: 1 };
  let codePoint = length === 1 ? lead : lead & (0xff >> (length + 1));
  for (let k = 1; k < length; k += 1) {
    const byte = bytes[index + k] ?? 0;
    if ((byte & 0xc0) !== 0x80) return { codePoint: null, length: 1 };
    codePoint = (codePoint << 6) | (byte & 0x3f);
  }
  return codePoint > 0x10ffff ? { codePoint: null, length: 1 } : { codePoint, length };
}

/** Whether an escape's `count` hex digits from `from` are cut off by the end of the text. */
function isCut(text: string, from: number, count: number, bare: boolean): boolean {
  if (bare) return true;
  return count > 0 && from + count > text.length && isHex(text, from, text.length - from);
}

function isHex(text: string, from: number, count: number): boolean {
  if (from + count > text.length) return false;
  for (let i = from; i < from + count; i += 1) {
    const unit = text.charCodeAt(i);
    const lower = unit | 0x20;
    if (!((unit >= 0x30 && unit <= 0x39) || (lower >= 0x61 && lower <= 0x66))) return false;
  }
  return true;
}

function asView(text: string): View {
  const start: number[] = [];
  const end: number[] = [];
  for (let i = 0; i < text.length; i += 1) {
    start.push(i);
    end.push(i + 1);
  }
  return { text, start, end, unwrapped: false };
}

function fromUnits(units: readonly number[]): string {
  let text = '';
  for (let i = 0; i < units.length; i += 4096) text += String.fromCharCode(...units.slice(i, i + 4096));
  return text;
}
