/**
 * Runs a command inside a fresh sandbox (sandbox.ts): starts the private engine and registries,
 * runs the command with the sandbox described in DREICHOR_SANDBOX, then stops and removes everything
 * and exits with the command's status.
 *
 *   tsx test/support/with-sandbox.ts -- <command...>
 */
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Sandbox } from './sandbox.js';

async function main(): Promise<void> {
  const [separator, command, ...args] = process.argv.slice(2);
  if (separator !== '--' || command === undefined) {
    process.stderr.write('usage: tsx test/support/with-sandbox.ts -- <command...>\n');
    process.exit(2);
  }
  const sandbox = await Sandbox.start((line) => process.stdout.write(`sandbox: ${line}\n`));
  let code = 1;
  const stopOnSignal = () => undefined; // the child gets the signal too; clean up when it exits
  process.on('SIGINT', stopOnSignal);
  process.on('SIGTERM', stopOnSignal);
  try {
    // Everything the tests put in a temporary folder lands inside the sandbox and goes with it.
    const tmp = join(sandbox.info.dir, 't');
    mkdirSync(tmp);
    const child = spawn(command, args, { stdio: 'inherit', env: { ...process.env, ...sandbox.env(), TMPDIR: tmp } });
    code = await new Promise<number>((resolve) => {
      child.on('exit', (c, signal) => resolve(c ?? (signal === null ? 1 : 128)));
      child.on('error', () => resolve(127));
    });
  } finally {
    process.stdout.write('sandbox: stopping the private engine and registries\n');
    await sandbox.stop();
  }
  process.exit(code);
}

void main();
