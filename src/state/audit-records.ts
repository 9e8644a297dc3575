import { randomUUID } from 'node:crypto';

/**
 * What the audit log records (the shape of its lines, as the deploy and HTTP layers hand them over),
 * and the few file operations it needs. The log itself: audit.ts.
 */
export interface AuditEvent {
  readonly request_id: string;
  readonly client_id: string | null;
  readonly endpoint: string;
  readonly image: string | null;
  readonly outcome: string;
  readonly status?: number;
  readonly reason: string | null;
  readonly duration_ms?: number;
  readonly [extra: string]: unknown;
}

/** How a deploy or stop request ended. */
export type Outcome = 'deployed' | 'stopped' | 'failed' | 'refused' | 'abandoned';

/** Who asked for what. */
export interface RequestRecord {
  readonly requestId: string;
  /** The token that authenticated the request; null when none did. */
  readonly clientId: string | null;
  readonly endpoint: string;
  readonly image: string | null;
}

export interface OutcomeRecord extends RequestRecord {
  readonly outcome: Outcome;
  readonly status: number;
  readonly reason: string | null;
  readonly durationMs: number;
  /** The client id an unauthenticated request claimed: forensics only, never trusted. */
  readonly claimedClientId?: string | null;
  /** What built the deployed image, when IMAGE_VERIFICATION verified it (supply-chain/provenance.ts). */
  readonly provenance?: object;
  /** A deploy that answered 200: its tag's digest and the image's (state-rebuild restores from them). */
  readonly digests?: { readonly tag: string; readonly image: string };
}

/** Refusals before authentication that were counted rather than written one by one. */
export interface RefusalSummary {
  readonly count: number;
  readonly first: string;
  readonly last: string;
  readonly statuses: Readonly<Record<string, number>>;
  readonly endpoints: Readonly<Record<string, number>>;
}

/** The few file operations the log needs: a FileHandle has them; tests inject failing ones. */
export interface AuditFile {
  write(buffer: Buffer, offset: number, length: number, position: null): Promise<{ bytesWritten: number }>;
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  sync(): Promise<void>;
  truncate(length: number): Promise<void>;
  /** The open file's identity and owner (a FileHandle's stat); injected files may give the size only. */
  stat(): Promise<{ size: number; dev?: number; ino?: number; uid?: number; isFile?: () => boolean }>;
  close(): Promise<void>;
}

export interface AuditOpenOptions {
  /** Opens the log file for reading and appending. Tests inject short writes and failed fsyncs. */
  readonly openFile?: (path: string) => Promise<AuditFile>;
  /** Told once when the log is found damaged (replaced, deleted, truncated, a broken chain). */
  readonly onDamage?: (problem: string) => void;
  /** Told what could not be recorded in the log itself (a torn line's repair on a full disk): the agent's logger. */
  readonly onUnrecorded?: (message: string) => void;
}

/** Refusals before authentication written one by one in any minute (refusals.ts counts the rest). */
export const REFUSALS_AUDITED_PER_MINUTE = 10;

/** An image that image retention removed from the host (retention.ts). */
export interface PrunedRecord {
  readonly image: string;
  readonly digest: string;
  readonly reason: string;
}

// The lines of the larger records, built here so that audit.ts is about the file and its chain.

export const outcomeLine = (r: OutcomeRecord): AuditEvent => ({
  request_id: r.requestId,
  client_id: r.clientId,
  ...(r.claimedClientId === undefined || r.claimedClientId === null ? {} : { claimed_client_id: r.claimedClientId }),
  endpoint: r.endpoint,
  image: r.image,
  outcome: r.outcome,
  status: r.status,
  reason: r.reason,
  duration_ms: r.durationMs,
  ...(r.digests === undefined ? {} : { tag_digest: r.digests.tag, image_digest: r.digests.image }),
  ...(r.provenance === undefined ? {} : { provenance: r.provenance }),
});

export const refusalsCountingLine = (first: string, endpoint: string, status: number): AuditEvent => ({
  request_id: randomUUID(),
  client_id: null,
  endpoint: 'refusals',
  image: null,
  outcome: 'refusals-counting',
  reason: `more than ${REFUSALS_AUDITED_PER_MINUTE} refusals before authentication in a minute: from ${first} on they are counted, and a summary line with their count follows`,
  first,
  first_endpoint: endpoint,
  first_status: status,
});

export const prunedLine = (r: PrunedRecord): AuditEvent => ({
  request_id: randomUUID(),
  client_id: null,
  endpoint: 'image-retention',
  image: r.image,
  digest: r.digest,
  outcome: 'pruned',
  reason: r.reason,
});

export const refusalsCountedLine = (r: RefusalSummary, reason: string): AuditEvent => ({
  request_id: randomUUID(),
  client_id: null,
  endpoint: 'refusals',
  image: null,
  outcome: 'refusals-counted',
  reason,
  ...r,
});
