import { stateRefusal } from '../errors.js';

/**
 * The schema versions of the agent's state files, and who they belong to. Each file says which schema
 * wrote it (`version`). An older one is read and migrated; a newer one than this agent knows (an
 * older agent started on a newer agent's state: a downgrade) refuses to start, naming the file and
 * both versions, rather than guess at fields it does not know.
 *
 * History: state.json schema 1 (93a5f22 and until this one): tags, last_deploy, last_interrupted,
 * later deployments and leftovers. Schema 2 adds the owner (environment, container_name), the audit
 * head and audit damage. The journal had no version (schema 1); schema 2 adds it and the owner.
 */
export const STATE_SCHEMA = 2;
export const JOURNAL_SCHEMA = 2;

/** The environment and fixed name a state file belongs to. */
export interface Owner {
  readonly environment: string;
  readonly containerName: string;
}

/** The file's schema version (1 when it has none); refuses one newer than this agent knows. */
export function readSchemaVersion(file: string, json: unknown, kind: 'state' | 'journal'): number {
  const raw = typeof json === 'object' && json !== null && 'version' in json ? json.version : undefined;
  const version = raw === undefined ? 1 : raw;
  const known = kind === 'state' ? STATE_SCHEMA : JOURNAL_SCHEMA;
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 1) return known; // damage: the schema check says so
  if (version > known)
    throw stateRefusal(
      `${file} was written by a newer agent (${kind} schema ${version}; this agent knows schema ${known} at most): run the newer agent again, or restore a copy of schema ${known} or older`,
    );
  return version;
}

/** Why a file of `found` cannot be this agent's, or null when it can (an unowned file of schema 1 is). */
export function ownerMismatch(file: string, found: Owner | null, expected: Owner | null): string | null {
  if (found === null || expected === null) return null;
  if (found.environment === expected.environment && found.containerName === expected.containerName) return null;
  return `${file} belongs to environment ${found.environment} (container ${found.containerName}), not to this agent (environment ${expected.environment}, container ${expected.containerName}): each agent needs its own STATE_DIR`;
}
