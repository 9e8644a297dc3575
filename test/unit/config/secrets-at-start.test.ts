import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parse as parseDotenv } from 'dotenv';
import { ConfigError, loadConfig } from '../../../src/config/config.js';
import { parseEnvFile } from '../../../src/config/env-file.js';
import { MINIMAL_ENV } from '../../support/unit-config.js';

/**
 * Secrets that can never match are refused at start, naming the variable: a secret no caller can
 * send would leave deploys and the emergency stop silently unreachable (every request 401).
 */
const dir = mkdtempSync(join(tmpdir(), 'dreichor-secrets-at-start-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const BASE: Record<string, string> = { ...MINIMAL_ENV };
const GOOD = 'a-secret-of-enough-length';

function refused(env: Record<string, string | undefined>, variable: string, message?: RegExp): void {
  assert.throws(
    () => loadConfig({ ...BASE, ...env }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError, String(error));
      assert.equal(error.variable, variable, error.message);
      if (message !== undefined) assert.match(error.message, message);
      assert.ok(!error.message.includes(GOOD), 'the value is never in the message');
      return true;
    },
  );
}

let files = 0;
const file = (content: string) => {
  files += 1;
  const path = join(dir, `secret-${files}`);
  writeFileSync(path, content);
  return path;
};

describe('unusable secrets are refused at start', () => {
  it('a service token secret that is not visible ASCII, or holds a space: refused, naming the variable', () => {
    for (const variable of ['CF_ACCESS_CLIENT_SECRET', 'CF_ACCESS_ROTATION_CLIENT_SECRET']) {
      const rotation = variable === 'CF_ACCESS_ROTATION_CLIENT_SECRET' ? { CF_ACCESS_ROTATION_CLIENT_ID: 'next.access' } : {};
      // What systemd's EnvironmentFile= makes of `SECRET=... # note`: the note stays in the value.
      for (const value of [`${GOOD} # rotated in May`, `${GOOD}\u00e4`, `${GOOD}\u00a0`, `${GOOD}\t`, `x${GOOD}\u200b`]) {
        refused({ ...rotation, [variable]: value }, variable, /visible ASCII/);
      }
    }
    assert.equal(loadConfig({ ...BASE, CF_ACCESS_CLIENT_SECRET: `${GOOD}!~#%` }).serviceTokens[0]?.clientSecret, `${GOOD}!~#%`);
  });

  it('a _FILE with more than one newline at its end, or a second line: refused, naming the _FILE variable', () => {
    for (const [variable, extra] of [
      ['CF_ACCESS_CLIENT_SECRET_FILE', { CF_ACCESS_CLIENT_SECRET: undefined }],
      ['CF_ACCESS_ROTATION_CLIENT_SECRET_FILE', { CF_ACCESS_ROTATION_CLIENT_ID: 'next.access' }],
      ['REGISTRY_PASSWORD_FILE', { REGISTRY_USERNAME: 'bot' }],
    ] as const) {
      for (const content of [`${GOOD}\n\n`, `${GOOD}\r\n\r\n`, `${GOOD}\nsecond line\n`, `\n${GOOD}`]) {
        refused({ ...extra, [variable]: file(content) }, variable, /one line/);
      }
      for (const content of [GOOD, `${GOOD}\n`, `${GOOD}\r\n`]) {
        assert.doesNotThrow(
          () => loadConfig({ ...BASE, ...extra, [variable]: file(content) }),
          `${variable}: ${JSON.stringify(content)}`,
        );
      }
    }
  });

  it('the built agent exits 2 and names the variable, without its value', async () => {
    // Should it start after all, it must not take a port or a folder of this machine's own.
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const { port: free } = probe.address() as AddressInfo;
        probe.close(() => resolve(free));
      });
    });
    const r = spawnSync(process.execPath, ['dist/agent.js'], {
      env: {
        ...BASE,
        CF_ACCESS_CLIENT_SECRET: `${GOOD} # note`,
        PORT: String(port),
        STATE_DIR: join(dir, 'state'),
        PATH: process.env['PATH'] ?? '',
      },
      encoding: 'utf8',
      timeout: 10_000,
    });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /invalid configuration: CF_ACCESS_CLIENT_SECRET: must be visible ASCII/);
    assert.ok(!r.stderr.includes(GOOD));
  });
});

describe('env files are read as systemd reads them', () => {
  it('ENV_FILE with a value systemd would read differently (a trailing # note, quotes, a backslash, CRLF): refused, naming the line', () => {
    for (const [line, why] of [
      [`CF_ACCESS_CLIENT_SECRET=${GOOD} # rotated in May`, /line 2 \(CF_ACCESS_CLIENT_SECRET\): has #/],
      [`CF_ACCESS_CLIENT_SECRET=${GOOD}#x`, /line 2 \(CF_ACCESS_CLIENT_SECRET\)/],
      [`CF_ACCESS_CLIENT_SECRET="${GOOD}"`, /line 2 \(CF_ACCESS_CLIENT_SECRET\)/],
      [`CF_ACCESS_CLIENT_SECRET='${GOOD}'`, /line 2 \(CF_ACCESS_CLIENT_SECRET\)/],
      [`CF_ACCESS_CLIENT_SECRET=${GOOD}\\`, /line 2 \(CF_ACCESS_CLIENT_SECRET\)/],
      [`CF_ACCESS_CLIENT_SECRET=${GOOD}\r`, /line 2 \(CF_ACCESS_CLIENT_SECRET\): ends in a carriage return/],
      [`export CF_ACCESS_CLIENT_SECRET=${GOOD}`, /line 2: is not NAME=value/],
    ] as const) {
      const envFile = file(`# the agent\n${line}\nENVIRONMENT=dev\n`);
      assert.throws(
        () => loadConfig({ ...BASE, CF_ACCESS_CLIENT_SECRET: undefined, ENV_FILE: envFile }),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError, String(error));
          assert.equal(error.variable, 'ENV_FILE');
          assert.match(error.message, why);
          assert.ok(!error.message.includes(GOOD), 'never the value');
          return true;
        },
        line,
      );
    }
  });

  it('where it reads a file, dotenv (the old reader) and the systemd subset agree: the env examples, and a file of comments and blank lines', () => {
    for (const text of [
      readFileSync('env/dev.env.example', 'utf8'),
      readFileSync('env/prod.env.example', 'utf8'),
      '# comment\n; also a comment\n\n  # indented\nA=1\nB=\nC=x y\nD=  spaced  \nE=postgres://u:p@h:5432/db?x=1&y=$Z\n',
    ]) {
      assert.deepEqual(parseEnvFile(text), parseDotenv(text));
    }
  });
});
