import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { Deployer } from '../../../src/deploy/deployer.js';
import { LABEL } from '../../../src/deploy/runtime-spec.js';
import { AgentError } from '../../../src/errors.js';
import { parseImageReference } from '../../../src/policy/image.js';
import { verifyAuditFile } from '../../../src/state/audit.js';
import { openAgentState } from '../../../src/state/open-state.js';
import { STATE_SCHEMA } from '../../../src/state/schema.js';
import { FakeEngine } from '../../support/fake-engine.js';
import { UNIT_REPOSITORY, unitConfig } from '../../support/unit-config.js';

/**
 * An upgrade from the previous release (issue 23 part 3): test/fixtures/state-93a5f22/ holds the files
 * that release's agent wrote on the real engine (see test/fixtures/make-state-93a5f22.ts): deploys of
 * v1 and v2, then one of `crash` that failed, so its state.json has no history and its last deploy
 * failed. After the upgrade, the tag records, the audit chain and the rollback history carry over; a
 * state of a newer schema than this agent knows refuses to start.
 */
const FIXTURE = join(import.meta.dirname, '..', '..', 'fixtures', 'state-93a5f22');
const root = mkdtempSync(join(tmpdir(), 'dreichor-upgrade-'));
after(() => rmSync(root, { recursive: true, force: true }));
const silent = pino({ level: 'silent' });
const OWNER = { environment: 'dev', containerName: 'dreichor-runtime-dev' };

interface OldState {
  readonly version: number;
  readonly tags: Record<string, { readonly digest: string }>;
  readonly last_deploy: { readonly outcome: string; readonly image: string };
}
const old = JSON.parse(readFileSync(join(FIXTURE, 'state.json'), 'utf8')) as OldState;
const oldLines = readFileSync(join(FIXTURE, 'audit.jsonl'), 'utf8')
  .trim()
  .split('\n')
  .map((l) => JSON.parse(l) as { outcome: string; image: string | null; endpoint: string });
const lastGood = oldLines.filter((l) => l.outcome === 'deployed').at(-1)?.image;

let n = 0;
function upgradedFolder() {
  n += 1;
  const config = unitConfig(join(root, `u${n}`));
  mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  for (const file of ['state.json', 'audit.jsonl']) copyFileSync(join(FIXTURE, file), join(config.stateDir, file));
  return config;
}

describe("an upgrade from 93a5f22's state", () => {
  it('the fixture is what it says: schema 1, no history, the last deploy failed, v2 the last good one', () => {
    assert.equal(old.version, 1);
    assert.equal('deployments' in old, false);
    assert.equal(old.last_deploy.outcome, 'failed');
    assert.match(lastGood ?? '', /:v2$/);
    assert.deepEqual(Object.keys(old.tags).sort(), ['crash', 'v1', 'v2']);
  });

  it('keeps the tag records and the audit chain, and the first deploy after it names the last good image as the way back', async () => {
    const config = upgradedFolder();
    const state = await openAgentState(config.stateDir, OWNER, { logger: silent, fixedNameIsOurs: async () => false });
    const engine = new FakeEngine();
    engine.seed(config.containerName);
    const deployer = new Deployer({
      config: { ...config, stopTimeoutSeconds: 0.1, startCheckSeconds: 0.05 },
      engine,
      store: state.store,
      audit: state.audit,
      journal: state.journal,
      logger: silent,
    });
    try {
      await state.verified;
      assert.equal(state.audit.intact, true, state.audit.problem ?? '');
      for (const [tag, record] of Object.entries(old.tags)) assert.equal(state.store.recordedDigest(tag), record.digest, tag);
      assert.equal(state.store.previousDeployment('anything new')?.image, lastGood, 'the rollback history from the audit log');
      const image = parseImageReference(`${UNIT_REPOSITORY}:v3`, { repository: UNIT_REPOSITORY, environment: 'dev' });
      const result = await deployer.deploy(image, {
        requestId: 'r-upgrade',
        clientId: 'client.access',
        endpoint: 'POST /v1/deploy',
        callerGone: new AbortController().signal,
        receivedAt: Date.now(),
      });
      assert.equal(result.previous_image, lastGood);
      const running = engine.runtimeContainers(config.containerName).find((c) => c.running);
      assert.equal(running?.labels[LABEL.previousImage], lastGood);
    } finally {
      await deployer.shutdown();
      await state.close();
    }
    const written = JSON.parse(readFileSync(join(config.stateDir, 'state.json'), 'utf8')) as { version: number };
    assert.equal(written.version, STATE_SCHEMA, 'written in the current schema');
    const verdict = await verifyAuditFile(join(config.stateDir, 'audit.jsonl'));
    assert.ok(verdict.ok, JSON.stringify(verdict));
    assert.ok(verdict.lines > oldLines.length, 'the chain goes on from the old lines');
  });

  it('a state of a newer schema refuses to start, naming the file and both versions', async () => {
    const config = upgradedFolder();
    const file = join(config.stateDir, 'state.json');
    writeFileSync(file, JSON.stringify({ ...old, version: STATE_SCHEMA + 1 }));
    await assert.rejects(
      openAgentState(config.stateDir, OWNER, { logger: silent, fixedNameIsOurs: async () => false }),
      (error: unknown) =>
        error instanceof AgentError &&
        error.code === 'state_refused' &&
        error.reason.includes(file) &&
        error.reason.includes(`state schema ${STATE_SCHEMA + 1}`) &&
        error.reason.includes(`schema ${STATE_SCHEMA} at most`),
    );
  });
});
