import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { httpGet } from '../../../src/supply-chain/http-get.js';

/**
 * httpGet over plain http on loopback (http-get.ts): what the registry client reads of an answer
 * (status, headers by any case, repeated ones joined, the body), the headers it sends, and that an
 * abort, before the answer or while its body is read, rejects with the signal's own reason.
 */
let server: Server;
let base = '';
let seen: IncomingHttpHeaders = {};
/** Resolved when the server sees a dripping answer's connection closed by the client. */
let dripClosed: Promise<void> = Promise.resolve();
before(async () => {
  server = createServer((req, res) => {
    seen = req.headers;
    if (req.url === '/hang') return; // never answers
    if (req.url === '/drip') {
      dripClosed = new Promise((resolve) => res.once('close', resolve));
      res.writeHead(200);
      res.write('first');
      return; // the body never ends
    }
    res.writeHead(207, [
      ['Content-Type', 'application/json'],
      ['Link', '<a>'],
      ['Link', '<b>'],
    ]);
    res.end('{"ok":true}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => {
  server.closeAllConnections();
  return new Promise<void>((resolve) => server.close(() => resolve()));
});

const body = async (chunks: AsyncIterable<Buffer>): Promise<string> => {
  const parts: Buffer[] = [];
  for await (const chunk of chunks) parts.push(chunk);
  return Buffer.concat(parts).toString();
};
const reason = new Error('the deploy was abandoned');

describe('httpGet over http', () => {
  it('the status, headers by any case (repeated ones joined, absent ones null) and the body', async () => {
    const answer = await httpGet(new URL(`${base}/v2/`), { Accept: 'application/json' }, AbortSignal.timeout(5_000));
    assert.equal(answer.status, 207);
    assert.equal(answer.header('Content-Type'), 'application/json');
    assert.equal(answer.header('link'), '<a>, <b>');
    assert.equal(answer.header('www-authenticate'), null);
    assert.equal(await body(answer.body), '{"ok":true}');
    assert.equal(seen.accept, 'application/json');
    assert.equal(seen['user-agent'], 'node');
  });

  it("the caller's headers win over the default User-Agent", async () => {
    const answer = await httpGet(new URL(`${base}/v2/`), { 'User-Agent': 'other' }, AbortSignal.timeout(5_000));
    answer.discard();
    assert.equal(seen['user-agent'], 'other');
  });

  it("an abort before the answer rejects with the signal's reason", async () => {
    const controller = new AbortController();
    const pending = httpGet(new URL(`${base}/hang`), {}, controller.signal);
    setTimeout(() => controller.abort(reason), 20);
    await assert.rejects(pending, (error: unknown) => error === reason);
  });

  it("an abort while the body is read ends it with the signal's reason", async () => {
    const controller = new AbortController();
    const answer = await httpGet(new URL(`${base}/drip`), {}, controller.signal);
    const reading = body(answer.body);
    setTimeout(() => controller.abort(reason), 20);
    await assert.rejects(reading, (error: unknown) => error === reason);
  });

  it('a failure that is no abort rejects with its own error; a discarded body ends the connection', async () => {
    const closed = `http://127.0.0.1:1/`;
    await assert.rejects(httpGet(new URL(closed), {}, AbortSignal.timeout(5_000)), (error: unknown) => {
      assert.equal((error as NodeJS.ErrnoException).code, 'ECONNREFUSED');
      return true;
    });
    const answer = await httpGet(new URL(`${base}/drip`), {}, AbortSignal.timeout(5_000));
    answer.discard();
    // The server sees the connection end long before the test's own deadline.
    await Promise.race([
      dripClosed,
      new Promise((_, reject) => setTimeout(() => reject(new Error('still open')), 2_000).unref()),
    ]);
  });
});
