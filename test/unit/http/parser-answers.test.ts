import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { Server } from 'node:http';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { answerParserErrors } from '../../../src/http/parser-errors.js';

// answerParserErrors with a fake server and socket: every answer byte for byte, and the cases a real
// socket makes hard to reach (a peer that reset, a socket no longer writable, a request timeout).
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;

function setup() {
  const server = new EventEmitter();
  const logged: Record<string, unknown>[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => void logged.push(JSON.parse(line)) });
  answerParserErrors(server as unknown as Server, logger);
  return { server, logged };
}

class FakeSocket {
  written: string | undefined;
  destroyed = false;
  constructor(readonly writable: boolean) {}
  end(data: string): void {
    this.written = data;
  }
  destroy(): void {
    this.destroyed = true;
  }
}

function clientError(code: string | undefined, writable = true) {
  const { server, logged } = setup();
  const socket = new FakeSocket(writable);
  const error: NodeJS.ErrnoException = Object.assign(new Error('parse'), code === undefined ? {} : { code });
  server.emit('clientError', error, socket);
  return { socket, logged };
}

describe('answers to what the HTTP parser refuses', () => {
  for (const [code, status, text, reason] of [
    ['HPE_HEADER_OVERFLOW', 431, 'Request Header Fields Too Large', 'the request headers are too large'],
    ['ERR_HTTP_REQUEST_TIMEOUT', 408, 'Request Timeout', 'the request was not received in time'],
    ['HPE_INVALID_METHOD', 400, 'Bad Request', 'the request is not valid HTTP'],
    [undefined, 400, 'Bad Request', 'the request is not valid HTTP'],
  ] as const) {
    it(`${code ?? 'no code'}: ${status} with a JSON body, a request id and a log line under it`, () => {
      const { socket, logged } = clientError(code);
      const body = JSON.stringify({ status: 'error', reason });
      const id = socket.written?.match(UUID)?.[0] ?? '';
      assert.equal(
        socket.written,
        [
          `HTTP/1.1 ${status} ${text}`,
          `X-Request-Id: ${id}`,
          'Content-Type: application/json; charset=utf-8',
          `Content-Length: ${Buffer.byteLength(body)}`,
          'Connection: close',
          '',
          body,
        ].join('\r\n'),
      );
      assert.equal(logged.length, 1);
      assert.equal(logged[0]?.requestId, id);
      assert.equal(logged[0]?.status, status);
      assert.equal(logged[0]?.code, code);
      assert.equal(logged[0]?.msg, 'request refused by the HTTP parser');
      assert.equal(socket.destroyed, false);
    });
  }

  it('says nothing to a peer that reset, or on a socket no longer writable: it is destroyed', () => {
    for (const [code, writable] of [
      ['ECONNRESET', true],
      ['HPE_INVALID_METHOD', false],
    ] as const) {
      const { socket, logged } = clientError(code, writable);
      assert.equal(socket.written, undefined);
      assert.equal(socket.destroyed, true);
      assert.equal(logged.length, 0);
    }
  });

  it('an Expect other than 100-continue: 417 with a JSON body, a request id and a log line', () => {
    const { server, logged } = setup();
    let head: { status: number; headers: Record<string, unknown> } | undefined;
    let sent: string | undefined;
    const res = {
      writeHead: (status: number, headers: Record<string, unknown>) => {
        head = { status, headers };
      },
      end: (body: string) => {
        sent = body;
      },
    };
    server.emit('checkExpectation', { method: 'PUT' }, res);
    const body = JSON.stringify({ status: 'error', reason: 'the Expect header is not supported (only 100-continue is)' });
    assert.equal(sent, body);
    const id = String(head?.headers['X-Request-Id']);
    assert.match(id, UUID);
    assert.deepEqual(head, {
      status: 417,
      headers: {
        'X-Request-Id': id,
        'Content-Type': 'application/json; charset=utf-8',
        'Content-Length': Buffer.byteLength(body),
        Connection: 'close',
      },
    });
    assert.equal(logged[0]?.requestId, id);
    assert.equal(logged[0]?.status, 417);
    assert.equal(logged[0]?.method, 'PUT');
    assert.equal(logged[0]?.msg, 'request refused: unsupported Expect header');
  });
});
