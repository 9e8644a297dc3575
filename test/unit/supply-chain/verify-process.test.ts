import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type AttestationPolicy, verificationPolicy } from '../../../src/config/verification.js';
import { AgentError } from '../../../src/errors.js';
import { createImageVerifier } from '../../../src/supply-chain/verifier.js';
import { createVerifierInProcess, type VerifyJob, verifyInChild } from '../../../src/supply-chain/verify-process.js';
import { SigstoreMock } from '../../support/sigstore-mock.js';

/**
 * The supply-chain check through its child process (verify-process.ts): the same AgentError as the
 * check run in the agent's thread, and a process that lives no longer than the deploy. The checks
 * themselves are in attestation.test.ts; a verified deploy through the child process is in
 * test/integration/supply-chain.test.ts.
 */
const dir = mkdtempSync(join(tmpdir(), 'dreichor-verify-process-'));
let mock: SigstoreMock;
let policy: AttestationPolicy;
/** A registry that accepts connections and never answers; it records when each one closes. */
let silent: Server;
const sockets = new Set<Socket>();

before(async () => {
  mock = await SigstoreMock.start();
  const file = join(dir, 'root.jsonl');
  writeFileSync(file, mock.trustedRootLines());
  policy = verificationPolicy({
    IMAGE_VERIFICATION: 'github-attestation',
    SIGSTORE_TRUSTED_ROOT_FILE: file,
    ATTESTATION_REPOSITORY: 'ceerkle/dreichor-trading',
    ATTESTATION_SIGNER_WORKFLOW: 'ceerkle/dreichor-trading/.github/workflows/build.yml',
  }) as AttestationPolicy;
  silent = createServer((socket) => {
    sockets.add(socket);
    socket.resume(); // reads the request, so the client's close is seen
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
});
after(async () => {
  for (const socket of sockets) socket.destroy();
  await new Promise((resolve) => silent.close(resolve));
  await mock.close();
  rmSync(dir, { recursive: true, force: true });
});

const DIGEST = `sha256:${'1'.repeat(64)}`;
const job = (repository: string, p: AttestationPolicy = policy): VerifyJob & { policy: AttestationPolicy } => ({
  policy: p,
  request: { repository, tagDigest: DIGEST, runDigest: DIGEST, credentials: null },
});
const inThread = async (j: VerifyJob & { policy: AttestationPolicy }): Promise<unknown> =>
  createImageVerifier(j.policy)
    ?.verify(j.request, new AbortController().signal)
    .catch((e: unknown) => e);
const failure = (e: unknown) => {
  assert.ok(e instanceof AgentError, String(e));
  return { status: e.status, reason: e.reason, code: e.code };
};

describe('the supply-chain check in a process of its own', () => {
  it('is not started with IMAGE_VERIFICATION=none', () => {
    assert.equal(createVerifierInProcess({ mode: 'none' }), null);
  });

  it('refuses with the same 502 as in the agent thread when the registry cannot be read', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const j = job(`127.0.0.1:${port}/dreichor/runtime`);
    const viaChild = await verifyInChild(j, new AbortController().signal).catch((e: unknown) => e);
    assert.equal(failure(viaChild).status, 502);
    assert.deepEqual(failure(viaChild), failure(await inThread(j)));
  });

  it('refuses with the same 503 as in the agent thread when the trusted root does not load', async () => {
    const broken: AttestationPolicy = { ...policy, trustedRoots: [{ tlogs: [{ publicKey: { rawBytes: 42 } }] }] };
    const j = job('127.0.0.1:1/dreichor/runtime', broken);
    const viaChild = await verifyInChild(j, new AbortController().signal).catch((e: unknown) => e);
    assert.equal(failure(viaChild).status, 503);
    assert.equal(failure(viaChild).code, 'image_unverified');
    assert.deepEqual(failure(viaChild), failure(await inThread(j)));
  });

  it("ends with the deploy: an abort rejects with the abort's reason and ends the process, its connections closed", async () => {
    const port = (silent.address() as { port: number }).port;
    const deploy = new AbortController();
    const started = Date.now();
    const pending = verifyInChild(job(`127.0.0.1:${port}/dreichor/runtime`), deploy.signal).catch((e: unknown) => e);
    // The check has reached the registry: its connection is open and will never be answered.
    while (sockets.size === 0 && Date.now() - started < 10_000) await new Promise((r) => setTimeout(r, 20));
    assert.ok(sockets.size > 0, 'the check connected to the registry');
    const reason = new AgentError(504, 'the deploy took too long');
    deploy.abort(reason);
    assert.equal(await pending, reason);
    // Terminated: its connections are closed, not left open in the agent.
    while (sockets.size > 0 && Date.now() - started < 10_000) await new Promise((r) => setTimeout(r, 20));
    assert.equal(sockets.size, 0, "the check's connections were closed");
  });

  it('does not start at all for a deploy already abandoned', async () => {
    const deploy = new AbortController();
    const reason = new AgentError(499, 'the caller went away', { code: 'caller_gone' });
    deploy.abort(reason);
    await assert.rejects(verifyInChild(job('127.0.0.1:1/x'), deploy.signal), (e) => e === reason);
  });
});
