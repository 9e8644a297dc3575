import type { Readable } from 'node:stream';
import Docker from 'dockerode';
import {
  containerImageUsesOf,
  containerInfoOf,
  containerSummariesOf,
  imageInfoOf,
  imageRemovalOf,
  tagResolutionOf,
} from './engine/docker-answers.js';
import { createBody } from './engine/docker-create.js';
import { registryFailure, translate } from './engine/docker-errors.js';
import { createAnswerSchema } from './engine/docker-schemas.js';
import { logTail, type PullProgress, readImageEvents, readPull } from './engine/docker-stream.js';
import { type CallOptions, callEngine } from './engine/engine-call.js';
import { enginePlatform, needsVariant, versionSchema } from './engine/engine-platform.js';
import type {
  ContainerImageUse,
  ContainerInfo,
  ContainerSummary,
  CreateSpec,
  EnginePlatform,
  EnginePort,
  ImageInfo,
  ImageRemoval,
  PullResult,
  RegistryCredentials,
  StopOutcome,
  TagResolution,
} from './engine/engine-port.js';
import { AgentError } from './errors.js';
import type { Redactor } from './policy/redact.js';

/**
 * The Docker engine, behind the few operations the agent needs (see EnginePort). This is the only
 * module that imports dockerode. Every call has a deadline; the engine's known answers (304 "already
 * stopped", 404 "no such container") become ordinary results here. What needs no dockerode is beside
 * it in src/engine/: the call with its deadline, the answers read, the streams, the create body.
 */

const short = (id: string): string => (/^[0-9a-f]{64}$/.test(id) ? id.slice(0, 12) : id);

export interface EngineOptions {
  readonly socketPath: string;
  /** Deadline of an ordinary engine call (inspect, create, start, ...). */
  readonly callTimeoutMs?: number;
  /**
   * Masks secrets in whatever text leaves this module: container log lines and the engine's own
   * error messages. Security: a runtime's log lines can carry its DATABASE_URL.
   */
  readonly redact?: Redactor;
}

export class Engine implements EnginePort {
  private readonly docker: Docker;
  private readonly callTimeoutMs: number;
  private readonly redact: Redactor;
  private platformRead: Promise<EnginePlatform> | null = null;

  constructor(options: EngineOptions) {
    this.docker = new Docker({ socketPath: options.socketPath });
    this.callTimeoutMs = options.callTimeoutMs ?? 10_000;
    this.redact = options.redact ?? ((text) => text);
  }

  async resolveTag(
    repository: string,
    tag: string,
    auth: RegistryCredentials | null,
    signal: AbortSignal,
  ): Promise<TagResolution> {
    const what = `look-up of ${repository}:${tag} in its registry`;
    // GET /distribution/{name}/json, with the same credentials as a pull.
    const raw = await this.call(
      what,
      () => this.docker.getImage(`${repository}:${tag}`).distribution(auth === null ? {} : { authconfig: auth }),
      {
        outer: signal,
        refused: (message) => registryFailure(what, message, tag),
      },
    );
    return tagResolutionOf(raw, what);
  }

  /**
   * Pull failures come as events in a 200 stream (docker-stream.ts). Aborted when `signal` fires,
   * which also cancels the engine's download because the stream is closed.
   */
  async pull(
    repository: string,
    tagOrDigest: string,
    auth: RegistryCredentials | null,
    signal: AbortSignal,
  ): Promise<PullResult> {
    const what = `pull of ${repository}${tagOrDigest.startsWith('sha256:') ? '@' : ':'}${tagOrDigest}`;
    const opts = { fromImage: repository, tag: tagOrDigest, abortSignal: signal };
    // Some refusals (unknown manifest, bad credentials) come as an HTTP error before any stream.
    const stream = (await this.call(
      what,
      () => (auth === null ? this.docker.createImage(opts) : this.docker.createImage(auth, opts)),
      {
        outer: signal,
        timeoutMs: 2 ** 31 - 1, // the pull's deadline is `signal`: the deploy's budget for it
        refused: (message) => registryFailure(what, message),
      },
    )) as Readable;
    let progress: PullProgress;
    try {
      progress = await readPull(stream, signal);
    } catch (error) {
      throw translate(what, error, signal, 0, this.redact);
    } finally {
      stream.destroy();
    }
    if (progress.failure !== null) throw registryFailure(what, this.redact(progress.failure));
    return { digest: progress.digest };
  }

  platform(outer?: AbortSignal): Promise<EnginePlatform> {
    // An engine does not change platform under a running agent; a failed read is not kept.
    this.platformRead ??= this.readPlatform(outer).catch((error: unknown) => {
      this.platformRead = null;
      throw error;
    });
    return this.platformRead;
  }

  private async readPlatform(outer?: AbortSignal): Promise<EnginePlatform> {
    const version = await this.call('version of the engine', () => this.docker.version(), { outer });
    const arch = versionSchema.safeParse(version);
    if (!arch.success) throw new AgentError(502, "the engine's answer to GET /version names no Os and Arch");
    const info = needsVariant(arch.data.Arch)
      ? await this.call('information of the engine', () => this.docker.info(), { outer })
      : null;
    return enginePlatform(version, info);
  }

  async inspectImage(reference: string, signal?: AbortSignal): Promise<ImageInfo | null> {
    const raw = await this.call(`inspect of image ${reference}`, () => this.docker.getImage(reference).inspect(), {
      outer: signal,
      known: { 404: null },
    });
    return raw === null ? null : imageInfoOf(raw);
  }

  async inspectContainer(nameOrId: string, signal?: AbortSignal): Promise<ContainerInfo | null> {
    const raw = await this.call(
      `inspect of container ${nameOrId}`,
      (s) => this.docker.getContainer(nameOrId).inspect({ abortSignal: s }),
      {
        outer: signal,
        known: { 404: null },
      },
    );
    return raw === null ? null : containerInfoOf(raw);
  }

  async networkExists(name: string, outer?: AbortSignal): Promise<boolean> {
    const raw = await this.call(`inspect of network ${name}`, () => this.docker.getNetwork(name).inspect(), {
      outer,
      known: { 404: null },
    });
    return raw !== null;
  }

  listByLabels(labels: Readonly<Record<string, string>>, outer?: AbortSignal): Promise<ContainerSummary[]> {
    return this.list({ label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) }, outer);
  }

  listByName(name: string, outer?: AbortSignal): Promise<ContainerSummary[]> {
    return this.list({ name: [name] }, outer);
  }

  private async list(filters: Readonly<Record<string, string[]>>, outer?: AbortSignal): Promise<ContainerSummary[]> {
    const raw = await this.call(
      'list of containers',
      (signal) => this.docker.listContainers({ all: true, filters: JSON.stringify(filters), abortSignal: signal }),
      { outer },
    );
    return containerSummariesOf(raw);
  }

  async listContainers(outer?: AbortSignal): Promise<ContainerImageUse[]> {
    const raw = await this.call(
      'list of containers',
      (signal) => this.docker.listContainers({ all: true, abortSignal: signal }),
      { outer },
    );
    return containerImageUsesOf(raw);
  }

  async removeImage(reference: string, outer?: AbortSignal): Promise<ImageRemoval> {
    // Never forced: the engine itself refuses (409) to remove an image that a container uses.
    const raw = await this.call(
      `removal of image ${reference}`,
      (signal) => this.docker.getImage(reference).remove({ force: false, noprune: false, abortSignal: signal }),
      { outer, known: { 404: 'gone', 409: 'in-use' } as const },
    );
    return raw === 'gone' || raw === 'in-use' ? raw : imageRemovalOf(raw);
  }

  async disableRestart(id: string, outer?: AbortSignal, timeoutMs?: number): Promise<'updated' | 'gone'> {
    const updated = await this.call(
      `update of container ${short(id)} (restart policy "no")`,
      (signal) => this.docker.getContainer(id).update({ RestartPolicy: { Name: 'no' }, abortSignal: signal }),
      { outer, known: { 404: 'gone' } as const, ...(timeoutMs === undefined ? {} : { timeoutMs }) },
    );
    return updated === 'gone' ? 'gone' : 'updated';
  }

  async create(spec: CreateSpec, outer?: AbortSignal): Promise<string> {
    const raw = await this.call(
      `create of container ${spec.name}`,
      (signal) => this.docker.createContainer({ ...createBody(spec), abortSignal: signal }).then((c) => ({ Id: c.id })),
      { outer },
    );
    return createAnswerSchema.parse(raw).Id;
  }

  async start(id: string, outer?: AbortSignal): Promise<void> {
    await this.call(`start of container ${short(id)}`, (signal) => this.docker.getContainer(id).start({ abortSignal: signal }), {
      outer,
    });
  }

  async stop(id: string, timeoutSeconds: number, outer?: AbortSignal, slackMs = 15_000): Promise<StopOutcome> {
    const stopped = await this.call(
      `stop of container ${short(id)}`,
      (signal) => this.docker.getContainer(id).stop({ t: timeoutSeconds, abortSignal: signal }),
      {
        outer,
        timeoutMs: timeoutSeconds * 1000 + slackMs,
        known: { 304: 'not-running', 404: 'gone' } as const,
      },
    );
    return stopped === 'not-running' || stopped === 'gone' ? stopped : 'stopped';
  }

  async kill(id: string, outer?: AbortSignal, timeoutMs?: number): Promise<StopOutcome> {
    // The engine answers once the process is gone (SIGKILL); 409 "is not running" is an answer too.
    const killed = await this.call(
      `kill of container ${short(id)}`,
      (signal) => this.docker.getContainer(id).kill({ abortSignal: signal }),
      {
        outer,
        known: { 404: 'gone', 409: 'not-running' } as const,
        ...(timeoutMs === undefined ? {} : { timeoutMs }),
      },
    );
    return killed === 'not-running' || killed === 'gone' ? killed : 'stopped';
  }

  async pulledSince(since: Date, outer?: AbortSignal): Promise<string[]> {
    // The engine's own record of its recent events (a bounded buffer in the engine): with `until`
    // the answer is what it holds for the period, and the stream ends.
    const nowSeconds = Math.floor(Date.now() / 1000) + 1;
    const filters = JSON.stringify({ type: ['image'], event: ['pull'] });
    const stream = (await this.call(
      'read of recent image events',
      (signal) =>
        this.docker.getEvents({
          since: Math.floor(since.getTime() / 1000),
          until: nowSeconds,
          filters,
          abortSignal: signal,
        }),
      { outer },
    )) as Readable;
    const signal = AbortSignal.any([AbortSignal.timeout(this.callTimeoutMs), ...(outer === undefined ? [] : [outer])]);
    try {
      return await readImageEvents(stream, signal);
    } catch (error) {
      throw translate('read of recent image events', error, signal, this.callTimeoutMs, this.redact);
    } finally {
      stream.destroy();
    }
  }

  async remove(id: string, outer?: AbortSignal): Promise<'removed' | 'gone'> {
    // Never forced: the engine refuses (409) to remove a running container rather than kill it. Every
    // caller stops what it removes first; a container that runs again meanwhile is not the caller's to kill.
    const removed = await this.call(
      `removal of container ${short(id)}`,
      (signal) => this.docker.getContainer(id).remove({ force: false, v: false, abortSignal: signal }),
      {
        outer,
        known: { 404: 'gone' } as const,
      },
    );
    return removed === 'gone' ? 'gone' : 'removed';
  }

  async rename(id: string, name: string, outer?: AbortSignal): Promise<void> {
    await this.call(
      `rename of container ${short(id)} to ${name}`,
      (signal) => this.docker.getContainer(id).rename({ name, abortSignal: signal }),
      { outer },
    );
  }

  async logsTail(id: string, lines: number, outer?: AbortSignal): Promise<string> {
    const raw: unknown = await this.call(
      `logs of container ${short(id)}`,
      (signal) =>
        this.docker.getContainer(id).logs({ stdout: true, stderr: true, follow: false, tail: lines, abortSignal: signal }),
      { outer },
    );
    return this.redact(logTail(raw));
  }

  /** One engine call, with a deadline: see engine-call.ts. */
  private call<T, K = never>(
    what: string,
    fn: (signal: AbortSignal) => Promise<T>,
    options: CallOptions<K> = {},
  ): Promise<T | K> {
    return callEngine(what, fn, options, { timeoutMs: this.callTimeoutMs, redact: this.redact });
  }
}
