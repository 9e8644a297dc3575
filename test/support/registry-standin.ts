/**
 * A stand-in in front of the sandbox's registry (Debian's docker-registry 2.8, which has no referrers
 * API): it serves `GET /v2/<name>/referrers/<digest>` from what the test registers, as an OCI 1.1
 * registry does, and passes everything else through. It can also misbehave for the agent only (the
 * engine's requests, "docker/…", always pass): refuse the agent's connections, or tamper with the
 * blobs it serves, byte for byte the same size.
 */
import { createServer, type IncomingMessage, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export type StandInMode = 'normal' | 'unreachable-for-agent' | 'tamper-blobs-for-agent';

export class RegistryStandIn {
  /** Referrers by subject digest: the descriptors the referrers API answers with. */
  readonly referrers = new Map<string, object[]>();
  mode: StandInMode = 'normal';
  /** Requests the agent (not the engine) made, by path. */
  readonly agentRequests: string[] = [];

  private constructor(
    private readonly server: Server,
    readonly host: string,
  ) {}

  static async start(upstream: string): Promise<RegistryStandIn> {
    const [upstreamHost, upstreamPort] = upstream.split(':');
    let standIn: RegistryStandIn | null = null;
    const server = createServer((req, res) => {
      const self = standIn;
      if (self === null) return void res.writeHead(503).end();
      const fromEngine = /^docker\//.test(req.headers['user-agent'] ?? '');
      if (!fromEngine) self.agentRequests.push(`${req.method} ${req.url}`);
      if (!fromEngine && self.mode === 'unreachable-for-agent') return void req.socket.destroy();
      const referrers = /^\/v2\/(.+)\/referrers\/(sha256:[0-9a-f]{64})$/.exec(req.url ?? '');
      if (req.method === 'GET' && referrers?.[2] !== undefined) {
        const body = JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.index.v1+json',
          manifests: self.referrers.get(referrers[2]) ?? [],
        });
        return void res.writeHead(200, { 'Content-Type': 'application/vnd.oci.image.index.v1+json' }).end(body);
      }
      const tamper = !fromEngine && self.mode === 'tamper-blobs-for-agent' && /\/blobs\/sha256:/.test(req.url ?? '');
      const forward = request(
        {
          host: upstreamHost,
          port: Number(upstreamPort),
          method: req.method,
          path: req.url,
          headers: { ...req.headers, host: upstream },
          timeout: 30_000,
        },
        (upstreamRes: IncomingMessage) => {
          if (!tamper) {
            res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
            upstreamRes.pipe(res);
            return;
          }
          const chunks: Buffer[] = [];
          upstreamRes.on('data', (c: Buffer) => chunks.push(c));
          upstreamRes.on('end', () => {
            const body = Buffer.concat(chunks);
            if (body.length > 0) body[body.length - 1] = (body[body.length - 1] ?? 0) ^ 0x01;
            res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers).end(body);
          });
        },
      );
      forward.on('error', () => res.destroy());
      forward.on('timeout', () => forward.destroy());
      req.pipe(forward);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    standIn = new RegistryStandIn(server, `127.0.0.1:${(server.address() as AddressInfo).port}`);
    return standIn;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}
