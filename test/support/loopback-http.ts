/**
 * One HTTP server on 127.0.0.1 whose answer each test sets (`answer`), recording every request it
 * gets: for the registry client's edges (status codes, headers, redirects, auth challenges), where a
 * scripted registry's well-behaved answers are not what is being tested. Nothing leaves loopback.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SeenRequest {
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
}

export type Answer = (req: IncomingMessage, res: ServerResponse) => void;

export class LoopbackHttp {
  readonly seen: SeenRequest[] = [];
  answer: Answer = (_req, res) => void res.writeHead(404).end();

  private constructor(
    private readonly server: Server,
    /** `127.0.0.1:<port>` */
    readonly host: string,
  ) {}

  static async start(): Promise<LoopbackHttp> {
    let self: LoopbackHttp | null = null;
    const server = createServer((req, res) => {
      self?.seen.push({ url: req.url ?? '', headers: req.headers });
      self?.answer(req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    self = new LoopbackHttp(server, `127.0.0.1:${(server.address() as AddressInfo).port}`);
    return self;
  }

  /** Forgets what was seen and answers 404 again. */
  reset(answer?: Answer): void {
    this.seen.length = 0;
    this.answer = answer ?? ((_req, res) => void res.writeHead(404).end());
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
