import { pino, stdTimeFunctions } from 'pino';
import { type Config, ConfigError, loadConfig } from './config/config.js';
import { AgentError, describe } from './errors.js';
import { type RunningAgent, startAgent } from './http/app.js';
import { type VerifyResult, verifyAuditFile } from './state/audit.js';
import { rebuildState } from './state/rebuild.js';
import { COMMIT, VERSION } from './version.js';

/**
 * Entry point. `node agent.js` runs the agent from its environment (and ENV_FILE);
 * `node agent.js audit-verify <file>` checks an audit log's hash chain;
 * `node agent.js state-rebuild` rebuilds a lost STATE_DIR/state.json from the verified audit log;
 * `node agent.js verify-release <file> <bundle> --trusted-root <root>` checks a release of the agent
 * before it is installed.
 */
const NAME = 'dreichor-deploy-agent';

function fatal(message: string, code: number): never {
  process.stderr.write(`${NAME}: ${message}\n`);
  process.exit(code);
}

/** Streams the file: a log of any size is checked in constant memory. */
async function auditVerify(file: string | undefined): Promise<never> {
  if (file === undefined) fatal('usage: agent.js audit-verify <audit.jsonl>', 2);
  let result: VerifyResult;
  try {
    result = await verifyAuditFile(file);
  } catch (error) {
    fatal(`cannot read ${file}: ${describe(error)}`, 2);
  }
  if (result.ok) {
    process.stdout.write(`${file}: intact, ${result.lines} lines\n`);
    process.exit(0);
  }
  process.stdout.write(`${file}: line ${result.badLine} of ${result.lines}: ${result.problem}\n`);
  process.exit(1);
}

/** Exit 2 for a state the agent refuses (restarting cannot fix it), 1 for anything else. */
const exitCodeOf = (error: unknown): number => (error instanceof AgentError && error.code === 'state_refused' ? 2 : 1);

function configFromEnvironment(): Config {
  try {
    return loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) fatal(`invalid configuration: ${error.message}`, 2);
    fatal(`invalid configuration: ${describe(error)}`, 2);
  }
}

/** Run with the agent's own environment (its env file), with the agent stopped. */
async function stateRebuild(): Promise<never> {
  const config = configFromEnvironment();
  try {
    const report = await rebuildState(config.stateDir, { environment: config.environment, containerName: config.containerName });
    process.stdout.write(
      `${report.file}: rebuilt from ${report.lines} verified audit lines: ${report.tags} tag records, ${report.deployments} deploys of rollback history\n`,
    );
    if (report.tagsNotRestored.length > 0) {
      process.stdout.write(
        `not restored (deployed by an agent that did not yet record the tag's digest; such a tag is not pinned until deployed again): ${report.tagsNotRestored.join(', ')}\n`,
      );
    }
    process.exit(0);
  } catch (error) {
    fatal(`state-rebuild: ${describe(error)}`, exitCodeOf(error));
  }
}

async function main(): Promise<void> {
  if (process.argv[2] === '--version') {
    process.stdout.write(`${NAME} ${VERSION} (${COMMIT})\n`);
    process.exit(0);
  }
  if (process.argv[2] === 'audit-verify') await auditVerify(process.argv[3]);
  if (process.argv[2] === 'state-rebuild' && process.argv.length === 3) await stateRebuild();
  if (process.argv[2] === 'verify-release') {
    // Loaded only for this command: the agent loads Sigstore's code only in a deploy's verification process.
    const { verifyReleaseCommand } = await import('./supply-chain/release.js');
    const { code, text } = verifyReleaseCommand(process.argv.slice(3));
    (code === 0 ? process.stdout : process.stderr).write(`${text}\n`);
    process.exit(code);
  }
  if (process.argv.length > 2) fatal(`unknown arguments: ${process.argv.slice(2).join(' ').slice(0, 200)}`, 2);

  const config = configFromEnvironment();

  // JSON lines for journald: ISO timestamps and level names, so `journalctl -o cat | pino-pretty` or
  // jq read them without a lookup table.
  const logger = pino({
    name: NAME,
    level: config.logLevel,
    base: { environment: config.environment, pid: process.pid },
    timestamp: stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
  let agent: RunningAgent;
  try {
    agent = await startAgent(config, { logger });
  } catch (error) {
    fatal(`cannot start: ${describe(error)}`, exitCodeOf(error));
  }
  logger.info(
    { url: agent.url, container: config.containerName, repository: config.imageRepository, version: VERSION, commit: COMMIT },
    'listening',
  );

  let closing = false;
  const shutdown = (signal: string) => {
    if (closing) {
      // systemd, or an impatient operator, asking again must not cut a deploy in its middle.
      logger.warn({ signal, busy: agent.deployer.busy }, 'already shutting down: waiting for the operation in progress');
      return;
    }
    closing = true;
    logger.info(
      { signal, busy: agent.deployer.busy },
      'shutting down: new deploys and stops are refused, the one in progress finishes',
    );
    agent.close().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('uncaughtException', (error) => {
    // A bug, never a request: requests end in the error middleware. Exit so systemd restarts clean.
    logger.fatal({ err: error }, 'uncaught exception');
    process.exit(1);
  });
}

void main();
