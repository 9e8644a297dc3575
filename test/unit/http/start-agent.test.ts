/**
 * startAgent (http/app.ts) beyond its answers: where it listens, what a failed listen leaves behind,
 * and its close. No engine is needed (a socket that does not exist): nothing here asks it anything.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { startAgent } from '../../../src/http/app.js';
import { tempDir } from '../../support/temp-dir.js';
import { unitConfig } from '../../support/unit-config.js';

const dir = tempDir('start-agent');
const config = (name: string) => unitConfig(join(dir, name), { DOCKER_HOST: `unix://${join(dir, 'no-engine.sock')}` });

/** Whether a TCP connection to host:port is accepted. */
function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, host);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe('startAgent', () => {
  it('listens on 127.0.0.1 only (another loopback address is refused: the tunnel is its only way in), with its header limit', async () => {
    const agent = await startAgent(config('loopback'), { port: 0 });
    try {
      assert.equal(agent.url, `http://127.0.0.1:${agent.port}`);
      assert.equal(await accepts('127.0.0.1', agent.port), true);
      // Listening on every address would accept these too (Linux routes all of 127/8 to loopback).
      assert.equal(await accepts('127.0.0.2', agent.port), false, 'listening beyond 127.0.0.1');
      // Its own header limit, 8 KiB (connections.ts), not Node's default 16 KiB.
      const big = await fetch(`${agent.url}/v1/status`, { headers: { 'x-pad': 'a'.repeat(10 * 1024) } });
      assert.equal(big.status, 431, await big.text());
    } finally {
      await agent.close();
    }
  });

  it('a port in use: the start fails, and the state folder is left unlocked for the next start', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const { port } = taken.address() as AddressInfo;
    const same = config('port-in-use');
    try {
      await assert.rejects(startAgent(same, { port }), /EADDRINUSE/);
      const next = await startAgent(same, { port: 0 });
      await next.close();
    } finally {
      taken.close();
    }
  });

  it('without a port option, listens on the configured PORT', async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const { port } = probe.address() as AddressInfo;
    await new Promise((resolve) => probe.close(resolve));
    const agent = await startAgent(
      unitConfig(join(dir, 'configured-port'), { DOCKER_HOST: `unix://${join(dir, 'no-engine.sock')}`, PORT: String(port) }),
    );
    try {
      assert.equal(agent.port, port);
    } finally {
      await agent.close();
    }
  });

  it('close: one closing however often asked; then nothing listens', async () => {
    const agent = await startAgent(config('close'), { port: 0 });
    const first = agent.close();
    assert.equal(agent.close(), first, 'a second close is the same closing');
    await first;
    assert.equal(await accepts('127.0.0.1', agent.port), false);
  });
});
