/**
 * Masks secrets in text that comes back from the runtime (its log lines) or from the engine, before
 * it can reach a response, the status, the state file, the audit log or the agent's own log.
 *
 * Security: a runtime that prints `connecting to postgres://user:pw@db/x` would otherwise hand the
 * server-owned DATABASE_URL to whoever reads the deploy answer (the GitHub Actions log, for one).
 * Each secret is replaced by a marker naming its variable, `[DATABASE_URL]`, so the line stays useful.
 */
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
 * A redactor for these secrets. Longer values are replaced first, so a secret that contains another
 * is masked whole. A value is also looked for in its JSON-escaped form, as a runtime that logs JSON
 * prints it. Text fetched from the engine can begin or end in the middle of a value (a log entry
 * split by the engine, a runtime killed mid-write), so a piece of a value at either edge of the text
 * is masked too.
 */
export function createRedactor(secrets: readonly NamedSecret[]): Redactor {
  const variants = new Map<string, string>();
  for (const { name, value } of secrets) {
    if (value.length === 0) continue;
    for (const form of [value, JSON.stringify(value).slice(1, -1)]) {
      if (!variants.has(form)) variants.set(form, `[${name}]`);
    }
  }
  const ordered = [...variants].sort(([a], [b]) => b.length - a.length);
  if (ordered.length === 0) return (text) => text;
  return (text) => {
    let out = text;
    for (const [value, marker] of ordered) {
      if (out.includes(value)) out = out.split(value).join(marker);
    }
    for (const [value, marker] of ordered) out = maskEdges(out, value, marker);
    return out;
  };
}

/** Masks the longest end of `value` that the text starts with, and the longest start it ends with. */
function maskEdges(text: string, value: string, marker: string): string {
  let out = text;
  for (let k = Math.min(value.length - 1, out.length); k >= MIN_PARTIAL_LENGTH; k -= 1) {
    if (out.startsWith(value.slice(-k))) {
      out = `${marker}${out.slice(k)}`;
      break;
    }
  }
  for (let k = Math.min(value.length - 1, out.length); k >= MIN_PARTIAL_LENGTH; k -= 1) {
    if (out.endsWith(value.slice(0, k))) {
      out = `${out.slice(0, -k)}${marker}`;
      break;
    }
  }
  return out;
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
