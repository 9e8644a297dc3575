import type { RequestRecord } from '../state/audit.js';
import type { Provenance } from '../supply-chain/provenance.js';

/** What a deploy or stop is asked with, and what it answers: the contract between routes and deployer. */

/** Who asked, from where: the audit record of the request being served. */
export interface RequestContext extends Omit<RequestRecord, 'clientId' | 'image'> {
  readonly clientId: string;
}

export interface DeployContext extends RequestContext {
  /** Fires when the caller disconnects. Honoured only before the old container is touched. */
  readonly callerGone: AbortSignal;
  /** When the request arrived (ms since the epoch): DEPLOY_TIMEOUT_SECONDS counts from here. */
  readonly receivedAt: number;
}

export interface DeployResult {
  readonly status: 'deployed';
  readonly container_name: string;
  readonly image: string;
  readonly environment: string;
  /** The manifest the container runs (for an image index: the one chosen for the engine's platform). */
  readonly image_digest: string;
  /** What the tag resolved to (its record): image_digest, or the index it was chosen from. */
  readonly tag_digest: string;
  readonly container_id: string;
  readonly started_at: string | null;
  readonly previous_image: string | null;
  /**
   * What went wrong on the way without failing the deploy: a journal or state write the disk refused
   * after the point of no return, a container left for the background clean-up. Absent when none.
   */
  readonly warnings?: readonly string[];
  /** What built the image, when IMAGE_VERIFICATION verified it. */
  readonly provenance?: Provenance;
}

export interface StopResult {
  readonly status: 'stopped';
  readonly container_name: string;
  /** Whether there was a container to stop and remove; false means the stop was a no-op. */
  readonly removed: boolean;
  /** Other running containers of this environment's runtime (not at the fixed name) it stopped too. */
  readonly also_stopped?: readonly string[];
  /** As for a deploy: what went wrong on the way without keeping the runtime from being stopped. */
  readonly warnings?: readonly string[];
}
