/**
 * A scripted stand-in for the container engine, behind the same port as the real one, for the fast
 * unit tests of the deploy and stop sequences: the order of their steps, their abort rules and the
 * fault matrix. It records every call, keeps a tiny model of containers (names, labels, running,
 * restart policy), watches that never two runtimes run at once, and lets a test fail or hold any
 * method. A held call ends like the real wrapper's: when its signal fires, or at its own deadline.
 * It proves nothing about Docker: the real-engine tests do that.
 */

import { LABEL, OWNER } from '../../src/deploy/runtime-spec.js';
import type * as Port from '../../src/engine/engine-port.js';
import { AgentError } from '../../src/errors.js';

export interface FakeContainer {
  id: string;
  name: string;
  image: string;
  running: boolean;
  exitCode: number;
  labels: Record<string, string>;
  restartPolicy: string;
  /** The id of the image it was created from (the engine's ImageID). */
  imageId: string;
}

const DEFAULT_IMAGE_ID = `sha256:${'c'.repeat(64)}`;

export type Method = keyof Port.EnginePort;

export class FakeEngine implements Port.EnginePort {
  readonly calls: string[] = [];
  readonly containers = new Map<string, FakeContainer>();
  /** What a tag resolves to. */
  tagDigest = `sha256:${'a'.repeat(64)}`;
  /** Whether the tag names an image index; then a pin may be one of its manifests. */
  tagIsIndex = false;
  /** The platform the engine reports (GET /version, /info). */
  enginePlatform: Port.EnginePlatform = { os: 'linux', architecture: 'amd64', variant: '' };
  /** The image id of what a digest (or a tag) names; every other reference is one default image. */
  readonly imageIds = new Map<string, string>();
  /** What a started container does: keeps running, or exits at once with this code. */
  exitOnStart: number | null = null;
  /** The deadline of a call that has no signal of its own, as the real wrapper's callTimeoutMs. */
  callTimeoutMs = 10_000;
  /** The most containers of one environment's runtime that ever ran at the same instant. */
  maxRunning = 0;
  /**
   * The engine's image store, when a test models it (image retention across two agents): the
   * `repository@digest` references present. A pull adds one, a removal takes one away, an inspect or
   * a create of one that is absent finds nothing. null: every image is always there.
   */
  imageStore: Set<string> | null = null;
  /** The references removed from `imageStore`, in order. */
  readonly removedImages: string[] = [];
  /** Every pull, as the engine's event log shows it (pulledSince). */
  readonly pulls: { readonly reference: string; readonly at: number }[] = [];
  /** Containers stopped while a restart policy could have started them again (invariant 8). */
  readonly stoppedRestartable: string[] = [];
  private readonly failures = new Map<Method, () => Error>();
  private readonly holds = new Map<Method, Promise<void>>();
  private next = 1;

  /** Makes `method` throw `error` from now on. */
  fail(method: Method, error: () => Error): void {
    this.failures.set(method, error);
  }

  /** Makes `method` wait for the returned release (or for its signal, or its deadline) before it acts. */
  hold(method: Method): () => void {
    let release: () => void = () => undefined;
    this.holds.set(method, new Promise<void>((resolve) => (release = resolve)));
    return () => {
      this.holds.delete(method);
      release();
    };
  }

  /** Ends every failure and hold. */
  heal(): void {
    this.failures.clear();
    for (const method of [...this.holds.keys()]) this.holds.delete(method);
  }

  /** A container that exists before the test's deploy: the "old" runtime, labelled as the agent's own. */
  seed(name: string, running = true, options: { labels?: Record<string, string>; restartPolicy?: string } = {}): FakeContainer {
    const c = {
      id: this.newId(),
      name,
      image: 'repo@sha256:old',
      running,
      exitCode: 0,
      labels: options.labels ?? {
        [LABEL.owner]: OWNER,
        [LABEL.environment]: 'dev',
        [LABEL.containerName]: name,
        [LABEL.image]: 'repo:old',
      },
      restartPolicy: options.restartPolicy ?? 'no',
      imageId: DEFAULT_IMAGE_ID,
    };
    this.containers.set(c.id, c);
    this.watch();
    return c;
  }

  /** Containers of the runtime `name`: at that name, staged or moved aside, labelled or not. */
  runtimeContainers(name: string): FakeContainer[] {
    return [...this.containers.values()].filter((c) => c.name === name || c.name.startsWith(`${name}-`));
  }

  private watch(): void {
    const byRuntime = new Map<string, number>();
    for (const c of this.containers.values()) {
      if (!c.running) continue;
      const key = c.labels[LABEL.containerName] ?? c.name.replace(/-(staging|retired)-[0-9a-f]+$/, '');
      byRuntime.set(key, (byRuntime.get(key) ?? 0) + 1);
    }
    this.maxRunning = Math.max(this.maxRunning, ...byRuntime.values(), 0);
  }

  private newId(): string {
    return (this.next++).toString(16).padStart(64, '0');
  }

  private async enter(method: Method, detail: string, signal?: AbortSignal, timeoutMs?: number): Promise<void> {
    this.calls.push(detail === '' ? method : `${method} ${detail}`);
    const held = this.holds.get(method);
    if (held !== undefined) {
      const deadline = AbortSignal.timeout(timeoutMs ?? this.callTimeoutMs);
      const ends = signal === undefined ? deadline : AbortSignal.any([signal, deadline]);
      await Promise.race([
        held,
        new Promise<never>((_, reject) => {
          const end = () =>
            reject(
              ends.reason instanceof AgentError ? ends.reason : new AgentError(504, `the engine did not answer the ${method}`),
            );
          if (ends.aborted) end();
          ends.addEventListener('abort', end, { once: true });
        }),
      ]);
    }
    const failure = this.failures.get(method);
    if (failure !== undefined) throw failure();
  }

  private find(nameOrId: string): FakeContainer | undefined {
    return this.containers.get(nameOrId) ?? [...this.containers.values()].find((c) => c.name === nameOrId);
  }

  private summary(c: FakeContainer): Port.ContainerSummary {
    return { id: c.id, name: c.name, state: c.running ? 'running' : 'exited', labels: { ...c.labels } };
  }

  async resolveTag(_repository: string, tag: string, _auth: unknown, signal: AbortSignal): Promise<Port.TagResolution> {
    await this.enter('resolveTag', tag, signal);
    return { digest: this.tagDigest, index: this.tagIsIndex };
  }

  async pull(repository: string, tagOrDigest: string, _auth: unknown, signal: AbortSignal): Promise<Port.PullResult> {
    await this.enter('pull', tagOrDigest, signal);
    const reference = `${repository}${tagOrDigest.startsWith('sha256:') ? '@' : ':'}${tagOrDigest}`;
    this.pulls.push({ reference, at: Date.now() });
    this.imageStore?.add(reference);
    return { digest: tagOrDigest };
  }

  async platform(signal?: AbortSignal): Promise<Port.EnginePlatform> {
    await this.enter('platform', '', signal);
    return this.enginePlatform;
  }

  /** The image id the engine knows `reference` (`repo@digest` or `repo:tag`) by. */
  imageIdOf(reference: string): string {
    const at = reference.lastIndexOf('@');
    return this.imageIds.get(at < 0 ? reference : reference.slice(at + 1)) ?? DEFAULT_IMAGE_ID;
  }

  async inspectImage(reference: string, signal?: AbortSignal): Promise<Port.ImageInfo | null> {
    await this.enter('inspectImage', reference, signal);
    if (this.imageStore !== null && !this.imageStore.has(reference)) return null;
    const id = this.imageIdOf(reference);
    return { id, content: id, hasHealthcheck: false };
  }

  async inspectContainer(nameOrId: string, signal?: AbortSignal): Promise<Port.ContainerInfo | null> {
    await this.enter('inspectContainer', '', signal);
    const c = this.find(nameOrId);
    if (c === undefined) return null;
    return {
      id: c.id,
      name: c.name,
      image: c.image,
      running: c.running,
      status: c.running ? 'running' : 'exited',
      exitCode: c.exitCode,
      startedAt: null,
      health: null,
      labels: { ...c.labels },
      imageId: c.imageId,
      restartPolicy: c.restartPolicy,
    };
  }

  async networkExists(name: string, signal?: AbortSignal): Promise<boolean> {
    await this.enter('networkExists', name, signal);
    return true;
  }

  async listByLabels(labels: Readonly<Record<string, string>>, signal?: AbortSignal): Promise<Port.ContainerSummary[]> {
    await this.enter('listByLabels', '', signal);
    return [...this.containers.values()]
      .filter((c) => Object.entries(labels).every(([k, v]) => c.labels[k] === v))
      .map((c) => this.summary(c));
  }

  async listByName(name: string, signal?: AbortSignal): Promise<Port.ContainerSummary[]> {
    await this.enter('listByName', name, signal);
    return [...this.containers.values()].filter((c) => c.name.includes(name)).map((c) => this.summary(c));
  }

  async create(spec: Port.CreateSpec, signal?: AbortSignal): Promise<string> {
    await this.enter('create', spec.name, signal);
    if (this.find(spec.name) !== undefined) throw new AgentError(502, `the name ${spec.name} is in use`);
    if (this.imageStore !== null && !this.imageStore.has(spec.image)) {
      throw new AgentError(502, `the engine refused the create: No such image: ${spec.image}`);
    }
    const c = {
      id: this.newId(),
      name: spec.name,
      image: spec.image,
      running: false,
      exitCode: 0,
      labels: { ...spec.labels },
      restartPolicy: 'no',
      imageId: this.imageIdOf(spec.image),
    };
    this.containers.set(c.id, c);
    return c.id;
  }

  async disableRestart(id: string, signal?: AbortSignal, timeoutMs?: number): Promise<'updated' | 'gone'> {
    await this.enter('disableRestart', id, signal, timeoutMs);
    const c = this.find(id);
    if (c === undefined) return 'gone';
    c.restartPolicy = 'no';
    return 'updated';
  }

  async kill(id: string, signal?: AbortSignal, timeoutMs?: number): Promise<Port.StopOutcome> {
    await this.enter('kill', id, signal, timeoutMs);
    const c = this.find(id);
    if (c === undefined) return 'gone';
    if (!c.running) return 'not-running';
    if (c.restartPolicy !== 'no' && c.restartPolicy !== '') this.stoppedRestartable.push(c.name);
    c.running = false;
    return 'stopped';
  }

  async start(id: string, signal?: AbortSignal): Promise<void> {
    await this.enter('start', id, signal);
    const c = this.find(id);
    if (c === undefined) throw new AgentError(502, 'no such container');
    c.running = this.exitOnStart === null;
    c.exitCode = this.exitOnStart ?? 0;
    this.watch();
  }

  async stop(id: string, timeoutSeconds: number, signal?: AbortSignal, slackMs = 15_000): Promise<Port.StopOutcome> {
    await this.enter('stop', id, signal, timeoutSeconds * 1000 + slackMs);
    const c = this.find(id);
    if (c === undefined) return 'gone';
    if (!c.running) return 'not-running';
    if (c.restartPolicy !== 'no' && c.restartPolicy !== '') this.stoppedRestartable.push(c.name);
    c.running = false;
    return 'stopped';
  }

  async remove(id: string, signal?: AbortSignal): Promise<'removed' | 'gone'> {
    await this.enter('remove', id, signal);
    const c = this.find(id); // by id or by name, as the engine resolves it
    return c !== undefined && this.containers.delete(c.id) ? 'removed' : 'gone';
  }

  async rename(id: string, name: string, signal?: AbortSignal): Promise<void> {
    await this.enter('rename', id, signal);
    const c = this.find(id);
    if (c === undefined) throw new AgentError(502, 'no such container');
    if (this.find(name) !== undefined) throw new AgentError(502, `the name ${name} is in use`);
    c.name = name;
  }

  // Image retention (src/deploy/retention.ts): the deploy sequence never calls these.
  async listContainers(): Promise<Port.ContainerImageUse[]> {
    await this.enter('listContainers', '');
    if (this.imageStore === null) return [];
    return [...this.containers.values()].map((c) => ({ id: c.id, imageId: c.imageId, labels: { ...c.labels } }));
  }

  async pulledSince(since: Date, signal?: AbortSignal): Promise<string[]> {
    await this.enter('pulledSince', '', signal);
    return this.pulls.filter((p) => p.at >= since.getTime()).map((p) => p.reference);
  }

  async removeImage(reference: string): Promise<Port.ImageRemoval> {
    await this.enter('removeImage', reference);
    if (this.imageStore === null || !this.imageStore.has(reference)) return 'gone';
    // As the engine does unforced: an image a container uses, in any state, stays.
    const id = this.imageIdOf(reference);
    if ([...this.containers.values()].some((c) => c.imageId === id)) return 'in-use';
    this.imageStore.delete(reference);
    this.removedImages.push(reference);
    return 'deleted';
  }

  async logsTail(id: string, _lines: number, signal?: AbortSignal): Promise<string> {
    await this.enter('logsTail', id, signal);
    return 'boom: cannot connect to the database';
  }

  /** The calls that would change the container `id`. */
  touched(id: string): string[] {
    return this.calls.filter((c) => /^(stop|remove|rename|start|disableRestart) /.test(c) && c.endsWith(id));
  }
}
