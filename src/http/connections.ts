import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';

/**
 * Connection management: a client that sends nothing can never keep out one that sends a request.
 *
 * Security: any local process (a compromised runtime on host networking, too) can open connections
 * to the agent. A fixed cap (Node's maxConnections) lets it fill every slot with silent sockets,
 * reopened as soon as the agent closes them, and every status and stop is then reset: the emergency
 * brake would not arrive. Here the cap never turns a new connection away while one is merely idle:
 *
 *  - when full, the connection idle longest without a request in flight is closed to make room
 *    (never one with a request in flight: a deploy's answer may take its time);
 *  - a connection with no request in flight for IDLE_MS is closed, whether it sent nothing, is
 *    trickling a request's headers byte by byte (slowloris), or is a keep-alive between requests;
 *  - what an idle connection can make the agent hold is bounded: its partial headers are at most
 *    MAX_HEADER_BYTES (the server's maxHeaderSize), and there are at most MAX_CONNECTIONS of them.
 *
 * A connection's request is "in flight" from its headers (Node's 'request') until its response has
 * finished or it closed.
 */
export const CONNECTION_LIMITS = {
  /** Beyond this many open connections, the idle one longest without a request is closed. */
  maxConnections: 256,
  /** A connection without a request in flight for this long is closed. */
  idleMs: 5_000,
  /** How often idle connections are looked for. */
  sweepMs: 1_000,
  /** The server's limit on a request's headers (Node's default is 16 KiB): memory per idle socket. */
  maxHeaderBytes: 8 * 1024,
  /** Node's own timeouts, short: the whole headers, and a keep-alive between requests. */
  headersTimeoutMs: 5_000,
  keepAliveTimeoutMs: 5_000,
} as const;

export type ConnectionLimits = { readonly [K in keyof typeof CONNECTION_LIMITS]: number };

interface Tracked {
  /** Requests received on it whose response has not finished. */
  inFlight: number;
  /** Since when it has had no request in flight (its connection, or its last response). */
  idleSince: number;
}

export interface ConnectionManager {
  /** Open connections now. */
  readonly open: () => number;
  /** Connections closed to make room, and for being idle, since the start. */
  readonly closed: () => { readonly forRoom: number; readonly idle: number };
  /** Stops the sweep (at shutdown). */
  stop(): void;
}

export function manageConnections(server: Server, limits: ConnectionLimits, logger: Logger): ConnectionManager {
  // Insertion order is idle order: a connection is moved to the end whenever it becomes idle again.
  const sockets = new Map<Socket, Tracked>();
  let forRoom = 0;
  let idle = 0;
  let lastWarning = 0;

  server.headersTimeout = limits.headersTimeoutMs;
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;

  const close = (socket: Socket): void => {
    sockets.delete(socket);
    socket.destroy();
  };
  /** The connection idle longest without a request in flight, if any. */
  const longestIdle = (): Socket | null => {
    for (const [socket, t] of sockets) if (t.inFlight === 0) return socket;
    return null;
  };

  server.on('connection', (socket: Socket) => {
    while (sockets.size >= limits.maxConnections) {
      const victim = longestIdle();
      if (victim === null) {
        // Every slot serves a request: this one waits for none of them, and is closed.
        socket.destroy();
        return;
      }
      close(victim);
      forRoom += 1;
      warnAtMostEveryMinute();
    }
    sockets.set(socket, { inFlight: 0, idleSince: Date.now() });
    socket.once('close', () => sockets.delete(socket));
  });

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket;
    const t = sockets.get(socket);
    if (t === undefined) return;
    t.inFlight += 1;
    let done = false;
    const finished = () => {
      if (done) return;
      done = true;
      t.inFlight -= 1;
      if (t.inFlight === 0 && sockets.has(socket)) {
        sockets.delete(socket);
        t.idleSince = Date.now();
        sockets.set(socket, t);
      }
    };
    res.once('finish', finished);
    res.once('close', finished);
  });

  const sweep = setInterval(() => {
    const before = Date.now() - limits.idleMs;
    for (const [socket, t] of sockets) {
      if (t.inFlight > 0) continue;
      if (t.idleSince > before) break; // the rest became idle later
      close(socket);
      idle += 1;
    }
  }, limits.sweepMs);
  sweep.unref();

  function warnAtMostEveryMinute(): void {
    const now = Date.now();
    if (now - lastWarning < 60_000) return;
    lastWarning = now;
    logger.warn(
      { maxConnections: limits.maxConnections, closedToMakeRoom: forRoom },
      'connections: all slots taken; the connection idle longest is closed for each new one (a flood of idle connections?)',
    );
  }

  return {
    open: () => sockets.size,
    closed: () => ({ forRoom, idle }),
    stop: () => clearInterval(sweep),
  };
}
