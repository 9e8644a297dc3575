import type { AGENT_OWNED_RUNTIME_VARIABLES, Config } from '../config/config.js';
import type { ContainerInfo, CreateSpec } from '../engine/engine-port.js';
import type { ImageReference } from '../policy/image.js';
import type { Deployment } from '../state/state.js';
import { PROVENANCE_LABEL, type Provenance, provenanceLabel } from '../supply-chain/provenance.js';

/**
 * The runtime container's shape: its labels, its environment, its mounts. Nothing from a request
 * reaches it but the image; everything else comes from the agent's configuration.
 */
export const LABEL = {
  owner: 'io.dreichor.owner',
  environment: 'io.dreichor.environment',
  containerName: 'io.dreichor.container-name',
  deployId: 'io.dreichor.deploy-id',
  image: 'io.dreichor.image',
  /** The manifest the container runs (never an index). */
  digest: 'io.dreichor.image-digest',
  /** What the tag resolved to when deployed (the tag's record): the same, or the index it came from. */
  tagDigest: 'io.dreichor.tag-digest',
  previousImage: 'io.dreichor.previous-image',
  previousDigest: 'io.dreichor.previous-image-digest',
  provenance: PROVENANCE_LABEL,
} as const;
export const OWNER = 'dreichor-deploy-agent';

type AgentOwned = (typeof AGENT_OWNED_RUNTIME_VARIABLES)[number];

/** The image a container runs, as it was requested (the label), or as the engine knows it. */
export const imageOf = (c: ContainerInfo): string => c.labels[LABEL.image] ?? c.image;

/** The new runtime container, created under a staging name beside the current one. */
export function containerSpec(
  config: Config,
  image: ImageReference,
  /** `run`: the manifest the container is created from; `tag`: what the tag resolved to. */
  digests: { readonly run: string; readonly tag: string },
  deployId: string,
  /** The last successful deploy of another image: the way back, named on the container. */
  previous: Deployment | null,
  provenance: Provenance | null = null,
): CreateSpec {
  const own: Record<AgentOwned, string> = {
    ENVIRONMENT: config.environment,
    AUDIT_EVENTS_PATH: config.auditEventsPath,
    SNAPSHOTS_PATH: config.snapshotsPath,
    ALLOW_EXECUTION_PLANE: String(config.allowExecutionPlane),
  };
  const labels: Record<string, string> = {
    [LABEL.owner]: OWNER,
    [LABEL.environment]: config.environment,
    [LABEL.containerName]: config.containerName,
    [LABEL.deployId]: deployId,
    [LABEL.image]: image.reference,
    [LABEL.digest]: digests.run,
    [LABEL.tagDigest]: digests.tag,
  };
  if (previous !== null) {
    labels[LABEL.previousImage] = previous.image;
    labels[LABEL.previousDigest] = previous.digest;
  }
  if (provenance !== null) labels[LABEL.provenance] = provenanceLabel(provenance);
  return {
    name: stagingName(config.containerName, deployId),
    // Security: the manifest itself, never an index: the engine must not choose what runs.
    image: `${image.repository}@${digests.run}`,
    env: Object.entries({ ...config.runtimeEnv, ...own })
      .map(([k, v]) => `${k}=${v}`)
      .sort(),
    labels,
    binds: [
      { source: config.auditEventsPath, target: config.auditEventsPath },
      { source: config.snapshotsPath, target: config.snapshotsPath },
    ],
    networkMode: config.runtimeNetwork,
    stopTimeoutSeconds: config.stopTimeoutSeconds,
  };
}

/** The replaced container's name between its stop and its removal: owned, stopped, never started. */
export const retiredName = (name: string, id: string): string => `${name}-retired-${id.slice(0, 12)}`;

const stagingName = (name: string, deployId: string): string => `${name}-staging-${deployId.slice(0, 8)}`;

/**
 * Whether `candidate` is a name this agent gives a staged or a replaced container of `name`. Exact,
 * not a prefix: `dreichor-runtime-dev2-staging-…` belongs to another agent.
 */
export function isLeftoverName(name: string, candidate: string): boolean {
  if (!candidate.startsWith(`${name}-`)) return false;
  return /^(staging-[0-9a-f]{8}|retired-[0-9a-f]{12})$/.test(candidate.slice(name.length + 1));
}

/** The labels that find every container of this agent's runtime: the runtime and its staging ones. */
export const ownedBy = (config: Config): Record<string, string> => ({
  [LABEL.owner]: OWNER,
  [LABEL.environment]: config.environment,
  [LABEL.containerName]: config.containerName,
});
