/**
 * The demo behind `npm run demo`: runs the dev agent on this machine against a private Docker engine
 * and a local registry, from env/dev.env.example, and deploys through the same script CI uses.
 * Everything it starts, it stops; everything it creates, it removes.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseEnvFile } from '../src/config/env-file.js';
import { type AgentProcess, spawnAgent } from '../test/support/agent-process.js';
import { publishImage, REPOSITORY_PATH, Sandbox } from '../test/support/sandbox.js';

const say = (line: string) => process.stdout.write(`\ndemo: ${line}\n`);
const PORT = process.env['DEMO_PORT'] ?? '3005';
const url = `http://127.0.0.1:${PORT}`;
// A demo password, to show that the agent masks it in what a failing runtime prints.
const DATABASE_URL = 'postgres://dreichor:demo-db-password@127.0.0.1:5432/dreichor_dev';

async function main(): Promise<void> {
  say('1. starting a private Docker engine and an image registry on 127.0.0.1, and publishing sample runtime images');
  const sandbox = await Sandbox.start((line) => process.stdout.write(`      ${line}\n`));
  let agent: AgentProcess | null = null;
  try {
    const repository = `${sandbox.info.registry}/${REPOSITORY_PATH}`;
    const dir = join(sandbox.info.dir, 'demo');
    const folders = { audit: join(dir, 'audit-events'), snapshots: join(dir, 'snapshots'), state: join(dir, 'state') };
    for (const f of Object.values(folders)) mkdirSync(f, { recursive: true });
    writeFileSync(join(dir, 'runtime.env'), `DATABASE_URL=${DATABASE_URL}\nSAFETY_MODE=strict\nLOG_LEVEL=info\n`, {
      mode: 0o600,
    });

    say("2. writing the agent configuration: env/dev.env.example with this machine's engine, registry and folders");
    // Read as systemd's EnvironmentFile= reads it in production, or refused where the two would differ.
    const example = parseEnvFile(readFileSync('env/dev.env.example', 'utf8'));
    const local: Record<string, string> = {
      ...example,
      PORT,
      IMAGE_REPOSITORY: repository,
      AUDIT_EVENTS_PATH: folders.audit,
      SNAPSHOTS_PATH: folders.snapshots,
      RUNTIME_ENV_FILE: join(dir, 'runtime.env'),
      // The private engine has no bridge network: the demo runtime gets none.
      RUNTIME_NETWORK: 'none',
      STATE_DIR: folders.state,
      DOCKER_HOST: sandbox.info.dockerHost,
      STOP_TIMEOUT_SECONDS: '5',
      START_CHECK_SECONDS: '2',
      // The example's FAKE token is public, and the agent refuses it: a token of the demo's own.
      CF_ACCESS_CLIENT_ID: 'demo-client.access',
      CF_ACCESS_CLIENT_SECRET: randomBytes(24).toString('hex'),
      // No Cloudflare Access here, so no Access JWT check: the service token is still required.
      CF_ACCESS_TEAM_DOMAIN: '',
      CF_ACCESS_AUD: '',
      // The sample images are not attested: the demo runs without verification, said explicitly.
      IMAGE_VERIFICATION: 'none',
      SIGSTORE_TRUSTED_ROOT_FILE: '',
      ATTESTATION_REPOSITORY: '',
      ATTESTATION_SIGNER_WORKFLOW: '',
      ATTESTATION_SOURCE_REFS: '',
    };
    const envFile = join(dir, 'dev.env');
    writeFileSync(
      envFile,
      `${Object.entries(local)
        .map(([k, v]) => `${k}=${v}`)
        .join('\n')}\n`,
      { mode: 0o600 },
    );
    process.stdout.write(`      ${envFile}\n`);

    say(`3. starting the dev agent: ENV_FILE=${envFile} node dist/agent.js`);
    // Only ENV_FILE (and PATH): nothing from this shell's environment may override the file.
    agent = spawnAgent({ ENV_FILE: envFile }, { port: PORT, echoStderr: true });
    const headers = {
      'CF-Access-Client-Id': local['CF_ACCESS_CLIENT_ID'] ?? '',
      'CF-Access-Client-Secret': local['CF_ACCESS_CLIENT_SECRET'] ?? '',
      'Content-Type': 'application/json',
    };
    const until = Date.now() + 15_000;
    while (
      !(await fetch(`${url}/v1/status`, { headers }).then(
        (r) => r.ok,
        () => false,
      ))
    ) {
      if (Date.now() > until || agent.child.exitCode !== null) throw new Error('the agent did not start listening');
      await sleep(100);
    }
    process.stdout.write(`      listening on ${url}\n`);

    const ref = (tag: string) => `${repository}:${tag}`;
    const deploy = (tag: string) =>
      runScript({
        AGENT_URL: url,
        IMAGE: ref(tag),
        ENVIRONMENT: 'dev',
        CF_ACCESS_CLIENT_ID: headers['CF-Access-Client-Id'],
        CF_ACCESS_CLIENT_SECRET: headers['CF-Access-Client-Secret'],
      });
    const status = async () => (await fetch(`${url}/v1/status`, { headers })).json() as Promise<Record<string, unknown>>;

    say('4. deploying v1 through scripts/deploy-and-verify.mjs, as the GitHub workflow does');
    await deploy('v1');
    say('5. deploying v2 the same way: a replacement: v1 is stopped before v2 starts, and removed once v2 runs');
    await deploy('v2');

    say('6. deploying "crash", a runtime that cannot reach its database: 502, with its last log lines (its DATABASE_URL masked)');
    const crashed = await deploy('crash');
    if (crashed === 0) throw new Error('the crashing runtime was reported as deployed');
    const down = await status();
    process.stdout.write(
      `      status: running=${String(down['running'])}, last deploy ${String((down['last_deploy'] as Record<string, unknown>)['outcome'])}, previous image ${String(down['previous_image'])}\n`,
    );
    say(
      `7. rolling back, explicitly (the agent never does it on its own): deploying the previous image, ${String(down['previous_image'])}`,
    );
    if ((await deploy('v2')) !== 0) throw new Error('the rollback failed');
    const back = await status();
    // The way back from here is the last image that deployed successfully before, never "crash".
    process.stdout.write(`      status: running=${String(back['running'])}, previous image ${String(back['previous_image'])}\n`);
    if (String(back['previous_image']).endsWith(':crash')) throw new Error('status offers the failed image as the way back');

    say('8. v1 is pushed again with other content; deploying it is refused: tags are immutable (409)');
    await publishImage(sandbox.info, 'v1');
    if ((await deploy('v1')) === 0) throw new Error('a re-pushed tag was deployed');

    say(`9. GET ${url}/v1/status`);
    process.stdout.write(`${JSON.stringify(await status(), null, 2)}\n`);

    say(`10. POST ${url}/v1/stop`);
    process.stdout.write(
      `${JSON.stringify(await (await fetch(`${url}/v1/stop`, { method: 'POST', headers, body: '{}' })).json())}\n`,
    );

    say(`11. the audit log, ${join(folders.state, 'audit.jsonl')}:`);
    for (const line of readFileSync(join(folders.state, 'audit.jsonl'), 'utf8').trim().split('\n')) {
      const l = JSON.parse(line) as Record<string, unknown>;
      process.stdout.write(
        `      #${String(l['seq'])} ${String(l['endpoint'])} ${String(l['outcome'])} ${String(l['status'])} ${String(l['image'] ?? '')}\n`,
      );
    }
  } finally {
    say('12. cleaning up: stopping the agent, the engine and the registries, removing their folders');
    await agent?.stop();
    await sandbox.stop();
  }
  say('done');
}

/** Runs the CI script; resolves with its exit code (the demo shows failures too). */
function runScript(env: Record<string, string>): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['scripts/deploy-and-verify.mjs'], {
      env: { PATH: process.env['PATH'] ?? '', ...env },
      stdio: 'inherit',
    });
    child.on('exit', (code) => resolve(code ?? 1));
  });
}

main().catch((error: unknown) => {
  process.stderr.write(`demo failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
