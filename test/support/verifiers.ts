/**
 * The independent verifiers the oracle tests hold the agent's verdicts against: Debian sid's cosign
 * (3.1.x) and sigstore-go (its `sigstore-go-verification` example command), fetched by
 * scripts/verifiers.sh; the test command exports their folder as DREICHOR_VERIFIERS_BIN.
 *
 * Offline, always: every run gets `--trusted-root` (cosign otherwise fetches Sigstore's TUF
 * repository), an empty signing config for signing (no Fulcio, Rekor or timestamp authority), a home
 * and TUF folder of its own, and a proxy on a dead loopback port for anything but loopback: a request
 * the flags did not foresee fails at 127.0.0.1:9 instead of leaving the machine (Go's HTTP client
 * sends every request through the proxy and resolves no name itself).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const VERIFIERS_ENV = 'DREICHOR_VERIFIERS_BIN';

export interface Verdict {
  readonly ok: boolean;
  readonly output: string;
}

/** The verifiers' folder, or why the oracle tests cannot run (printed as the skip's reason). */
export function verifiersBin(): { bin: string } | { skip: string } {
  const bin = process.env[VERIFIERS_ENV];
  if (bin === undefined || bin === '') {
    return {
      skip: `${VERIFIERS_ENV} is not set: scripts/verifiers.sh could not fetch cosign and sigstore-go (see the test run's output)`,
    };
  }
  for (const tool of ['cosign', 'sigstore-go-verification']) {
    if (!existsSync(join(bin, tool))) return { skip: `${tool} is not in ${VERIFIERS_ENV}=${bin}` };
  }
  return { bin };
}

/** Sigstore's empty trusted root: enough for cosign to sign and verify with a key, offline. */
const EMPTY_TRUSTED_ROOT = { mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1' };

export class Verifiers {
  /** An empty trusted root and signing config, for key-only signing and verification. */
  readonly emptyRoot: string;
  readonly signingConfig: string;

  private constructor(
    private readonly bin: string,
    private readonly dir: string,
  ) {
    this.emptyRoot = join(dir, 'empty-trusted-root.json');
    this.signingConfig = join(dir, 'signing-config.json');
  }

  static async start(bin: string, dir: string): Promise<Verifiers> {
    mkdirSync(join(dir, 'home'), { recursive: true });
    mkdirSync(join(dir, 'tuf'), { recursive: true });
    const verifiers = new Verifiers(bin, dir);
    writeFileSync(verifiers.emptyRoot, JSON.stringify(EMPTY_TRUSTED_ROOT));
    const made = await verifiers.cosign(
      'signing-config',
      'create',
      '--no-default-fulcio',
      '--no-default-oidc',
      '--no-default-rekor',
      '--no-default-tsa',
      '--out',
      verifiers.signingConfig,
    );
    if (!made.ok) throw new Error(`cosign signing-config create: ${made.output}`);
    return verifiers;
  }

  /** A cosign key pair (no password), as `cosign generate-key-pair` writes it: paths of both halves. */
  async keyPair(name: string): Promise<{ key: string; pub: string }> {
    const folder = join(this.dir, name);
    mkdirSync(folder, { recursive: true });
    const made = await this.exec('cosign', ['generate-key-pair'], folder);
    if (!made.ok) throw new Error(`cosign generate-key-pair: ${made.output}`);
    return { key: join(folder, 'cosign.key'), pub: join(folder, 'cosign.pub') };
  }

  cosign(...args: string[]): Promise<Verdict> {
    return this.exec('cosign', args);
  }

  sigstoreGo(...args: string[]): Promise<Verdict> {
    return this.exec('sigstore-go-verification', args);
  }

  private async exec(tool: string, args: string[], cwd = this.dir): Promise<Verdict> {
    const env = {
      PATH: '/usr/bin:/bin',
      HOME: join(this.dir, 'home'),
      TUF_ROOT: join(this.dir, 'tuf'),
      COSIGN_PASSWORD: '',
      COSIGN_YES: 'true',
      HTTP_PROXY: 'http://127.0.0.1:9',
      HTTPS_PROXY: 'http://127.0.0.1:9',
      NO_PROXY: '127.0.0.1,localhost',
    };
    try {
      const { stdout, stderr } = await run(join(this.bin, tool), args, { env, cwd, timeout: 60_000, maxBuffer: 4 * 1024 * 1024 });
      return { ok: true, output: `${stdout}${stderr}` };
    } catch (error) {
      const e = error as { stdout?: string; stderr?: string; message: string; killed?: boolean };
      if (e.killed === true) throw new Error(`${tool} ${args.join(' ')} timed out`);
      return { ok: false, output: `${e.stdout ?? ''}${e.stderr ?? e.message}` };
    }
  }
}
