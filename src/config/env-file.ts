/**
 * Environment files, read the way production reads them. In production, systemd's `EnvironmentFile=`
 * reads /etc/dreichor/<env>/deploy-agent.env; the demo and `ENV_FILE` read such a file in Node. The
 * two parsers disagree on more than one might think: dotenv ends an unquoted value at any `#`
 * (`SECRET=abc # note` is `abc` to dotenv and `abc # note` to systemd) and undoes quotes and
 * escapes its own way. A secret that works in the demo and not in production (every request 401,
 * the brake unreachable) is the result.
 *
 * So this reads only the part of the format on which both agree, and refuses the rest, naming the
 * line and the variable (never the value): `NAME=value` lines, blank lines, and comment lines
 * starting with `#` or `;`. A value may not hold `#`, quotes, a backquote or a backslash, and no line
 * a carriage return. Spaces around the value are dropped, as both do.
 */
export class EnvFileError extends Error {
  constructor(
    readonly line: number,
    readonly variable: string | null,
    message: string,
  ) {
    super(`line ${line}${variable === null ? '' : ` (${variable})`}: ${message}`);
    this.name = 'EnvFileError';
  }
}

const ASSIGNMENT = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/;
const READ_DIFFERENTLY = /[#"'`\\]/;

export function parseEnvFile(text: string): Record<string, string> {
  const values: Record<string, string> = {};
  text.split('\n').forEach((raw, index) => {
    const line = index + 1;
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('#') || trimmed.startsWith(';')) return;
    if (raw.includes('\r')) {
      const name = /^([A-Za-z_][A-Za-z0-9_]*)=/.exec(raw)?.[1] ?? null;
      throw new EnvFileError(line, name, 'ends in a carriage return (a file saved with Windows line ends)');
    }
    const match = ASSIGNMENT.exec(raw);
    if (match === null)
      throw new EnvFileError(line, null, 'is not NAME=value (no spaces before NAME or around "=", no "export")');
    const [, name = '', value = ''] = match;
    if (READ_DIFFERENTLY.test(value)) {
      throw new EnvFileError(
        line,
        name,
        "has # \" ' ` or \\ in its value, which systemd's EnvironmentFile= reads differently (a trailing # note stays part of the value there): remove them",
      );
    }
    values[name] = value.trim();
  });
  return values;
}
