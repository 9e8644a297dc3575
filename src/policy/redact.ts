/**
 * Masks secrets in text that comes back from the runtime (its log lines) or from the engine, before
 * it can reach a response, the status, the state file, the audit log or the agent's own log.
 *
 * Security: a runtime that prints `connecting to postgres://user:pw@db/x` would otherwise hand the
 * server-owned DATABASE_URL to whoever reads the deploy answer (the GitHub Actions log, for one).
 * Each secret is replaced by a marker naming its variable, `[DATABASE_URL]`, so the line stays useful.
 */
import { formsOf } from './redact-forms.js';
import { fold, unwrappedForm, type View, viewsOf } from './redact-views.js';

export interface NamedSecret {
  readonly name: string;
  readonly value: string;
}

export type Redactor = (text: string) => string;

/** Values shorter than this are not masked on their own: "true", "5432" or "info" are not secrets. */
export const MIN_SECRET_LENGTH = 6;

/**
 * What to mask for one runtime variable: its whole value when it is long enough, and the user-info
 * of every URL inside it (`user:password@`) with the password alone, because a runtime often prints
 * a URL rebuilt from its parts rather than the value as it was given.
 */
export function runtimeSecrets(env: Readonly<Record<string, string>>): NamedSecret[] {
  const secrets: NamedSecret[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (value.length >= MIN_SECRET_LENGTH) secrets.push({ name, value });
    // Linear: the character classes of the user-info and the "://" before it cannot overlap.
    for (const match of value.matchAll(/[a-zA-Z][a-zA-Z0-9+.-]*:\/\/([^/?#@\s]+)@/g)) {
      const userInfo = match[1] ?? '';
      const colon = userInfo.indexOf(':');
      if (colon !== -1 || userInfo.length >= MIN_SECRET_LENGTH) secrets.push({ name: `${name} user-info`, value: userInfo });
      const password = colon === -1 ? '' : userInfo.slice(colon + 1);
      if (password.length >= MIN_SECRET_LENGTH) {
        secrets.push({ name: `${name} password`, value: password });
        const decoded = safeDecode(password);
        if (decoded !== password && decoded.length >= MIN_SECRET_LENGTH)
          secrets.push({ name: `${name} password`, value: decoded });
      }
    }
  }
  return secrets;
}

/** How much of a value, cut at the very start or end of the text, is still masked. */
const MIN_PARTIAL_LENGTH = 4;

/**
 * The shortest form looked for across line breaks and spaces. A shorter one would be found in words
 * that merely follow each other ("info 12"); wrapping at a column is a risk for long values.
 */
const MIN_WRAPPED_LENGTH = 20;

/** One form of one secret, folded as the views are. */
interface Pattern {
  readonly name: string;
  /** The secret's place in the list: of two equal values, or equal matches, the first names it. */
  readonly rank: number;
  readonly folded: string;
  readonly foldedUnwrapped: string;
  /** The shortest piece at an edge that is masked: about MIN_PARTIAL_LENGTH characters of the value. */
  readonly minPartial: number;
}

/** Where a form was found in the text (the text's own indices), and whose it is. */
interface Hit {
  readonly start: number;
  readonly end: number;
  readonly name: string;
  readonly rank: number;
}

/**
 * A redactor for these secrets. Each is looked for in every form a runtime may print it in
 * (`redact-forms.ts`: NFC and NFD, hex, base64 at each alignment) and in every decoded view of the
 * text (`redact-views.ts`: JSON escapes, percent-encoding and line wrapping undone, case folded).
 * Text fetched from the engine can begin or end in the middle of a value (a log entry split by the
 * engine, a runtime killed mid-write), so a piece of a value at either edge of the text is masked too.
 *
 * Security: every match is a span of the original text, and the spans are masked as their union.
 * Replacing one secret after another would let the first replacement destroy an overlapping match of
 * the second and leave most of it visible. A span inside another (the password inside the URL) adds
 * nothing to the marker; overlapping ones are named together: `[A,B]`.
 */
export function createRedactor(secrets: readonly NamedSecret[]): Redactor {
  const patterns = patternsOf(secrets);
  if (patterns.length === 0) return (text) => text;
  return (text) => {
    const hits: Hit[] = [];
    for (const view of viewsOf(text)) {
      for (const pattern of patterns) {
        const form = view.unwrapped ? pattern.foldedUnwrapped : pattern.folded;
        if (view.unwrapped && form.length < MIN_WRAPPED_LENGTH) continue;
        findAll(view, form, pattern, hits);
        findEdges(view, form, pattern, hits);
      }
    }
    return maskUnion(text, hits);
  };
}

function patternsOf(secrets: readonly NamedSecret[]): Pattern[] {
  const patterns: Pattern[] = [];
  const seen = new Set<string>();
  secrets.forEach(({ name, value }, rank) => {
    if (value.length === 0) return;
    for (const form of formsOf(value)) {
      const folded = fold(form);
      if (seen.has(folded)) continue;
      seen.add(folded);
      const minPartial = Math.max(MIN_PARTIAL_LENGTH, Math.ceil((MIN_PARTIAL_LENGTH * form.length) / value.length));
      patterns.push({ name, rank, folded, foldedUnwrapped: fold(unwrappedForm(form)), minPartial });
    }
  });
  return patterns;
}

/** Every occurrence, overlapping ones too: plain indexOf, no pattern built from a secret. */
function findAll(view: View, form: string, pattern: Pattern, hits: Hit[]): void {
  if (form.length === 0) return;
  for (let at = view.text.indexOf(form); at !== -1; at = view.text.indexOf(form, at + 1)) {
    hits.push(spanOf(view, at, at + form.length, pattern));
  }
}

/** The longest end of the form that the view starts with, and the longest start it ends with. */
function findEdges(view: View, form: string, pattern: Pattern, hits: Hit[]): void {
  const n = view.text.length;
  const head = overlap(form, view.text);
  if (head >= pattern.minPartial) hits.push(spanOf(view, 0, head, pattern));
  const tail = overlap(view.text, form);
  if (tail >= pattern.minPartial) hits.push(spanOf(view, n - tail, n, pattern));
}

function spanOf(view: View, from: number, to: number, { name, rank }: Pattern): Hit {
  return { start: view.start[from] ?? 0, end: view.end[to - 1] ?? 0, name, rank };
}

/**
 * The largest k such that `a` ends with the first k units of `b`, in linear time (Knuth-Morris-Pratt
 * over the first units of `b`), where trying every k would be quadratic in a long secret's forms.
 */
function overlap(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  const prefix = new Int32Array(length);
  for (let i = 1, k = 0; i < length; i += 1) {
    while (k > 0 && b[i] !== b[k]) k = prefix[k - 1] ?? 0;
    if (b[i] === b[k]) k += 1;
    prefix[i] = k;
  }
  let matched = 0;
  for (let i = a.length - length; i < a.length; i += 1) {
    if (matched === length) matched = prefix[matched - 1] ?? 0;
    while (matched > 0 && a[i] !== b[matched]) matched = prefix[matched - 1] ?? 0;
    if (a[i] === b[matched]) matched += 1;
  }
  return matched;
}

/** Replaces each group of overlapping spans by one marker naming the secrets of its outermost spans. */
function maskUnion(text: string, hits: Hit[]): string {
  hits.sort((x, y) => x.start - y.start || y.end - x.end || x.rank - y.rank);
  let out = '';
  let cursor = 0;
  let names: string[] = [];
  let end = -1;
  for (const hit of hits) {
    if (hit.start >= end) {
      if (names.length > 0) out += `[${names.join(',')}]`;
      out += text.slice(cursor, hit.start);
      names = [hit.name];
      end = hit.end;
      cursor = hit.end;
    } else if (hit.end > end) {
      if (!names.includes(hit.name)) names.push(hit.name);
      end = hit.end;
      cursor = hit.end;
    }
  }
  if (names.length > 0) out += `[${names.join(',')}]`;
  return out + text.slice(cursor);
}

const CUT_MARK = '[cut] ';

/**
 * The last `maxChars` characters of text that is already masked, cut at a line start so that no
 * line is left in part. A single last line longer than the limit keeps its end, marked as cut.
 */
export function tail(text: string, maxChars: number): string {
  if (text.length <= maxChars) return text;
  const cut = text.slice(-maxChars);
  const newline = cut.indexOf('\n');
  if (newline !== -1 && newline < cut.length - 1) return cut.slice(newline + 1);
  return `${CUT_MARK}${text.slice(CUT_MARK.length - maxChars)}`;
}

function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
