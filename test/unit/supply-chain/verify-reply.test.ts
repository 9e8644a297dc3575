import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { getEventListeners } from 'node:events';
import { describe, it } from 'node:test';
import type { AttestationPolicy } from '../../../src/config/verification.js';
import { AgentError } from '../../../src/errors.js';
import type { Provenance } from '../../../src/supply-chain/provenance.js';
import {
  createVerifierInProcess,
  VERIFY_CHILD_ARGUMENT,
  type VerifyJob,
  verifyInChild,
} from '../../../src/supply-chain/verify-process.js';
import { cosignKey } from '../../support/cosign.js';
import { type FakeChild, fakeChild, gone, nodeScript, otherCommand, withScriptedSpawn } from '../../support/scripted-child.js';

/**
 * What the agent makes of its verifier child's answer (verify-process.ts), the child scripted
 * (test/support/scripted-child.ts): only a reply of the exact shape is believed, and a child that
 * answers garbage, dies, cannot start or hangs fails closed, never as a verified image. The real
 * child's own side is in verify-child.test.ts; the real check through it in verify-process.test.ts.
 */
const JOB: VerifyJob = {
  policy: { mode: 'none' } as unknown as VerifyJob['policy'],
  request: { repository: '127.0.0.1:1/dreichor/runtime', tagDigest: 'sha256:x', runDigest: 'sha256:x', credentials: null },
};
const PROVENANCE: Provenance = {
  verified_by: 'github-attestation',
  subject_digest: `sha256:${'1'.repeat(64)}`,
  repository: 'https://github.com/ceerkle/dreichor-trading',
  commit: 'a'.repeat(40),
  ref: 'refs/heads/main',
  workflow: 'https://github.com/ceerkle/dreichor-trading/.github/workflows/build.yml@refs/heads/main',
  run_url: null,
  predicate_type: 'https://slsa.dev/provenance/v1',
  key_fingerprint: null,
};
const REFUSAL = { ok: false, status: 422, reason: 'image not verified: no', code: 'image_unverified', cause: null };

/** The outcome of one check whose child answers `reply`, and the fake child itself. */
async function answered(reply: unknown): Promise<{ outcome: unknown; child: FakeChild }> {
  const made: FakeChild[] = [];
  const outcome = await withScriptedSpawn(
    fakeChild(() => reply, made),
    () => verifyInChild(JOB, new AbortController().signal).catch((e: unknown) => e),
  );
  const [child] = made;
  assert.ok(child !== undefined);
  return { outcome, child };
}

const UNREADABLE = /^internal error: the image verifier answered something unreadable; nothing was deployed$/;
function assertUnreadable(outcome: unknown, what: string): void {
  assert.ok(outcome instanceof AgentError, `${what}: refused, not ${JSON.stringify(outcome)}`);
  assert.equal(outcome.status, 500, what);
  assert.match(outcome.reason, UNREADABLE, what);
}

describe("the verifier child's answer", () => {
  it('is started as the check, with no environment, over a JSON IPC channel, and handed the job', async () => {
    const made: FakeChild[] = [];
    await withScriptedSpawn(
      fakeChild(() => ({ ok: true, provenance: PROVENANCE }), made),
      async (calls) => {
        await verifyInChild(JOB, new AbortController().signal);
        const [call] = calls;
        assert.equal(calls.length, 1);
        assert.ok(call !== undefined);
        assert.equal(call.command, process.execPath);
        assert.equal(call.args.at(-1), VERIFY_CHILD_ARGUMENT);
        assert.equal(VERIFY_CHILD_ARGUMENT, '--internal-verify-image', 'the argument src/main.ts looks for');
        assert.match(call.args.join(' '), /--import tsx \S+\/supply-chain\/verify-child\.ts --internal-verify-image$/);
        // Security: the agent's secrets (service token, registry password) are not inherited.
        assert.deepEqual(call.options.env, {});
        assert.deepEqual(call.options.stdio, ['ignore', 'ignore', 'inherit', 'ipc']);
        assert.equal(call.options.serialization, 'json');
      },
    );
    assert.deepEqual(made[0]?.jobs, [JOB]);
  });

  it('gives the provenance of a verified image, and ends the child that answered', async () => {
    const { outcome, child } = await answered({ ok: true, provenance: PROVENANCE });
    assert.deepEqual(outcome, PROVENANCE);
    assert.deepEqual(child.kills, ['SIGKILL']);
  });

  it("gives the child's refusal as the same AgentError: status, reason, code and cause", async () => {
    const { outcome, child } = await answered({ ...REFUSAL, cause: 'the registry said no' });
    assert.ok(outcome instanceof AgentError);
    assert.deepEqual([outcome.status, outcome.reason, outcome.code], [422, 'image not verified: no', 'image_unverified']);
    assert.ok(outcome.cause instanceof Error);
    assert.equal(outcome.cause.message, 'the registry said no');
    assert.deepEqual(child.kills, ['SIGKILL']);

    const bare = (await answered({ ...REFUSAL, status: 502, code: 'registry_refused' })).outcome;
    assert.ok(bare instanceof AgentError);
    assert.deepEqual([bare.status, bare.code, bare.cause], [502, 'registry_refused', undefined]);
  });

  it('takes the edges of a refusal as they are (status 400 and 599, reason and cause of 4096, code of 64)', async () => {
    for (const edge of [
      { status: 400 },
      { status: 599 },
      { reason: 'r'.repeat(4096) },
      { cause: 'c'.repeat(4096) },
      { code: 'x'.repeat(64) },
    ]) {
      const { outcome } = await answered({ ...REFUSAL, ...edge });
      assert.ok(outcome instanceof AgentError, JSON.stringify(edge));
      assert.doesNotMatch(outcome.reason, UNREADABLE, Object.keys(edge).join());
    }
  });

  it('believes nothing else: any other shape is a 500, never a verified image', async () => {
    const cases: [string, unknown][] = [
      ['a string', 'verified'],
      ['null', null],
      ['ok without a provenance', { ok: true }],
      ['ok as a string', { ok: 'true', provenance: PROVENANCE }],
      ['ok with another field', { ok: true, provenance: PROVENANCE, trusted: true }],
      ['a provenance with another field', { ok: true, provenance: { ...PROVENANCE, extra: 1 } }],
      ['a provenance of no digest', { ok: true, provenance: { ...PROVENANCE, subject_digest: 'sha256:1' } }],
      ['a refusal with another field', { ...REFUSAL, extra: 1 }],
      ['a refusal without a cause', { ok: false, status: 422, reason: 'r', code: 'image_unverified' }],
      ['a status of success', { ...REFUSAL, status: 200 }],
      ['a status of 399', { ...REFUSAL, status: 399 }],
      ['a status of 600', { ...REFUSAL, status: 600 }],
      ['a status that is no integer', { ...REFUSAL, status: 422.5 }],
      ['a status as a string', { ...REFUSAL, status: '422' }],
      ['a reason of 4097', { ...REFUSAL, reason: 'r'.repeat(4097) }],
      ['a code of 65', { ...REFUSAL, code: 'x'.repeat(65) }],
      ['a cause of 4097', { ...REFUSAL, cause: 'c'.repeat(4097) }],
      ['a cause that is no string', { ...REFUSAL, cause: 42 }],
    ];
    for (const [what, reply] of cases) {
      const { outcome, child } = await answered(reply);
      assertUnreadable(outcome, what);
      assert.deepEqual(child.kills, ['SIGKILL'], what);
    }
  });

  it("hands the child the deploy's policy as JSON: a cosign key as its PEM, an attestation policy as it is", async () => {
    const key = cosignKey();
    const publicKey = createPublicKey(key.publicKeyPem);
    const attestation = { mode: 'github-attestation', repository: 'o/r', trustedRoots: [] } as unknown as AttestationPolicy;
    const made: FakeChild[] = [];
    await withScriptedSpawn(
      fakeChild(() => ({ ok: true, provenance: PROVENANCE }), made),
      async () => {
        const cosign = createVerifierInProcess({ mode: 'cosign-key', publicKey, fingerprint: 'f'.repeat(64) });
        assert.deepEqual(await cosign?.verify(JOB.request, new AbortController().signal), PROVENANCE);
        await createVerifierInProcess(attestation)?.verify(JOB.request, new AbortController().signal);
      },
    );
    assert.deepEqual(made[0]?.jobs, [
      { policy: { mode: 'cosign-key', publicKeyPem: key.publicKeyPem, fingerprint: 'f'.repeat(64) }, request: JOB.request },
    ]);
    assert.deepEqual(made[1]?.jobs, [{ policy: attestation, request: JOB.request }]);
  });

  it('leaves no listener on the deploy signal once answered', async () => {
    const deploy = new AbortController();
    await withScriptedSpawn(
      fakeChild(() => REFUSAL),
      () => verifyInChild(JOB, deploy.signal).catch(() => undefined),
    );
    assert.equal(getEventListeners(deploy.signal, 'abort').length, 0);
  });
});

describe('a verifier child that does not answer', () => {
  it('that cannot be started: a 500 saying so', async () => {
    const outcome = await withScriptedSpawn(otherCommand('/nonexistent/dreichor-verifier'), () =>
      verifyInChild(JOB, new AbortController().signal).catch((e: unknown) => e),
    );
    assert.ok(outcome instanceof AgentError);
    assert.equal(outcome.status, 500);
    assert.match(
      outcome.reason,
      /^internal error: the image verifier could not be started \(spawn \/nonexistent\/dreichor-verifier ENOENT\); nothing was deployed$/,
    );
  });

  it('that exits or is killed before it answers: a 500 naming how it stopped, never verified', async () => {
    for (const [script, how] of [
      ['process.exit(3)', 'exit code 3'],
      ["process.kill(process.pid, 'SIGTERM')", 'SIGTERM'],
      // An IPC channel with no listener does not keep a process alive: it ends at once, answering nothing.
      ['', 'exit code 0'],
    ] as const) {
      const outcome = await withScriptedSpawn(nodeScript(script), () =>
        verifyInChild(JOB, new AbortController().signal).catch((e: unknown) => e),
      );
      assert.ok(outcome instanceof AgentError, script);
      assert.equal(outcome.status, 500);
      assert.equal(outcome.code, 'image_unverified');
      assert.equal(
        outcome.reason,
        `internal error: the image verifier stopped (${how}) before it answered; nothing was deployed`,
        script,
      );
    }
  });

  it('that answers garbage over the real channel: a 500, and the child is killed', async () => {
    let pid: number | undefined;
    const outcome = await withScriptedSpawn(
      (call) => {
        const child = nodeScript("process.once('message', () => { process.send('verified'); setInterval(() => {}, 1000); })")(
          call,
        );
        pid = child.pid;
        return child;
      },
      () => verifyInChild(JOB, new AbortController().signal).catch((e: unknown) => e),
    );
    assertUnreadable(outcome, 'garbage');
    assert.ok(pid !== undefined);
    await gone(pid);
  });

  it("that hangs: the deploy's abort ends it with the abort's reason, and the process with it", async () => {
    let pid: number | undefined;
    const deploy = new AbortController();
    const reason = new AgentError(504, 'the deploy took too long');
    const outcome = await withScriptedSpawn(
      (call) => {
        const child = nodeScript("process.once('message', () => { process.send = () => {}; setInterval(() => {}, 1000); });")(
          call,
        );
        pid = child.pid;
        child.once('spawn', () => setTimeout(() => deploy.abort(reason), 50));
        return child;
      },
      () => verifyInChild(JOB, deploy.signal).catch((e: unknown) => e),
    );
    assert.equal(outcome, reason);
    assert.ok(pid !== undefined);
    await gone(pid);
  });
});
