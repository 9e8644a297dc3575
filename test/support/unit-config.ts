/**
 * The agent's configuration for the fast tier: a dev agent with every folder under `dir`, a fake
 * registry host (nothing is pulled: the engine is scripted), and no image verification.
 */
import { join } from 'node:path';
import { pino } from 'pino';
import { type Config, loadConfig } from '../../src/config/config.js';
import { Deployer, type DeployerDeps } from '../../src/deploy/deployer.js';
import type { EnginePort } from '../../src/engine/engine-port.js';
import { AuditLog } from '../../src/state/audit.js';
import { DeployJournal } from '../../src/state/journal.js';
import { StateStore } from '../../src/state/state.js';

export const UNIT_REPOSITORY = 'registry.example:5000/dreichor/runtime';

/** The fewest variables a configuration loads from (no folder of the test's own): config tests start here. */
export const MINIMAL_ENV: Readonly<Record<string, string>> = {
  ENVIRONMENT: 'dev',
  CF_ACCESS_CLIENT_ID: 'client.access',
  CF_ACCESS_CLIENT_SECRET: 'a-secret-of-enough-length',
  IMAGE_VERIFICATION: 'none',
  AUDIT_EVENTS_PATH: '/var/lib/dreichor/dev/audit-events',
  SNAPSHOTS_PATH: '/var/lib/dreichor/dev/snapshots',
};

export function unitConfig(dir: string, extra: Readonly<Record<string, string>> = {}): Config {
  return loadConfig({
    ENVIRONMENT: 'dev',
    CF_ACCESS_CLIENT_ID: 'client.access',
    CF_ACCESS_CLIENT_SECRET: 'a-secret-of-enough-length',
    IMAGE_REPOSITORY: UNIT_REPOSITORY,
    IMAGE_VERIFICATION: 'none',
    AUDIT_EVENTS_PATH: join(dir, 'audit-events'),
    SNAPSHOTS_PATH: join(dir, 'snapshots'),
    STATE_DIR: join(dir, 'state'),
    ...extra,
  });
}

/**
 * A deployer on `config`'s state folder and a scripted engine, for the fast tier: its store, audit
 * log and journal are real files (unless `extra` hands its own); the start check takes a fifth of a second (the configuration's floor
 * is 1 s): the rules, not the waiting.
 */
export async function unitDeployer(
  config: Config,
  engine: EnginePort,
  extra: Partial<Pick<DeployerDeps, 'onPhase' | 'verifier' | 'timing' | 'audit' | 'journal'>> = {},
): Promise<{ readonly deployer: Deployer; readonly store: StateStore }> {
  const store = await StateStore.open(config.stateDir);
  const deployer = new Deployer({
    config: { ...config, startCheckSeconds: 0.2 },
    engine,
    store,
    // A test may hand its own (a disk that refuses one kind of write).
    audit: extra.audit ?? (await AuditLog.open(join(config.stateDir, 'audit.jsonl'))),
    journal: extra.journal ?? new DeployJournal(config.stateDir),
    logger: pino({ level: 'silent' }),
    ...extra,
  });
  return { deployer, store };
}
