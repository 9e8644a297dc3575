/**
 * The agent's configuration for the fast tier: a dev agent with every folder under `dir`, a fake
 * registry host (nothing is pulled: the engine is scripted), and no image verification.
 */
import { join } from 'node:path';
import { type Config, loadConfig } from '../../src/config/config.js';

export const UNIT_REPOSITORY = 'registry.example:5000/dreichor/runtime';

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
