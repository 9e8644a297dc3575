/**
 * A registry that stalls mid-pull: an HTTP proxy on 127.0.0.1 in front of the sandbox registry that
 * passes manifests through and holds every blob download open without answering. A pull through it
 * starts (the engine gets the manifest) and then never finishes, like a registry that hangs.
 */
import { createServer, type IncomingMessage, request, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface StallingRegistry {
  /** host:port to use as the registry part of IMAGE_REPOSITORY. */
  readonly host: string;
  /**
   * How many blob requests it has held so far. Counted, not looked at: an engine with the containerd
   * image store (Docker 28) cancels its download when the pull is abandoned, and the held request
   * closes; the classic store's download lingers.
   */
  held(): number;
  close(): Promise<void>;
}

export async function startStallingRegistry(upstream: string): Promise<StallingRegistry> {
  const [upstreamHost, upstreamPort] = upstream.split(':');
  const heldResponses = new Set<ServerResponse>();
  let heldSoFar = 0;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.method === 'GET' && /\/blobs\/sha256:/.test(req.url ?? '')) {
      heldResponses.add(res);
      heldSoFar += 1;
      res.on('close', () => heldResponses.delete(res));
      return;
    }
    const forward = request(
      {
        host: upstreamHost,
        port: Number(upstreamPort),
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: upstream },
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    held: () => heldSoFar,
    close: async () => {
      for (const res of heldResponses) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
