import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import * as z from '../zod.js';
import { ChainVerifier, type VerifyResult } from './audit-verify.js';
import { parseJsonOrNull } from './files.js';
import { type AuditHead, DEPLOYMENTS_KEPT, type Deployment, DIGEST, type LastDeploy } from './state-file.js';

/**
 * One streaming pass over the audit log, in constant memory but for what it collects: the chain's
 * verification, whether the head state.json recorded is still in it, and what the deploys that
 * answered recorded (the tag's digest on each `deployed` line): the source of `state rebuild` and of
 * the rollback history of a state migrated from schema 1.
 */
export interface AuditScan {
  readonly verdict: VerifyResult;
  /** Whether the recorded head is a line of the log: null when none was recorded. */
  readonly headFound: boolean | null;
  /** Tag to digest, from `deployed` lines that carry the tag's digest; the first deploy wins. */
  readonly tags: ReadonlyMap<string, { digest: string; first_deployed_at: string }>;
  /** Tags deployed by lines without the tag's digest (written before it was recorded): no record. */
  readonly tagsWithoutDigest: ReadonlySet<string>;
  /** Successful deploys, oldest first (the last DEPLOYMENTS_KEPT); digest null on lines without one. */
  readonly deployments: readonly SeenDeployment[];
  readonly lastDeploy: LastDeploy | null;
}

export type SeenDeployment = Omit<Deployment, 'digest'> & { readonly digest: string | null };

const digest = z.string().check(z.regex(DIGEST));

const deployLine = z.object({
  time: z.string(),
  request_id: z.string(),
  endpoint: z.literal('/v1/deploy'),
  image: z.nullable(z.string()),
  outcome: z.string(),
  reason: z.optional(z.nullable(z.string())),
  image_digest: z.optional(digest),
  tag_digest: z.optional(digest),
});

/** The tag of an image reference as the agent writes it: repository:tag (no digest form). */
const tagOf = (image: string): string | null => /:([\w][\w.-]{0,127})$/.exec(image)?.[1] ?? null;

const OUTCOMES = new Set(['deployed', 'failed', 'abandoned', 'interrupted']);

/** Scans `path` up to `limitBytes` (the size when the scan began: appends after it are the agent's own). */
export async function scanAuditLog(path: string, recorded: AuditHead | null, limitBytes?: number): Promise<AuditScan> {
  const verifier = new ChainVerifier();
  const tags = new Map<string, { digest: string; first_deployed_at: string }>();
  const tagsWithoutDigest = new Set<string>();
  const deployments: SeenDeployment[] = [];
  let lastDeploy: LastDeploy | null = null;
  let headFound: boolean | null = recorded === null ? null : false;
  const input = createReadStream(path, {
    encoding: 'utf8',
    ...(limitBytes === undefined ? {} : { end: Math.max(0, limitBytes - 1) }),
  });
  const lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  let total = 0;
  for await (const line of lines) {
    if (limitBytes === 0) break;
    total += 1;
    verifier.push(line);
    const json = parseJsonOrNull(line);
    if (recorded !== null && typeof json === 'object' && json !== null && 'seq' in json && json.seq === recorded.seq)
      headFound = 'hash' in json && json.hash === recorded.hash;
    const parsed = deployLine.safeParse(json);
    if (!parsed.success || parsed.data.image === null || !OUTCOMES.has(parsed.data.outcome)) continue;
    const d = parsed.data;
    const image = d.image as string;
    const outcome = d.outcome as LastDeploy['outcome'];
    lastDeploy = {
      image,
      outcome,
      reason: d.reason ?? null,
      at: d.time,
      request_id: d.request_id,
      image_digest: d.image_digest ?? null,
    };
    if (outcome !== 'deployed') continue;
    const tag = tagOf(image);
    if (tag !== null && !tags.has(tag)) {
      if (d.tag_digest === undefined) tagsWithoutDigest.add(tag);
      else {
        tags.set(tag, { digest: d.tag_digest, first_deployed_at: d.time });
        tagsWithoutDigest.delete(tag);
      }
    }
    deployments.push({ image, digest: d.image_digest ?? null, at: d.time, request_id: d.request_id });
    if (deployments.length > 2 * DEPLOYMENTS_KEPT) deployments.splice(0, DEPLOYMENTS_KEPT);
  }
  const kept = deployments.slice(-DEPLOYMENTS_KEPT);
  return { verdict: { ...verifier.result(), lines: total }, headFound, tags, tagsWithoutDigest, deployments: kept, lastDeploy };
}
