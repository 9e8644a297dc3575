import Docker from 'dockerode';
import type { Readable } from 'node:stream';
import { z } from 'zod';
import { AgentError, describe } from './errors.js';
import type { Redactor } from './redact.js';

/**
 * The Docker engine, behind the few operations the agent needs. This is the only module that imports
 * dockerode. Every call has a deadline; the engine's known answers (304 "already stopped", 404 "no
 * such container") become ordinary results here, and everything else becomes an AgentError whose
 * reason names the operation:
 *   503 the engine cannot be reached, 504 it did not answer in time, 502 it answered with an error.
 */

export interface ContainerInfo {
  readonly id: string;
  readonly name: string;
  /** The image reference the container was created from (Config.Image). */
  readonly image: string;
  readonly imageId: string;
  readonly running: boolean;
  readonly status: string;
  readonly exitCode: number;
  readonly startedAt: string | null;
  readonly finishedAt: string | null;
  /** Null when the image defines no HEALTHCHECK. */
  readonly health: string | null;
  readonly labels: Readonly<Record<string, string>>;
}

export interface ContainerSummary {
  readonly id: string;
  readonly name: string;
  readonly state: string;
  readonly labels: Readonly<Record<string, string>>;
}

export interface ImageInfo {
  readonly id: string;
  readonly repoDigests: readonly string[];
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

export interface RegistryCredentials {
  readonly username: string;
  readonly password: string;
  readonly serveraddress: string;
}

export interface CreateSpec {
  readonly name: string;
  readonly image: string;
  readonly env: readonly string[];
  readonly labels: Readonly<Record<string, string>>;
  readonly binds: readonly { source: string; target: string }[];
  readonly networkMode: string;
  readonly stopTimeoutSeconds: number;
}

// ---- the engine's answers we depend on, checked at the boundary ----

const labelsSchema = z.record(z.string(), z.string()).nullish().transform((l) => l ?? {});

const containerInspectSchema = z.object({
  Id: z.string(),
  Name: z.string(),
  Image: z.string(),
  State: z.object({
    Running: z.boolean(),
    Status: z.string(),
    ExitCode: z.number(),
    StartedAt: z.string().optional(),
    FinishedAt: z.string().optional(),
    Health: z.object({ Status: z.string() }).nullish(),
  }),
  Config: z.object({ Image: z.string(), Labels: labelsSchema }),
});

const imageInspectSchema = z.object({
  Id: z.string(),
  RepoDigests: z.array(z.string()).nullish(),
  Config: z
    .object({ Healthcheck: z.object({ Test: z.array(z.string()).nullish() }).nullish() })
    .nullish(),
});

const containerListSchema = z.array(
  z.object({ Id: z.string(), Names: z.array(z.string()), State: z.string(), Labels: labelsSchema }),
);

const pullEventSchema = z.object({
  status: z.string().optional(),
  error: z.string().optional(),
  errorDetail: z.object({ message: z.string().optional() }).optional(),
});

const createAnswerSchema = z.object({ Id: z.string() });

const distributionSchema = z.object({
  Descriptor: z.object({ mediaType: z.string(), digest: z.string().regex(/^sha256:[0-9a-f]{64}$/, 'not a sha256 digest') }),
});
const INDEX_MEDIA_TYPES: ReadonlySet<string> = new Set([
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
]);

// An engine timestamp for "never": "0001-01-01T00:00:00Z".
const never = (t: string | undefined): string | null => (t === undefined || t.startsWith('0001-') ? null : t);

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

type EngineErrorLike = Error & { statusCode?: number; code?: string; json?: unknown };

export class Engine {
  private readonly docker: Docker;
  private readonly callTimeoutMs: number;
  private readonly redact: Redactor;

  constructor(options: EngineOptions) {
    this.docker = new Docker({ socketPath: options.socketPath });
    this.callTimeoutMs = options.callTimeoutMs ?? 10_000;
    this.redact = options.redact ?? ((text) => text);
  }

  async ping(): Promise<void> {
    await this.call('ping', () => this.docker.ping());
  }

  /**
   * Asks the registry, through the engine (GET /distribution/{name}/json) and with the same
   * credentials as a pull, which digest `tag` points at now. Nothing is downloaded.
   */
  async resolveTag(repository: string, tag: string, auth: RegistryCredentials | null, signal: AbortSignal): Promise<TagResolution> {
    const what = `look-up of ${repository}:${tag} in its registry`;
    let raw: unknown;
    try {
      raw = await this.call(what, () => this.docker.getImage(`${repository}:${tag}`).distribution(auth === null ? {} : { authconfig: auth }), this.callTimeoutMs, signal);
    } catch (error) {
      // The engine relays the registry's refusal (unknown tag, bad credentials) as an HTTP error.
      if (!signal.aborted && error instanceof AgentError && engineStatus(error) !== null) {
        throw pullFailure(what, this.redact(engineMessage(error.cause)), tag);
      }
      throw error;
    }
    const parsed = distributionSchema.safeParse(raw);
    if (!parsed.success) throw new AgentError(502, `the engine's answer to the ${what} has no manifest digest`);
    return { digest: parsed.data.Descriptor.digest, index: INDEX_MEDIA_TYPES.has(parsed.data.Descriptor.mediaType) };
  }

  /**
   * Pulls `repository` at `tagOrDigest`. The engine reports pull failures (unknown tag, denied pull,
   * broken layer) as events inside a 200 stream, so every event is checked; any error event fails
   * the pull. Aborted when `signal` fires (deadline or caller gone), which also cancels the
   * engine's download because the stream is closed.
   */
  async pull(repository: string, tagOrDigest: string, auth: RegistryCredentials | null, signal: AbortSignal): Promise<PullResult> {
    const what = `pull of ${repository}${tagOrDigest.startsWith('sha256:') ? '@' : ':'}${tagOrDigest}`;
    let stream: Readable;
    try {
      const opts = { fromImage: repository, tag: tagOrDigest, abortSignal: signal };
      stream = (await (auth === null ? this.docker.createImage(opts) : this.docker.createImage(auth, opts))) as Readable;
    } catch (error) {
      // Some refusals (unknown manifest, bad credentials) come as an HTTP error before any stream.
      if (!signal.aborted && engineStatus(error) !== null) throw pullFailure(what, this.redact(engineMessage(error)));
      throw this.translate(what, error, signal);
    }
    let digest: string | null = null;
    let failure: string | null = null;
    try {
      for await (const event of jsonLines(stream, signal)) {
        const parsed = pullEventSchema.safeParse(event);
        if (!parsed.success) continue;
        const { status, error, errorDetail } = parsed.data;
        if (error !== undefined || errorDetail?.message !== undefined) {
          failure = errorDetail?.message ?? error ?? 'unknown error';
          break;
        }
        const match = status === undefined ? null : /^Digest: (sha256:[0-9a-f]{64})$/.exec(status);
        if (match?.[1] !== undefined) digest = match[1];
      }
    } catch (error) {
      throw this.translate(what, error, signal);
    } finally {
      stream.destroy();
    }
    if (failure !== null) throw pullFailure(what, this.redact(failure));
    return { digest };
  }

  async inspectImage(reference: string, signal?: AbortSignal): Promise<ImageInfo | null> {
    const raw = await this.call(`inspect of image ${reference}`, () => this.docker.getImage(reference).inspect(), this.callTimeoutMs, signal).catch(nullOn404);
    if (raw === null) return null;
    const image = imageInspectSchema.parse(raw);
    const test = image.Config?.Healthcheck?.Test ?? [];
    return {
      id: image.Id,
      repoDigests: image.RepoDigests ?? [],
      hasHealthcheck: test.length > 0 && test[0] !== 'NONE',
    };
  }

  async inspectContainer(nameOrId: string, signal?: AbortSignal): Promise<ContainerInfo | null> {
    const raw = await this.call(
      `inspect of container ${nameOrId}`,
      (s) => this.docker.getContainer(nameOrId).inspect({ abortSignal: s }),
      this.callTimeoutMs,
      signal,
    ).catch(nullOn404);
    if (raw === null) return null;
    const c = containerInspectSchema.parse(raw);
    return {
      id: c.Id,
      name: c.Name.replace(/^\//, ''),
      image: c.Config.Image,
      imageId: c.Image,
      running: c.State.Running,
      status: c.State.Status,
      exitCode: c.State.ExitCode,
      startedAt: never(c.State.StartedAt),
      finishedAt: never(c.State.FinishedAt),
      health: c.State.Health?.Status ?? null,
      labels: c.Config.Labels,
    };
  }

  /** Whether the engine has a network of this name ("none" and "host" are networks too). */
  async networkExists(name: string): Promise<boolean> {
    const raw = await this.call(`inspect of network ${name}`, () => this.docker.getNetwork(name).inspect()).catch(nullOn404);
    return raw !== null;
  }

  /** Containers carrying all the given labels, running or not. */
  async listByLabels(labels: Readonly<Record<string, string>>): Promise<ContainerSummary[]> {
    const filters = { label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) };
    const raw = await this.call('list of containers', (signal) =>
      this.docker.listContainers({ all: true, filters: JSON.stringify(filters), abortSignal: signal }),
    );
    return containerListSchema.parse(raw).map((c) => ({
      id: c.Id,
      name: (c.Names[0] ?? '').replace(/^\//, ''),
      state: c.State,
      labels: c.Labels,
    }));
  }

  async create(spec: CreateSpec): Promise<string> {
    const raw = await this.call(`create of container ${spec.name}`, (signal) =>
      this.docker.createContainer({
        name: spec.name,
        Image: spec.image,
        Env: [...spec.env],
        Labels: { ...spec.labels },
        StopTimeout: spec.stopTimeoutSeconds,
        HostConfig: {
          NetworkMode: spec.networkMode,
          Mounts: spec.binds.map((b) => ({ Type: 'bind' as const, Source: b.source, Target: b.target, ReadOnly: false })),
          // Explicit: the engine never restarts the runtime on its own; only a deploy starts it.
          RestartPolicy: { Name: 'no' },
          LogConfig: { Type: 'json-file', Config: { 'max-size': '50m', 'max-file': '3' } },
        },
        abortSignal: signal,
      }).then((c) => ({ Id: c.id })),
    );
    return createAnswerSchema.parse(raw).Id;
  }

  async start(id: string, outer?: AbortSignal): Promise<void> {
    await this.call(`start of container ${short(id)}`, (signal) => this.docker.getContainer(id).start({ abortSignal: signal }), this.callTimeoutMs, outer);
  }

  /**
   * Stops a container, letting the engine kill it after `timeoutSeconds` (0: at once). The call's
   * own deadline is the grace plus `slackMs` for the engine to act.
   */
  async stop(id: string, timeoutSeconds: number, outer?: AbortSignal, slackMs = 15_000): Promise<'stopped' | 'not-running' | 'gone'> {
    try {
      await this.call(
        `stop of container ${short(id)}`,
        (signal) => this.docker.getContainer(id).stop({ t: timeoutSeconds, abortSignal: signal }),
        timeoutSeconds * 1000 + slackMs,
        outer,
      );
      return 'stopped';
    } catch (error) {
      const status = engineStatus(error);
      if (status === 304) return 'not-running';
      if (status === 404) return 'gone';
      throw error;
    }
  }

  async remove(id: string, outer?: AbortSignal): Promise<'removed' | 'gone'> {
    try {
      // force: a container that is still running is killed; callers stop it first when it matters.
      await this.call(
        `removal of container ${short(id)}`,
        (signal) => this.docker.getContainer(id).remove({ force: true, v: false, abortSignal: signal }),
        this.callTimeoutMs,
        outer,
      );
      return 'removed';
    } catch (error) {
      if (engineStatus(error) === 404) return 'gone';
      throw error;
    }
  }

  async rename(id: string, name: string, outer?: AbortSignal): Promise<void> {
    await this.call(
      `rename of container ${short(id)} to ${name}`,
      (signal) => this.docker.getContainer(id).rename({ name, abortSignal: signal }),
      this.callTimeoutMs,
      outer,
    );
  }

  /** The last `lines` lines of a container's output, stdout and stderr interleaved, secrets masked. */
  async logsTail(id: string, lines: number, timeoutMs = this.callTimeoutMs): Promise<string> {
    const raw: unknown = await this.call(
      `logs of container ${short(id)}`,
      (signal) => this.docker.getContainer(id).logs({ stdout: true, stderr: true, follow: false, tail: lines, abortSignal: signal }),
      timeoutMs,
    );
    const buffer = Buffer.isBuffer(raw) ? raw : Buffer.from(typeof raw === 'string' ? raw : '');
    return this.redact(demultiplex(buffer).trimEnd());
  }

  // ---- deadlines and error translation ----

  /**
   * Runs one engine call with a deadline, and an optional outer signal (caller gone). The signal is
   * handed to dockerode to cancel the request, and also raced, because a few dockerode calls do not
   * forward it: a hung engine must never hang the agent.
   */
  private async call<T>(what: string, fn: (signal: AbortSignal) => Promise<T>, timeoutMs = this.callTimeoutMs, outer?: AbortSignal): Promise<T> {
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = outer === undefined ? timeout : AbortSignal.any([timeout, outer]);
    let onAbort: () => void = () => undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      return await Promise.race([fn(signal), aborted]);
    } catch (error) {
      throw this.translate(what, error, signal, timeoutMs);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  private translate(what: string, error: unknown, signal: AbortSignal, timeoutMs?: number): Error {
    if (error instanceof AgentError) return error;
    if (signal.aborted) {
      const reason: unknown = signal.reason;
      if (reason instanceof AgentError) return reason;
      if (reason instanceof DOMException && reason.name === 'TimeoutError') {
        const after = timeoutMs === undefined ? '' : ` within ${Math.round(timeoutMs / 1000)} s`;
        return new AgentError(504, `the Docker engine did not complete the ${what}${after}`, { cause: error });
      }
      return new AgentError(504, `the ${what} was abandoned`, { cause: error });
    }
    const e = error as EngineErrorLike;
    if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED' || e.code === 'EACCES' || e.code === 'ECONNRESET' || e.code === 'EPIPE') {
      return new AgentError(503, `the Docker engine cannot be reached (${e.code}) during the ${what}`, { cause: error });
    }
    const status = engineStatus(error);
    if (status !== null) {
      return Object.assign(new AgentError(502, `the Docker engine refused the ${what}: ${this.redact(engineMessage(error))}`, { cause: error }), {
        engineStatus: status,
      });
    }
    return new AgentError(502, `the ${what} failed: ${this.redact(describe(error))}`, { cause: error });
  }
}

/** The engine's HTTP status behind an error, wherever it sits (raw dockerode or translated). */
export function engineStatus(error: unknown): number | null {
  if (typeof error !== 'object' || error === null) return null;
  if ('engineStatus' in error && typeof error.engineStatus === 'number') return error.engineStatus;
  if ('statusCode' in error && typeof error.statusCode === 'number') return error.statusCode;
  return null;
}

function engineMessage(error: unknown): string {
  const json = (error as EngineErrorLike).json;
  if (typeof json === 'object' && json !== null && 'message' in json && typeof json.message === 'string') return json.message;
  return describe(error).replace(/^\(HTTP code \d+\) [\w ]+ - /, '');
}

function nullOn404(error: unknown): null {
  if (engineStatus(error) === 404) return null;
  throw error;
}

// A registry refusing credentials shows up with one of these phrases, depending on registry and engine.
const AUTH_FAILURE = /unauthorized|authentication required|denied|no basic auth credentials|incorrect username or password/i;

const NOT_FOUND = /manifest unknown|not found|no such/i;

function pullFailure(what: string, message: string, tag?: string): AgentError {
  const clean = message.replace(/\s+/g, ' ').trim().slice(0, 500);
  if (AUTH_FAILURE.test(clean)) {
    return new AgentError(502, `the registry refused the credentials for the ${what} (${clean})`);
  }
  if (tag !== undefined && NOT_FOUND.test(clean)) {
    return new AgentError(502, `the tag ${tag} was not found in the registry (${clean}); the running container was not touched`);
  }
  return new AgentError(502, `the ${what} failed: ${clean}`);
}

async function* jsonLines(stream: Readable, signal: AbortSignal): AsyncGenerator<unknown> {
  let pending = '';
  const onAbort = () => stream.destroy(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const chunk of stream) {
      pending += Buffer.isBuffer(chunk) ? chunk.toString('utf8') : String(chunk);
      let newline = pending.indexOf('\n');
      while (newline !== -1) {
        const line = pending.slice(0, newline).trim();
        pending = pending.slice(newline + 1);
        if (line !== '') yield parseJson(line);
        newline = pending.indexOf('\n');
      }
    }
    if (pending.trim() !== '') yield parseJson(pending.trim());
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
  // A stream that ends because the signal fired must not read as a finished pull.
  if (signal.aborted) throw signal.reason;
}

function parseJson(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return { error: `unreadable progress from the engine: ${line.slice(0, 200)}` };
  }
}

/**
 * Container logs without a TTY come multiplexed: frames of an 8-byte header (stream type, 3 zero
 * bytes, big-endian length) and a payload. Anything that does not parse as frames is returned as is.
 */
export function demultiplex(buffer: Buffer): string {
  const parts: Buffer[] = [];
  let offset = 0;
  while (offset + 8 <= buffer.length) {
    const type = buffer[offset];
    if ((type !== 0 && type !== 1 && type !== 2) || buffer[offset + 1] !== 0 || buffer[offset + 2] !== 0 || buffer[offset + 3] !== 0) {
      return buffer.toString('utf8');
    }
    const length = buffer.readUInt32BE(offset + 4);
    parts.push(buffer.subarray(offset + 8, offset + 8 + length));
    offset += 8 + length;
  }
  if (offset !== buffer.length) return buffer.toString('utf8');
  return Buffer.concat(parts).toString('utf8');
}

const short = (id: string): string => (/^[0-9a-f]{64}$/.test(id) ? id.slice(0, 12) : id);
