import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import type { ContainerImageUse, EnginePort } from '../engine/engine-port.js';
import { describe } from '../errors.js';
import type { AuditLog } from '../state/audit.js';
import type { Deployment, StateStore } from '../state/state.js';
import type { Operation } from './lock.js';
import { LABEL, OWNER } from './runtime-spec.js';

/**
 * Image retention (IMAGE_RETENTION): every deploy pulls a new immutable tag, and without this the
 * host's disk fills with old runtime images. After a deploy has answered 200, in the background, the
 * images this agent deployed (its own record, `StateStore.deployments`) beyond its N most recently
 * deployed are removed, one at a time. Kept, whatever their age:
 *   - an image any container uses, running or not, whoever made it (and the engine itself refuses to
 *     remove one: removals are never forced);
 *   - this environment's previous image, the way back;
 *   - what any runtime container of either environment runs or names as its previous image: dev and
 *     prod share the engine and usually the digests (a build promoted from dev to prod), and dev's
 *     clean-up must not cost prod its fast rollback;
 *   - any image of another repository: only the `IMAGE_REPOSITORY@<digest>` reference the agent
 *     pulled is removed, so an image that also has other names keeps them and stays;
 *   - an image any deploy pulled in the last RECENT_PULL_MS, of either environment: the two agents
 *     share nothing but the engine, and the engine's own event log says what was pulled when. Prod
 *     may have just pulled (and verified) an image that dev deployed long ago, and not yet created
 *     its container from it; dev's clean-up must not take it away in between. Read right before
 *     each removal; when the engine cannot say, nothing is removed.
 *
 * A stopped environment has no container any more: its images are protected only by the other
 * environment's rules above (a recent pull, a container naming them) and by its own agent's record,
 * which the other agent never reads. Dev's clean-up can therefore remove an image prod ran before
 * prod was stopped, when dev deployed it too and it is beyond dev's N; prod's next deploy of it
 * then pulls it from the registry again. It is never removed while any container names it.
 *
 * It never holds the operation lock: a stop (the emergency brake) or a deploy is never refused or
 * delayed by it. Instead it yields: it looks at the lock before each removal and gives up the run as
 * soon as a deploy, stop or recovery is in progress; the next deploy runs it again. Each removal is
 * an audit line (`outcome: "pruned"`); a failure is logged and retried after the next deploy, and
 * never turns into a failed deploy. (What remains: a deploy that starts during the few milliseconds
 * of a removal and names that very old image fails before the old container is touched, and can be
 * retried.)
 */

export interface RetentionDeps {
  readonly config: Pick<Config, 'imageRetention' | 'imageRepository'>;
  readonly engine: Pick<EnginePort, 'listContainers' | 'inspectImage' | 'removeImage' | 'pulledSince'>;
  readonly store: Pick<StateStore, 'deployments' | 'previousDeployment'>;
  readonly audit: Pick<AuditLog, 'pruned'>;
  readonly logger: Logger;
  /** The operation in progress (deploy, stop, recovery), if any: pruning yields to every one. */
  readonly busy: () => Operation | null;
  /** How long after any pull its image is kept; RECENT_PULL_MS unless a test shortens it. */
  readonly recentPullMs?: number;
}

/**
 * How long after any pull (of either environment) its image is kept: longer than a deploy can take
 * from its pull to its create (DEPLOY_TIMEOUT_SECONDS is at most a few minutes).
 */
export const RECENT_PULL_MS = 15 * 60_000;

/** An image of this agent's own record that is beyond the N most recently deployed. */
export interface Candidate {
  readonly digest: string;
  /** The last deploy of that digest, as requested. */
  readonly image: string;
  /** The digest's place among the digests deployed here, most recent first (1 = the newest). */
  readonly rank: number;
}

/**
 * Which of this agent's images are beyond the `keep` most recently deployed, oldest last; those of
 * another repository (an earlier IMAGE_REPOSITORY) are never candidates. Pure.
 */
export function candidates(deployments: readonly Deployment[], keep: number, repository: string): Candidate[] {
  if (keep <= 0) return [];
  const seen = new Set<string>();
  const result: Candidate[] = [];
  for (let i = deployments.length - 1; i >= 0; i -= 1) {
    const d = deployments[i];
    if (d === undefined || seen.has(d.digest)) continue;
    seen.add(d.digest);
    if (seen.size > keep && d.image.startsWith(`${repository}:`))
      result.push({ digest: d.digest, image: d.image, rank: seen.size });
  }
  return result;
}

/**
 * The digests no clean-up may remove, from every container on the engine: what a runtime container
 * of either environment runs and names as its previous image (its labels), and this agent's own
 * previous image by its record, which holds after a stop too. Pure.
 */
export function protectedDigests(containers: readonly ContainerImageUse[], ownPrevious: string | null): Set<string> {
  const result = new Set<string>();
  if (ownPrevious !== null) result.add(ownPrevious);
  for (const c of containers) {
    if (c.labels[LABEL.owner] !== OWNER) continue;
    for (const label of [LABEL.digest, LABEL.previousDigest]) {
      const digest = c.labels[label];
      if (digest !== undefined) result.add(digest);
    }
  }
  return result;
}

export class ImageRetention {
  /**
   * Whether a deploy of either environment pulled this image in the last RECENT_PULL_MS: its digest
   * by name, or another reference to the same image. Throws when the engine cannot say: then the
   * run ends and nothing more is removed.
   */
  private async recentlyPulled(digest: string, imageId: string, signal: AbortSignal): Promise<boolean> {
    const { engine } = this.deps;
    const pulled = await engine.pulledSince(new Date(Date.now() - (this.deps.recentPullMs ?? RECENT_PULL_MS)), signal);
    if (pulled.some((reference) => reference.endsWith(`@${digest}`))) return true;
    for (const reference of new Set(pulled)) {
      const other = await engine.inspectImage(reference, signal);
      if (other?.id === imageId) return true;
    }
    return false;
  }

  private running: Promise<void> | null = null;
  private again = false;
  private readonly stopping = new AbortController();

  constructor(private readonly deps: RetentionDeps) {}

  /** How many of its images the agent keeps (0: all), for the status. */
  get keep(): number {
    return this.deps.config.imageRetention;
  }

  /** After a deploy has answered 200: prune in the background; never throws, never waits. */
  schedule(): void {
    if (this.keep === 0 || this.stopping.signal.aborted) return;
    if (this.running !== null) {
      this.again = true;
      return;
    }
    this.running = this.loop().finally(() => {
      this.running = null;
    });
  }

  /** Resolves when no pruning runs (for tests and the bench). */
  async idle(): Promise<void> {
    while (this.running !== null) await this.running;
  }

  /** At shutdown: no new removal starts; resolves when the one under way has ended. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.running;
  }

  private async loop(): Promise<void> {
    do {
      this.again = false;
      await this.prune().catch((error: unknown) =>
        this.deps.logger.warn({ err: error }, 'image retention: could not prune; tried again after the next deploy'),
      );
    } while (this.again && !this.yields());
  }

  /** Whether to give up the run: a deploy, stop or recovery is in progress, or the agent is stopping. */
  private yields(): boolean {
    return this.stopping.signal.aborted || this.deps.busy() !== null;
  }

  private async prune(): Promise<void> {
    const { config, engine, store, audit, logger } = this.deps;
    const signal = this.stopping.signal;
    for (const candidate of candidates(store.deployments, this.keep, config.imageRepository)) {
      if (this.yields()) {
        logger.info('image retention: a deploy or stop is in progress; pruning yields until the next deploy');
        return;
      }
      const reference = `${config.imageRepository}@${candidate.digest}`;
      const info = await engine.inspectImage(reference, signal);
      if (info === null) continue; // already gone: removed earlier, or by an operator
      // Asked again before every removal: what runs, and what each runtime names as its way back.
      const containers = await engine.listContainers(signal);
      const last = store.deployments.at(-1);
      const ownPrevious = last === undefined ? null : (store.previousDeployment(last.image)?.digest ?? null);
      if (protectedDigests(containers, ownPrevious).has(candidate.digest)) continue;
      const user = containers.find((c) => c.imageId === info.id);
      if (user !== undefined) {
        logger.info({ image: reference, container: user.id }, 'image retention: kept, a container uses it');
        continue;
      }
      if (await this.recentlyPulled(candidate.digest, info.id, signal)) {
        logger.info({ image: reference }, 'image retention: kept, a deploy pulled it a few minutes ago');
        continue;
      }
      if (this.yields()) return;
      try {
        const removal = await engine.removeImage(reference, signal);
        if (removal === 'in-use') {
          logger.warn({ image: reference }, 'image retention: the engine refused to remove it, a container uses it; skipped');
          continue;
        }
        if (removal === 'gone') continue;
        const reason = `image retention: ${candidate.image} (${candidate.digest}) is number ${candidate.rank} of the images deployed here, beyond the ${this.keep} kept; ${removal === 'deleted' ? 'removed from the host' : 'its reference removed, the image has other names'}`;
        logger.info({ image: reference, removal }, 'image retention: pruned');
        await audit
          .pruned({ image: candidate.image, digest: candidate.digest, reason })
          .catch((error: unknown) => logger.error({ err: error, image: reference }, 'image retention: audit line not written'));
      } catch (error) {
        if (signal.aborted) return;
        logger.warn(
          { image: reference, reason: describe(error) },
          'image retention: could not remove an image; skipped, tried again after the next deploy',
        );
      }
    }
  }
}
