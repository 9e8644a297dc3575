/**
 * The forms of one secret to look for, for the encodings a decoded view of the text cannot undo
 * (`redact-views.ts` undoes JSON escapes, percent-encoding and line wrapping in the text instead).
 *
 * Security: a runtime may print a secret in another Unicode normal form than the one configured
 * (macOS file names and some libraries produce NFD), as the hex of its UTF-8 bytes (a debug dump of a
 * buffer), or in base64 (an `Authorization: Basic base64(user:password)` header). In base64 the
 * secret need not start on a 3-byte boundary, and what precedes and follows it changes the characters
 * at its ends, so the form is the core that depends on the secret's bytes alone, at each alignment.
 */
export function formsOf(value: string): string[] {
  const forms = new Set<string>();
  for (const text of new Set([value, value.normalize('NFC'), value.normalize('NFD')])) {
    forms.add(text);
    const bytes = Buffer.from(text, 'utf8');
    forms.add(bytes.toString('hex'));
    for (const offset of [0, 1, 2]) {
      const core = base64Core(bytes, offset);
      forms.add(core);
      forms.add(core.replaceAll('+', '-').replaceAll('/', '_'));
    }
  }
  forms.delete('');
  return [...forms];
}

/**
 * The base64 characters that encode only the secret's bits when it starts `offset` bytes after a
 * 3-byte boundary: the first character wholly after the offset, up to the last wholly inside it.
 */
function base64Core(bytes: Buffer, offset: number): string {
  const encoded = Buffer.concat([Buffer.alloc(offset), bytes]).toString('base64');
  return encoded.slice(Math.ceil((offset * 8) / 6), Math.floor(((offset + bytes.length) * 8) / 6));
}
