/**
 * A scripted stand-in for the container engine, behind the same port as the real one, for the fast
 * unit tests of the deploy sequence: the order of its steps and its abort rules. It records every
 * call, keeps a tiny model of containers, and lets a test fail or hold any method. It proves nothing
 * about Docker: the real-engine tests do that.
 */
import type * as Port from '../../src/engine-port.js';

export interface FakeContainer {
  id: string;
  name: string;
  image: string;
  running: boolean;
  exitCode: number;
  labels: Record<string, string>;
}

type Method = keyof Port.EnginePort;

export class FakeEngine implements Port.EnginePort {
  readonly calls: string[] = [];
  readonly containers = new Map<string, FakeContainer>();
  /** What a tag resolves to. */
  tagDigest = `sha256:${'a'.repeat(64)}`;
  /** What a started container does: keeps running, or exits at once with this code. */
  exitOnStart: number | null = null;
  private readonly failures = new Map<Method, () => Error>();
  private readonly holds = new Map<Method, Promise<void>>();
  private next = 1;

  /** Makes `method` throw `error` from now on. */
  fail(method: Method, error: () => Error): void {
    this.failures.set(method, error);
  }

  /** Makes `method` wait for the returned release (or for its signal) before it acts. */
  hold(method: Method): () => void {
    let release: () => void = () => undefined;
    this.holds.set(method, new Promise<void>((resolve) => (release = resolve)));
    return () => {
      this.holds.delete(method);
      release();
    };
  }

  /** A container that exists before the test's deploy: the "old" runtime. */
  seed(name: string, running = true): FakeContainer {
    const c = {
      id: this.newId(),
      name,
      image: 'repo@sha256:old',
      running,
      exitCode: 0,
      labels: { 'io.dreichor.image': 'repo:old' },
    };
    this.containers.set(c.id, c);
    return c;
  }

  private newId(): string {
    return (this.next++).toString(16).padStart(64, '0');
  }

  private async enter(method: Method, detail: string, signal?: AbortSignal): Promise<void> {
    this.calls.push(detail === '' ? method : `${method} ${detail}`);
    const held = this.holds.get(method);
    if (held !== undefined) {
      await Promise.race([
        held,
        new Promise<never>((_, reject) => {
          if (signal === undefined) return;
          if (signal.aborted) reject(signal.reason);
          signal.addEventListener('abort', () => reject(signal.reason), { once: true });
        }),
      ]);
    }
    const failure = this.failures.get(method);
    if (failure !== undefined) throw failure();
  }

  private find(nameOrId: string): FakeContainer | undefined {
    return this.containers.get(nameOrId) ?? [...this.containers.values()].find((c) => c.name === nameOrId);
  }

  async resolveTag(_repository: string, tag: string, _auth: unknown, signal: AbortSignal): Promise<Port.TagResolution> {
    await this.enter('resolveTag', tag, signal);
    return { digest: this.tagDigest, index: false };
  }

  async pull(_repository: string, tagOrDigest: string, _auth: unknown, signal: AbortSignal): Promise<Port.PullResult> {
    await this.enter('pull', tagOrDigest, signal);
    return { digest: tagOrDigest };
  }

  async inspectImage(reference: string): Promise<Port.ImageInfo | null> {
    await this.enter('inspectImage', reference);
    return { id: `sha256:${'c'.repeat(64)}`, content: `sha256:${'c'.repeat(64)}`, hasHealthcheck: false };
  }

  async inspectContainer(nameOrId: string): Promise<Port.ContainerInfo | null> {
    await this.enter('inspectContainer', '');
    const c = this.find(nameOrId);
    if (c === undefined) return null;
    const status = c.running ? 'running' : 'exited';
    return {
      id: c.id,
      name: c.name,
      image: c.image,
      running: c.running,
      status,
      exitCode: c.exitCode,
      startedAt: null,
      health: null,
      labels: c.labels,
    };
  }

  async networkExists(name: string): Promise<boolean> {
    await this.enter('networkExists', name);
    return true;
  }

  async listByLabels(): Promise<Port.ContainerSummary[]> {
    await this.enter('listByLabels', '');
    return [];
  }

  async create(spec: Port.CreateSpec): Promise<string> {
    await this.enter('create', spec.name);
    const c = { id: this.newId(), name: spec.name, image: spec.image, running: false, exitCode: 0, labels: { ...spec.labels } };
    this.containers.set(c.id, c);
    return c.id;
  }

  async start(id: string): Promise<void> {
    await this.enter('start', id);
    const c = this.find(id);
    if (c === undefined) throw new Error('no such container');
    c.running = this.exitOnStart === null;
    c.exitCode = this.exitOnStart ?? 0;
  }

  async stop(id: string): Promise<Port.StopOutcome> {
    await this.enter('stop', id);
    const c = this.find(id);
    if (c === undefined) return 'gone';
    if (!c.running) return 'not-running';
    c.running = false;
    return 'stopped';
  }

  async remove(id: string): Promise<'removed' | 'gone'> {
    await this.enter('remove', id);
    return this.containers.delete(id) ? 'removed' : 'gone';
  }

  async rename(id: string, name: string): Promise<void> {
    await this.enter('rename', id);
    const c = this.find(id);
    if (c !== undefined) c.name = name;
  }

  // Image retention (src/retention.ts) has unit tests of its own; the deploy sequence never calls these.
  async listContainers(): Promise<Port.ContainerImageUse[]> {
    await this.enter('listContainers', '');
    return [];
  }

  async removeImage(reference: string): Promise<Port.ImageRemoval> {
    await this.enter('removeImage', reference);
    return 'gone';
  }

  async logsTail(id: string): Promise<string> {
    await this.enter('logsTail', id);
    return 'boom: cannot connect to the database';
  }

  /** The calls that would change the container `id`. */
  touched(id: string): string[] {
    return this.calls.filter((c) => /^(stop|remove|rename|start) /.test(c) && c.endsWith(id));
  }
}
