/**
 * A registry that says whatever a test scripts, on 127.0.0.1 over plain HTTP (the agent's registry
 * client speaks HTTP to loopback, as the engine does): manifests by digest and by tag, blobs, and the
 * OCI referrers API when it is switched on. What it serves by digest is, by construction, the bytes
 * of that digest; what those bytes say (an index listing an unsigned image, a referrer naming another
 * subject) is the test's to choose. For the fast tier: no engine, no disk, a few hundred microseconds
 * a request.
 */
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export const sha256 = (bytes: Buffer | string): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

/** What the registry does with one request instead of answering it (see `intercept`). */
export type RegistryFault = 'fail' | 'hang' | 'drip';

export interface Stored {
  readonly bytes: Buffer;
  readonly mediaType: string;
}

export interface ReferrerDescriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly artifactType?: string;
}

export class ScriptedRegistry {
  /** Manifests by digest and by tag. */
  readonly manifests = new Map<string, Stored>();
  readonly blobs = new Map<string, Buffer>();
  /** What the referrers API lists for a digest; the API answers 404 when `referrersApi` is off. */
  readonly referrers = new Map<string, ReferrerDescriptor[]>();
  referrersApi = true;
  readonly requests: string[] = [];
  /**
   * Decides, before each request is answered, whether it is answered at all: `fail` answers 500,
   * `hang` never answers, `drip` answers 200 with a body that never ends (a byte every 100 ms). The fault matrix injects its registry faults here.
   */
  intercept: ((request: string) => Promise<RegistryFault | null>) | null = null;

  private constructor(
    private readonly server: Server,
    readonly host: string,
    readonly path: string,
  ) {}

  static async start(path = 'dreichor/runtime'): Promise<ScriptedRegistry> {
    let registry: ScriptedRegistry | null = null;
    const server = createServer((req, res) => {
      const request = `${req.method ?? 'GET'} ${req.url ?? '/'}`;
      const intercepted = registry?.intercept?.(request) ?? Promise.resolve(null);
      void intercepted.then((fault) => {
        if (fault === 'hang') return;
        if (fault === 'fail') {
          res.writeHead(500, { 'Content-Type': 'text/plain' });
          res.end('injected failure');
          return;
        }
        const answer = registry?.answer(req.method ?? 'GET', req.url ?? '/') ?? { status: 500 };
        if (fault === 'drip') {
          // 200 (even for what it does not hold: a body is read only from a 200), chunked, with no
          // end: the client's own deadline (or its caller's) is all that ends it.
          res.writeHead(200, { 'Content-Type': answer.mediaType ?? 'application/octet-stream' });
          const drip = setInterval(() => res.write(' '), 100);
          res.on('close', () => clearInterval(drip));
          return;
        }
        res.writeHead(answer.status, answer.mediaType === undefined ? {} : { 'Content-Type': answer.mediaType });
        res.end(answer.bytes);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    registry = new ScriptedRegistry(server, `127.0.0.1:${(server.address() as AddressInfo).port}`, path);
    return registry;
  }

  get repository(): string {
    return `${this.host}/${this.path}`;
  }

  /** Forgets everything stored (the server keeps running). */
  reset(): void {
    this.manifests.clear();
    this.blobs.clear();
    this.referrers.clear();
    this.requests.length = 0;
    this.referrersApi = true;
  }

  blob(bytes: Buffer): { mediaType: string; digest: string; size: number } {
    const digest = sha256(bytes);
    this.blobs.set(digest, bytes);
    return { mediaType: 'application/octet-stream', digest, size: bytes.length };
  }

  /** Stores a manifest (any JSON, its bytes exactly as given) under its digest and optional tags. */
  manifest(value: object, mediaType: string, ...tags: string[]): { mediaType: string; digest: string; size: number } {
    const bytes = Buffer.from(JSON.stringify(value));
    const digest = sha256(bytes);
    for (const ref of [digest, ...tags]) this.manifests.set(ref, { bytes, mediaType });
    return { mediaType, digest, size: bytes.length };
  }

  /** An image: a config blob (its digest is the image id on the classic store), one layer, an OCI manifest. */
  image(name: string, ...tags: string[]): { mediaType: string; digest: string; size: number; config: string } {
    const config = this.blob(
      Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Env: [`NAME=${name}`] } })),
    );
    const layer = this.blob(Buffer.from(`layer of ${name}`));
    const manifest = this.manifest(
      {
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { ...config, mediaType: 'application/vnd.oci.image.config.v1+json' },
        layers: [{ ...layer, mediaType: 'application/vnd.oci.image.layer.v1.tar' }],
      },
      OCI_MANIFEST,
      ...tags,
    );
    return { ...manifest, config: config.digest };
  }

  /** An OCI image index over `entries` (descriptors with their platform, or anything else). */
  index(entries: readonly object[], ...tags: string[]): { mediaType: string; digest: string; size: number } {
    return this.manifest({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: entries }, OCI_INDEX, ...tags);
  }

  private answer(method: string, url: string): { status: number; mediaType?: string; bytes?: Buffer } {
    this.requests.push(`${method} ${url}`);
    const prefix = `/v2/${this.path}/`;
    if (method !== 'GET' || !url.startsWith(prefix)) return { status: 404 };
    const [kind, ref] = url.slice(prefix.length).split('/');
    if (ref === undefined) return { status: 404 };
    const found = (stored: Stored | undefined) =>
      stored === undefined ? { status: 404 } : { status: 200, mediaType: stored.mediaType, bytes: stored.bytes };
    if (kind === 'manifests') return found(this.manifests.get(ref));
    if (kind === 'blobs') {
      const bytes = this.blobs.get(ref);
      return found(bytes === undefined ? undefined : { bytes, mediaType: 'application/octet-stream' });
    }
    if (kind === 'referrers' && this.referrersApi) {
      const index = {
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: this.referrers.get(ref) ?? [],
      };
      return { status: 200, mediaType: 'application/vnd.oci.image.index.v1+json', bytes: Buffer.from(JSON.stringify(index)) };
    }
    return { status: 404 };
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
