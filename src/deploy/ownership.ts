import type { Config } from '../config/config.js';
import { isLeftoverName, LABEL, OWNER } from './runtime-spec.js';

/**
 * Which containers are provably this agent's (SPEC invariant 5: the two agents never touch each
 * other's containers, and neither touches anyone else's). Security: an id or a name read from the
 * agent's own files is never proof: a journal or state left in STATE_DIR (damaged, copied, or
 * planted) could name the other environment's runtime or a database. A container is this agent's
 * only if the engine says so now:
 *  - it carries this agent's labels: owner, environment and fixed name; or
 *  - it has exactly a name this agent gives its staging or retired containers (an unlabelled runtime
 *    of the first cut-over is moved aside under such a name),
 * and in both cases carries no label of another environment or another fixed name.
 */
export interface Candidate {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** Null when `c` is provably this agent's; otherwise why it is not, in words. */
export function notOursBecause(config: Config, c: Candidate): string | null {
  const environment = c.labels[LABEL.environment];
  if (environment !== undefined && environment !== config.environment) return `labelled for environment ${environment}`;
  const fixedName = c.labels[LABEL.containerName];
  if (fixedName !== undefined && fixedName !== config.containerName) return `labelled for container ${fixedName}`;
  if (carriesOwnLabels(config, c.labels)) return null;
  if (isLeftoverName(config.containerName, c.name)) return null;
  return "neither labelled as this agent's nor named as its staging or retired containers";
}

/** Whether the labels are this agent's own: owner, environment and fixed name. */
export function carriesOwnLabels(config: Config, labels: Readonly<Record<string, string>>): boolean {
  return (
    labels[LABEL.owner] === OWNER &&
    labels[LABEL.environment] === config.environment &&
    labels[LABEL.containerName] === config.containerName
  );
}
