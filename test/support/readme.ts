/**
 * The README, read as an operator reads it: its shell blocks, the commands in them, and the scripts it
 * runs directly. The systemd test runs the install steps' commands exactly as printed here, and a unit
 * test checks that every script the README runs directly is executable in git, as a fresh clone has it.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export function readReadme(path = 'README.md'): string {
  return readFileSync(path, 'utf8');
}

/** The text of the README between the first line starting with `from` and the next one starting with `to`. */
export function section(readme: string, from: string, to: string): string {
  const lines = readme.split('\n');
  const start = lines.findIndex((l) => l.startsWith(from));
  if (start === -1) throw new Error(`the README has no line starting with ${JSON.stringify(from)}`);
  const end = lines.findIndex((l, i) => i > start && l.startsWith(to));
  if (end === -1) throw new Error(`the README has no line starting with ${JSON.stringify(to)} after ${JSON.stringify(from)}`);
  return lines.slice(start, end).join('\n');
}

/** Every command line of the ```sh blocks in `text`, as printed, without its trailing comment. */
export function shellCommands(text: string): string[] {
  const commands: string[] = [];
  let inShell = false;
  for (const line of text.split('\n')) {
    if (/^```/.test(line)) {
      inShell = !inShell && /^```(sh|bash|shell)\s*$/.test(line);
      continue;
    }
    if (!inShell) continue;
    const command = withoutComment(line).trim();
    if (command !== '') commands.push(command);
  }
  return commands;
}

/** A line without its `# comment` (a # at the start of a word, outside quotes). */
function withoutComment(line: string): string {
  let quote: string | null = null;
  for (let i = 0; i < line.length; i += 1) {
    const c = line[i];
    if (quote !== null) {
      if (c === quote) quote = null;
    } else if (c === "'" || c === '"') {
      quote = c;
    } else if (c === '#' && (i === 0 || /\s/.test(line[i - 1] ?? ''))) {
      return line.slice(0, i);
    }
  }
  return line;
}

/**
 * The files under scripts/ that the README runs directly, as a command of its own (`scripts/x.sh
 * ...`, also after `&&`, `;` or `|`), in its shell blocks or in inline code that carries arguments.
 * A script run as `bash scripts/x.sh` or `node scripts/x.mjs`, or only named, is not among them.
 */
export function scriptsRunDirectly(readme: string): string[] {
  const lines = [...shellCommands(readme), ...[...readme.matchAll(/`(\.?\/?scripts\/[^`\s]+ [^`]*)`/g)].map((m) => m[1] ?? '')];
  const found = new Set<string>();
  for (const line of lines) {
    for (const segment of line.split(/&&|\|\||;|\|/)) {
      const words = segment.trim().split(/\s+/);
      // Skip the variable assignments before a command (`ENV=dev scripts/install.sh`).
      const first = words.find((w) => !/^[A-Za-z_][A-Za-z0-9_]*=/.test(w)) ?? '';
      const match = /^(?:\.\/)?(scripts\/[\w./-]+)$/.exec(first);
      if (match?.[1] !== undefined) found.add(match[1]);
    }
  }
  return [...found].sort();
}

/** Each tracked file's mode in git's index ("100755", "100644", ...), by path. */
export function gitModes(cwd = process.cwd()): Map<string, string> {
  const out = execFileSync('git', ['ls-files', '-s', '-z'], { cwd, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const modes = new Map<string, string>();
  for (const entry of out.split('\0')) {
    const match = /^(\d{6}) [0-9a-f]+ \d\t(.+)$/.exec(entry);
    if (match?.[1] !== undefined && match[2] !== undefined) modes.set(match[2], match[1]);
  }
  return modes;
}

/**
 * A copy of the checkout as a fresh clone has it: every tracked file, its content from the work tree
 * and its mode from git (a script committed without its executable bit is not executable here, as
 * it would not be in a clone), nothing untracked (no node_modules, no dist).
 */
export function copyAsClone(dest: string, cwd = process.cwd()): void {
  for (const [path, mode] of gitModes(cwd)) {
    if (mode === '120000' || mode === '160000') continue; // symbolic links and submodules: none here
    const target = join(dest, path);
    mkdirSync(dirname(target), { recursive: true });
    copyFileSync(join(cwd, path), target);
    chmodSync(target, mode === '100755' ? 0o755 : 0o644);
  }
}
