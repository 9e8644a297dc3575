import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { Server } from 'node:http';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { pino } from 'pino';
import { CONNECTION_LIMITS, type ConnectionManager, manageConnections } from '../../../src/http/connections.js';

// connections.ts's bookkeeping with fake sockets and a mocked clock, to the millisecond: the loopback
// test (connections.test.ts) shows the behaviour with real sockets but cannot place a boundary exactly.
const LIMITS = { ...CONNECTION_LIMITS, maxConnections: 3, idleMs: 1_000, sweepMs: 100 };

class FakeSocket extends EventEmitter {
  destroyed = false;
  constructor(readonly name: string) {
    super();
  }
  /** As a real socket's: 'close' comes later, not inside destroy(). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    process.nextTick(() => this.emit('close'));
  }
}

describe('connection manager: order, boundaries and counters', () => {
  let server: EventEmitter & { headersTimeout?: number; keepAliveTimeout?: number };
  let manager: ConnectionManager;
  let warnings: string[];

  const open = (name: string): FakeSocket => {
    const socket = new FakeSocket(name);
    server.emit('connection', socket);
    return socket;
  };
  /** A request on the socket; the returned function ends its response, with 'finish' then 'close'. */
  const request = (socket: FakeSocket): (() => void) => {
    const res = new EventEmitter();
    server.emit('request', { socket }, res);
    return () => {
      res.emit('finish');
      res.emit('close');
    };
  };

  beforeEach(() => {
    mock.timers.enable({ apis: ['setInterval', 'Date'], now: 1_000_000 });
    server = new EventEmitter();
    warnings = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) });
    manager = manageConnections(server as unknown as Server, LIMITS, logger);
  });
  afterEach(() => {
    manager.stop();
    mock.timers.reset();
  });

  it("sets Node's own timeouts from the limits", () => {
    assert.equal(server.headersTimeout, LIMITS.headersTimeoutMs);
    assert.equal(server.keepAliveTimeout, LIMITS.keepAliveTimeoutMs);
  });

  it('when full, closes the connection idle longest, and counts it; a closed one frees its slot', () => {
    const [a, b, c] = [open('a'), open('b'), open('c')];
    assert.equal(manager.open(), 3);
    const d = open('d');
    assert.deepEqual([a.destroyed, b.destroyed, c.destroyed, d.destroyed], [true, false, false, false]);
    assert.deepEqual(manager.closed(), { forRoom: 1, idle: 0 });
    assert.equal(manager.open(), 3);
    b.emit('close');
    assert.equal(manager.open(), 2);
    open('e');
    assert.equal(c.destroyed, false, 'a free slot: nobody closed');
  });

  it('never closes one with a request in flight; when all are, the new one is closed instead', () => {
    const [a, b, c] = [open('a'), open('b'), open('c')];
    request(a);
    const endB = request(b);
    request(c);
    const d = open('d');
    assert.equal(d.destroyed, true);
    assert.deepEqual([a.destroyed, b.destroyed, c.destroyed], [false, false, false]);
    assert.equal(manager.open(), 3);
    assert.deepEqual(manager.closed(), { forRoom: 0, idle: 0 });
    endB();
    open('e');
    assert.deepEqual([a.destroyed, b.destroyed, c.destroyed], [false, true, false]);
  });

  it('a connection whose response finished becomes the idle most recently, not the longest', () => {
    const [a, b, c] = [open('a'), open('b'), open('c')];
    request(a)();
    open('d');
    assert.deepEqual([a.destroyed, b.destroyed, c.destroyed], [false, true, false]);
  });

  it("counts a response once, though both 'finish' and 'close' end it", () => {
    const [a, b, c] = [open('a'), open('b'), open('c')];
    request(a);
    request(a)();
    request(b);
    request(c);
    // One request is still in flight on a: every slot serves one, so the new connection is refused.
    assert.equal(open('d').destroyed, true);
    assert.equal(a.destroyed, false);
  });

  it('forgets a connection that closed with a request in flight, when its response ends later', () => {
    const a = open('a');
    const end = request(a);
    a.emit('close');
    end();
    assert.equal(manager.open(), 0);
  });

  it('ignores a request on a connection it does not track', () => {
    const stray = new FakeSocket('stray');
    assert.doesNotThrow(() => request(stray)());
    assert.equal(manager.open(), 0);
  });

  it('the sweep closes a connection idle for idleMs exactly, skipping those in flight, and counts it', () => {
    const busy = open('busy');
    request(busy);
    const a = open('a');
    mock.timers.tick(400);
    const b = open('b');
    mock.timers.tick(500);
    assert.equal(a.destroyed, false);
    mock.timers.tick(100);
    assert.deepEqual([busy.destroyed, a.destroyed, b.destroyed], [false, true, false]);
    assert.deepEqual(manager.closed(), { forRoom: 0, idle: 1 });
    mock.timers.tick(300);
    assert.equal(b.destroyed, false, 'not before its own idleMs');
    mock.timers.tick(100);
    assert.equal(b.destroyed, true);
    assert.deepEqual(manager.closed(), { forRoom: 0, idle: 2 });
    assert.equal(manager.open(), 1);
  });

  it('stop() ends the sweep', () => {
    const a = open('a');
    manager.stop();
    mock.timers.tick(5_000);
    assert.equal(a.destroyed, false);
  });

  it('warns when full at most once a minute', () => {
    manager.stop(); // the sweep would empty the slots while the clock moves a minute
    for (const name of ['a', 'b', 'c', 'd', 'e']) open(name);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? '', /"maxConnections":3,"closedToMakeRoom":1,/);
    assert.match(warnings[0] ?? '', /connections: all slots taken/);
    mock.timers.tick(59_999);
    open('f');
    assert.equal(warnings.length, 1);
    mock.timers.tick(1);
    open('g');
    assert.equal(warnings.length, 2);
    assert.match(warnings[1] ?? '', /"closedToMakeRoom":4,/);
  });
});
