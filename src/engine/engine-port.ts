/**
 * What the deploy sequence needs from a container engine, and nothing more. `Engine` (docker.ts) is
 * the real one, on the Docker Engine API through dockerode; unit tests script a stand-in to check the
 * order of steps and the abort rules in seconds. The real-engine tests remain the proof that deploys
 * work.
 *
 * Every method has a deadline of its own; an `outer` signal (the caller gone, the deploy's time
 * running out) ends it sooner. Failures are AgentErrors: 503 the engine cannot be reached, 504 it did
 * not answer in time, 502 it (or the registry behind it) refused.
 */
export interface ContainerInfo {
  readonly id: string;
  readonly name: string;
  /** The image reference the container was created from (Config.Image). */
  readonly image: string;
  readonly running: boolean;
  readonly status: string;
  readonly exitCode: number;
  readonly startedAt: string | null;
  /** Null when the image defines no HEALTHCHECK. */
  readonly health: string | null;
  readonly labels: Readonly<Record<string, string>>;
  /** The id of the image the engine created it from (its ImageID): what runs, whatever the reference said. */
  readonly imageId: string;
  /** The engine's restart policy: "no", "always", "unless-stopped", "on-failure" (or "" for none). */
  readonly restartPolicy: string;
}

export interface ContainerSummary {
  readonly id: string;
  readonly name: string;
  readonly state: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** Any container on the engine, whoever made it, running or not, and the image it uses. */
export interface ContainerImageUse {
  readonly id: string;
  /** The id of the image it was created from (the engine's ImageID). */
  readonly imageId: string;
  readonly labels: Readonly<Record<string, string>>;
}

/**
 * What removing one image reference did: `deleted` the image went with it, `untagged` only the
 * reference went (the image has other names), `gone` there was no such reference, `in-use` the engine
 * refused because a container uses the image.
 */
export type ImageRemoval = 'deleted' | 'untagged' | 'gone' | 'in-use';

export interface ImageInfo {
  /**
   * The image id: on the classic image store the digest of its config, which covers every layer's
   * content; on the containerd image store (Docker 28) the digest of its manifest or index.
   */
  readonly id: string;
  /**
   * What runs from the image: equal for two references exactly when the engine runs the same image
   * from them (an index and its manifest for this platform). The classic store's id; on the
   * containerd store, a digest of the config, the layers' content and the platform.
   */
  readonly content: string;
  readonly hasHealthcheck: boolean;
}

/** What a tag points at in its registry right now, as the engine resolved it. */
export interface TagResolution {
  readonly digest: string;
  /** True when the tag names an image index (one manifest per platform), not a single manifest. */
  readonly index: boolean;
}

export interface PullResult {
  /** The manifest digest the engine reported for the pulled reference, when it reported one. */
  readonly digest: string | null;
}

/** Registry credentials, handed to the engine with a pull or a look-up (X-Registry-Auth): configuration's. */
export type { RegistryCredentials } from '../config/config.js';

import type { RegistryCredentials } from '../config/config.js';

export interface CreateSpec {
  readonly name: string;
  readonly image: string;
  readonly env: readonly string[];
  readonly labels: Readonly<Record<string, string>>;
  readonly binds: readonly { source: string; target: string }[];
  readonly networkMode: string;
  readonly stopTimeoutSeconds: number;
}

/**
 * The platform the engine runs images for, as it picks them from an index: its Go os/architecture
 * and, for ARM, the CPU variant (`v7`, `v8`); empty when there is none.
 */
export interface EnginePlatform {
  readonly os: string;
  readonly architecture: string;
  readonly variant: string;
}

export type StopOutcome = 'stopped' | 'not-running' | 'gone';

export interface EnginePort {
  /** Which digest `tag` points at in its registry now; nothing is downloaded. */
  resolveTag(repository: string, tag: string, auth: RegistryCredentials | null, signal: AbortSignal): Promise<TagResolution>;
  /** Pulls `repository` at a tag or digest; every error event of the progress stream fails it. */
  pull(repository: string, tagOrDigest: string, auth: RegistryCredentials | null, signal: AbortSignal): Promise<PullResult>;
  /** The engine's platform: read once, then kept for the life of the agent process. */
  platform(outer?: AbortSignal): Promise<EnginePlatform>;
  inspectImage(reference: string, signal?: AbortSignal): Promise<ImageInfo | null>;
  inspectContainer(nameOrId: string, signal?: AbortSignal): Promise<ContainerInfo | null>;
  /** Whether the engine has a network of this name ("none" and "host" are networks too). */
  networkExists(name: string, outer?: AbortSignal): Promise<boolean>;
  /** Containers carrying all the given labels, running or not. */
  listByLabels(labels: Readonly<Record<string, string>>, outer?: AbortSignal): Promise<ContainerSummary[]>;
  /** Containers whose name contains `name` (the engine's own filter), running or not. */
  listByName(name: string, outer?: AbortSignal): Promise<ContainerSummary[]>;
  create(spec: CreateSpec, outer?: AbortSignal): Promise<string>;
  /**
   * Sets the container's restart policy to "no": the engine will not start it again on its own.
   * By id or by name; "gone" when there is no such container. `timeoutMs` shortens its deadline.
   */
  disableRestart(nameOrId: string, outer?: AbortSignal, timeoutMs?: number): Promise<'updated' | 'gone'>;
  start(id: string, outer?: AbortSignal): Promise<void>;
  /** Stops a container (by id or by name), letting the engine kill it after `timeoutSeconds` (0: at once). */
  stop(id: string, timeoutSeconds: number, outer?: AbortSignal, slackMs?: number): Promise<StopOutcome>;
  /** Kills a container at once (SIGKILL), by id or by name; answers once it no longer runs. */
  kill(nameOrId: string, outer?: AbortSignal, timeoutMs?: number): Promise<StopOutcome>;
  remove(id: string, outer?: AbortSignal): Promise<'removed' | 'gone'>;
  rename(id: string, name: string, outer?: AbortSignal): Promise<void>;
  /** Every container on the engine, running or not, of any owner: which images are in use. */
  listContainers(outer?: AbortSignal): Promise<ContainerImageUse[]>;
  /**
   * The image references the engine pulled since `since` (by any client: either environment's
   * agent), from the engine's own event log. A bounded buffer in the engine: see retention.ts.
   */
  pulledSince(since: Date, outer?: AbortSignal): Promise<string[]>;
  /** Removes one image reference (never forced: the engine keeps an image that a container uses). */
  removeImage(reference: string, outer?: AbortSignal): Promise<ImageRemoval>;
  /** The last `lines` lines of a container's output, secrets masked. */
  logsTail(id: string, lines: number, outer?: AbortSignal): Promise<string>;
}
