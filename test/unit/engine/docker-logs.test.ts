/**
 * The real engine wrapper (src/docker.ts, dockerode inside) reading a container's log tail from a
 * scripted engine: a tiny HTTP server on a unix socket that speaks the Docker API's multiplexed log
 * stream. What a failed start check quotes to the caller must come out masked, whatever frames the
 * secret arrives in; the fast tier's fake engine never runs this code.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Engine } from '../../../src/docker.js';
import { createRedactor } from '../../../src/policy/redact.js';

const SECRET = 'postgres://trader:Sup3r-s3cret-pw@db.internal/dreichor';
const ID = 'f'.repeat(64);

/** One frame of Docker's multiplexed stream: stream type (1 stdout, 2 stderr), 3 zero bytes, length. */
const frame = (stream: 1 | 2, text: string): Buffer => {
  const payload = Buffer.from(text);
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
};

describe('the engine wrapper: a container log tail, masked', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dreichor-engine-socket-'));
  const socketPath = join(dir, 'docker.sock');
  let server: Server;
  let body: Buffer = Buffer.alloc(0);
  const requests: string[] = [];

  before(async () => {
    server = createServer((req, res) => {
      requests.push(`${req.method} ${req.url}`);
      if (req.method === 'GET' && req.url?.startsWith(`/containers/${ID}/logs?`)) {
        res.writeHead(200, { 'Content-Type': 'application/vnd.docker.multiplexed-stream' });
        res.end(body);
        return;
      }
      res.writeHead(404, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ message: `no such container: ${req.url}` }));
    });
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  const engine = new Engine({ socketPath, redact: createRedactor([{ name: 'DATABASE_URL', value: SECRET }]) });
  const logs = async (frames: Buffer[]) => {
    body = Buffer.concat(frames);
    return engine.logsTail(ID, 20);
  };

  it('asks the engine for the last lines of both streams, and joins the frames', async () => {
    requests.length = 0;
    const text = await logs([frame(1, 'starting\n'), frame(2, 'boom: no database\n')]);
    assert.equal(text, 'starting\nboom: no database');
    assert.equal(requests.length, 1);
    const url = new URL(`http://engine${requests[0]?.split(' ')[1]}`);
    assert.equal(url.searchParams.get('tail'), '20');
    assert.equal(url.searchParams.get('stdout'), 'true');
    assert.equal(url.searchParams.get('stderr'), 'true');
  });

  it('masks a secret the runtime printed, in one frame or split across frames of both streams', async () => {
    const cut = 20;
    for (const frames of [
      [frame(1, `connecting to ${SECRET}\n`)],
      [frame(2, `error: ${SECRET} refused\n`)],
      [frame(1, `url=${SECRET.slice(0, cut)}`), frame(2, `${SECRET.slice(cut)}\n`)],
      [frame(1, 'x\n'.repeat(5000)), frame(2, `last words: ${SECRET}\n`)],
    ]) {
      const text = await logs(frames);
      assert.doesNotMatch(text, /Sup3r/, 'the secret reached the reason');
      assert.match(text, /\[DATABASE_URL\]/, text.slice(-200));
    }
  });

  it('masks the end it keeps of a long log, where the cut splits the secret', async () => {
    // The wrapper keeps the last 16 KiB: here they begin inside the password.
    const kept = 16 * 1024;
    const from = SECRET.indexOf('cret-pw');
    const text = await logs([frame(1, `${SECRET}\n${'y'.repeat(kept + from - SECRET.length - 1)}`)]);
    assert.ok(text.length <= kept + 64, `kept ${text.length} characters`);
    assert.doesNotMatch(text, /cret-pw|db\.internal/, `a piece of the secret at the cut survived: ${text.slice(0, 60)}`);
    assert.match(text, /^\[DATABASE_URL\]/);
  });
});
