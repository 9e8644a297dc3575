import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { CONNECTION_LIMITS, type ConnectionManager, manageConnections } from '../../../src/http/connections.js';

/** connections.ts on a real loopback server with small limits: who is closed when, and who never is. */
const LIMITS = { ...CONNECTION_LIMITS, maxConnections: 4, idleMs: 300, sweepMs: 50 };

async function serve(handler: (release: Promise<void>) => Promise<void> = async () => undefined) {
  let release: () => void = () => undefined;
  const released = new Promise<void>((resolve) => (release = resolve));
  const server: Server = createServer((_req, res) => {
    void handler(released).then(() => res.end('ok'));
  });
  const manager: ConnectionManager = manageConnections(server, LIMITS, pino({ level: 'silent' }));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const sockets: Socket[] = [];
  const silent = async () => {
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    sockets.push(socket);
    await new Promise((resolve) => socket.once('connect', resolve));
    return socket;
  };
  const get = () =>
    new Promise<number | string>((resolve) => {
      const req = request({ host: '127.0.0.1', port, path: '/', agent: false, timeout: 5_000 }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      req.end();
    });
  const close = async () => {
    release();
    manager.stop();
    for (const s of sockets) s.destroy();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  };
  return { manager, silent, get, release, close };
}

const closed = (socket: Socket) => socket.destroyed || socket.readableEnded;
const until = async (what: string, check: () => boolean, ms = 2_000) => {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) assert.fail(`${what}: not within ${ms} ms`);
    await sleep(10);
  }
};

describe('connection management', () => {
  it('full of silent connections: a request on a new one is answered, the one idle longest is closed for it', async () => {
    const s = await serve();
    try {
      const first = await s.silent();
      for (let i = 1; i < LIMITS.maxConnections; i += 1) await s.silent();
      assert.equal(await s.get(), 200);
      await until('the oldest silent connection is closed', () => closed(first));
    } finally {
      await s.close();
    }
  });

  it('never closes a connection with a request in flight, however many arrive', async () => {
    const s = await serve((released) => released);
    try {
      const pending = s.get();
      await until('the request is in flight', () => s.manager.open() === 1);
      for (let i = 0; i < LIMITS.maxConnections * 3; i += 1) await s.silent();
      s.release();
      assert.equal(await pending, 200);
      assert.ok(s.manager.closed().forRoom >= LIMITS.maxConnections * 2);
    } finally {
      await s.close();
    }
  });

  it('closes a connection without a request in flight after the idle time: silent, or trickling its headers', async () => {
    const s = await serve();
    try {
      const silent = await s.silent();
      const trickling = await s.silent();
      trickling.write('GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ');
      const drip = setInterval(() => trickling.writable && trickling.write('a'), 20);
      try {
        await until('both are closed', () => closed(silent) && closed(trickling), LIMITS.idleMs + 1_000);
      } finally {
        clearInterval(drip);
      }
      assert.equal(s.manager.closed().idle, 2);
    } finally {
      await s.close();
    }
  });
});
