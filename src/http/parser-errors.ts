import { randomUUID } from 'node:crypto';
import { type IncomingMessage, type Server, type ServerResponse, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';

/**
 * Requests Node refuses before Express sees them: a header block over Node's limit (431), a request
 * line or header that does not parse (400), a request that did not arrive in time (408), an `Expect`
 * other than `100-continue` (417). Node answers these with a bare status line and no body; the
 * contract is that every error is the JSON shape `{"status":"error","reason":...}` with an
 * X-Request-Id, and that every refusal has a log line under that id.
 */
export function answerParserErrors(server: Server, logger: Logger): void {
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    // The peer is gone, or an answer is already on its way: nothing can be said any more.
    if (error.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const { status, reason } = parserProblem(error.code);
    const id = randomUUID();
    logger.warn({ requestId: id, status, code: error.code }, 'request refused by the HTTP parser');
    const body = JSON.stringify({ status: 'error', reason });
    socket.end(
      [
        `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}`,
        `X-Request-Id: ${id}`,
        'Content-Type: application/json; charset=utf-8',
        `Content-Length: ${Buffer.byteLength(body)}`,
        'Connection: close',
        '',
        body,
      ].join('\r\n'),
    );
  });

  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    const id = randomUUID();
    logger.warn({ requestId: id, status: 417, method: req.method }, 'request refused: unsupported Expect header');
    const body = JSON.stringify({ status: 'error', reason: 'the Expect header is not supported (only 100-continue is)' });
    res.writeHead(417, {
      'X-Request-Id': id,
      'Content-Type': 'application/json; charset=utf-8',
      'Content-Length': Buffer.byteLength(body),
      Connection: 'close',
    });
    res.end(body);
  });
}

function parserProblem(code: string | undefined): { status: number; reason: string } {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return { status: 431, reason: 'the request headers are too large' };
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { status: 408, reason: 'the request was not received in time' };
    default:
      return { status: 400, reason: 'the request is not valid HTTP' };
  }
}
