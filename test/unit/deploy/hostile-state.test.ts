import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import type { Config } from '../../../src/config/config.js';
import { type DeployContext, Deployer } from '../../../src/deploy/deployer.js';
import { carriesOwnLabels } from '../../../src/deploy/ownership.js';
import { LABEL, OWNER } from '../../../src/deploy/runtime-spec.js';
import { AgentError } from '../../../src/errors.js';
import { DEPLOY_PHASES } from '../../../src/state/journal.js';
import { openAgentState } from '../../../src/state/open-state.js';
import { FakeEngine } from '../../support/fake-engine.js';
import { sampleOf, samplingNote } from '../../support/sampling.js';
import { unitConfig } from '../../support/unit-config.js';

/**
 * The agent's own files as hostile input, in the fast tier (issue 26): a journal or a state naming
 * other containers (the other environment's runtime and staging container, a stopped database, a
 * running bystander), another environment's files, garbage, two agents on one folder, the state
 * removed between operations. Each case opens the state as the agent does at start (open-state.ts),
 * runs start-up recovery and one reconciler pass, then a stop, over a scripted engine. Invariants:
 *
 *   - the agent never touches a container that is not provably its own (no stop, kill, remove,
 *     rename, start or restart-policy change of any foreign container), however it was named;
 *   - it never forgets a tag record silently: it either refuses to start, naming the file, or keeps
 *     every tag record it had;
 *   - when it starts, its stop stops its own runtime.
 *
 * The journal cases are many (ids x phases x operations x owners): the fast tier runs a sample.
 */
const root = mkdtempSync(join(tmpdir(), 'dreichor-hostile-state-'));
after(() => rmSync(root, { recursive: true, force: true }));

const NAME = 'dreichor-runtime-dev';
const PROD = 'dreichor-runtime-prod';
const TAG_DIGEST = `sha256:${'a'.repeat(64)}`;
const OWNER_DEV = { environment: 'dev', containerName: NAME };
const silent = pino({ level: 'silent' });
const MUTATING = /^(stop|kill|remove|rename|start|disableRestart) /;

let n = 0;
function freshConfig(): Config {
  n += 1;
  const config = unitConfig(join(root, `c${n}`));
  mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  return { ...config, stopTimeoutSeconds: 0.1, startCheckSeconds: 0.05 };
}

const prodLabels = (name: string) => ({
  [LABEL.owner]: OWNER,
  [LABEL.environment]: 'prod',
  [LABEL.containerName]: PROD,
  [LABEL.image]: `${name}:v1`,
});

/** The engine of a host both agents run on, and what on it is not the dev agent's. */
function world() {
  const engine = new FakeEngine();
  const own = engine.seed(NAME);
  const foreign = {
    prodRuntime: engine.seed(PROD, true, { labels: prodLabels(PROD) }),
    prodStaging: engine.seed(`${PROD}-staging-0badcafe`, false, { labels: prodLabels(PROD) }),
    // Named as the dev agent names its staging containers, but labelled for prod.
    prodLookalike: engine.seed(`${NAME}-staging-0ddba11`, false, { labels: prodLabels(PROD) }),
    preciousDb: engine.seed('precious-db', false, { labels: {} }),
    bystander: engine.seed('some-service', true, { labels: {} }),
  };
  return { engine, own, foreign };
}

const context = (requestId: string): DeployContext => ({
  requestId,
  clientId: 'client.access',
  endpoint: 'POST /v1/stop',
  callerGone: new AbortController().signal,
  receivedAt: Date.now(),
});

/** A state folder with one tag record and a few audit lines, as a first agent leaves it. */
async function history(config: Config): Promise<void> {
  const state = await openAgentState(config.stateDir, OWNER_DEV, { logger: silent, fixedNameIsOurs: async () => false });
  await state.store.recordTag('v1', TAG_DIGEST);
  await state.audit.cleaned('a line, so that the log holds something');
  await state.close();
}

type Ending = { readonly kind: 'refused'; readonly reason: string } | { readonly kind: 'ran' };

/**
 * Starts the agent on the folder as it is now, runs recovery, a reconciler pass and a stop; checks the
 * invariants. `planted`: what a hostile file may have named.
 */
async function startOver(config: Config, w: ReturnType<typeof world>): Promise<Ending> {
  let state: Awaited<ReturnType<typeof openAgentState>>;
  try {
    state = await openAgentState(config.stateDir, OWNER_DEV, {
      logger: silent,
      fixedNameIsOurs: async (signal) => {
        const c = await w.engine.inspectContainer(NAME, signal);
        return c !== null && carriesOwnLabels(config, c.labels);
      },
    });
  } catch (error) {
    assert.ok(error instanceof AgentError && error.code === 'state_refused', `a refusal, not ${String(error)}`);
    assert.match(error.reason, new RegExp(config.stateDir.replaceAll('/', '\\/')), 'the refusal names the file');
    return { kind: 'refused', reason: error.reason };
  }
  const deployer = new Deployer({
    config,
    engine: w.engine,
    store: state.store,
    audit: state.audit,
    journal: state.journal,
    logger: silent,
    reconcilerTiming: { backoffMs: 20, maxBackoffMs: 200, busyRetryMs: 20 },
  });
  try {
    await deployer.reconcileNow();
    const stop = await deployer.stop(context('r-stop'));
    assert.ok(stop !== null);
    assert.equal(
      w.engine.runtimeContainers(NAME).filter((c) => c.running && c.labels[LABEL.environment] !== 'prod').length,
      0,
      'the stop stopped the own runtime',
    );
    assert.equal(state.store.recordedDigest('v1'), TAG_DIGEST, 'the tag record is kept');
  } finally {
    await deployer.shutdown();
    await state.close();
  }
  return { kind: 'ran' };
}

function assertForeignUntouched(w: ReturnType<typeof world>, what: string): void {
  for (const [role, c] of Object.entries(w.foreign)) {
    const calls = w.engine.calls.filter((call) => MUTATING.test(call) && (call.endsWith(c.id) || call.endsWith(c.name)));
    assert.deepEqual(calls, [], `${what}: the ${role} was touched`);
  }
}

/** Every hostile journal: each id a journal can name, each phase, each operation, each owner. */
type IdKind =
  | 'prodRuntime'
  | 'prodStaging'
  | 'prodLookalike'
  | 'preciousDb'
  | 'bystander'
  | 'own'
  | 'none'
  | 'garbage'
  | 'a name';
const ID_KINDS: readonly IdKind[] = [
  'prodRuntime',
  'prodStaging',
  'prodLookalike',
  'preciousDb',
  'bystander',
  'own',
  'none',
  'garbage',
  'a name',
];
const OWNERS = ['none', 'dev', 'prod'] as const;
interface JournalCase {
  readonly old: IdKind;
  readonly fresh: IdKind;
  readonly phase: (typeof DEPLOY_PHASES)[number];
  readonly operation: 'deploy' | 'stop';
  readonly owner: (typeof OWNERS)[number];
}
const JOURNAL_CASES: JournalCase[] = [];
for (const old of ID_KINDS)
  for (const fresh of ID_KINDS)
    for (const phase of DEPLOY_PHASES)
      for (const operation of ['deploy', 'stop'] as const)
        for (const owner of OWNERS) JOURNAL_CASES.push({ old, fresh, phase, operation, owner });

function idOf(kind: IdKind, w: ReturnType<typeof world>): string | null {
  if (kind === 'none') return null;
  if (kind === 'garbage') return '../../etc/passwd';
  if (kind === 'a name') return PROD;
  if (kind === 'own') return w.own.id;
  return w.foreign[kind].id;
}

describe('hostile state (fast tier)', () => {
  const sample = sampleOf(
    JOURNAL_CASES,
    'hostile-journal',
    (c) => `${c.owner}/${c.old === 'own' || c.fresh === 'own' ? 'own' : 'foreign'}`,
    (stratum) => (stratum.startsWith('prod') ? 2 : 4),
  );
  it(`a journal naming any container: never a foreign one touched, no tag record forgotten (${sample.length} of ${JOURNAL_CASES.length} cases; ${samplingNote()})`, async () => {
    for (const c of sample) {
      const what = JSON.stringify(c);
      const config = freshConfig();
      await history(config);
      const w = world();
      const owner =
        c.owner === 'none'
          ? {}
          : c.owner === 'dev'
            ? { version: 2, environment: 'dev', container_name: NAME }
            : { version: 2, environment: 'prod', container_name: PROD };
      const journal = {
        ...owner,
        operation: c.operation,
        request_id: 'r-hostile',
        image: `${config.imageRepository}:v2`,
        phase: c.phase,
        since: new Date().toISOString(),
        old_container_id: idOf(c.old, w),
        new_container_id: idOf(c.fresh, w),
      };
      writeFileSync(join(config.stateDir, 'deploy-journal.json'), JSON.stringify(journal));
      const ending = await startOver(config, w);
      if (c.owner === 'prod') assert.equal(ending.kind, 'refused', `${what}: another environment's journal refuses`);
      else assert.equal(ending.kind, 'ran', `${what}: ${ending.kind === 'refused' ? ending.reason : ''}`);
      assertForeignUntouched(w, what);
    }
  });

  const STATES: readonly {
    readonly name: string;
    readonly text: (w: ReturnType<typeof world>) => string;
    readonly refused: boolean;
  }[] = [
    {
      name: 'leftovers naming foreign containers',
      text: (w) =>
        JSON.stringify({
          version: 2,
          environment: 'dev',
          container_name: NAME,
          tags: { v1: { digest: TAG_DIGEST, first_deployed_at: '2026-01-01T00:00:00Z' } },
          last_deploy: null,
          leftovers: Object.values(w.foreign).map((c) => c.id),
        }),
      refused: false,
    },
    {
      name: "the other environment's state",
      text: () => JSON.stringify({ version: 2, environment: 'prod', container_name: PROD, tags: {}, last_deploy: null }),
      refused: true,
    },
    { name: 'garbage', text: () => '\u0000\u0001{"tags":', refused: true },
    {
      name: 'a tag record that is not a digest',
      text: () => JSON.stringify({ version: 1, tags: { v1: { digest: 'x', first_deployed_at: 'y' } }, last_deploy: null }),
      refused: true,
    },
    { name: 'a newer schema', text: () => JSON.stringify({ version: 99, tags: {}, last_deploy: null }), refused: true },
    { name: 'removed between operations', text: () => '', refused: true },
  ];
  for (const s of STATES) {
    it(`state.json: ${s.name}: ${s.refused ? 'refused, naming the file' : 'no foreign container touched'}`, async () => {
      const config = freshConfig();
      await history(config);
      const w = world();
      const file = join(config.stateDir, 'state.json');
      const text = s.text(w);
      if (text === '') rmSync(file);
      else writeFileSync(file, text);
      const ending = await startOver(config, w);
      assert.equal(ending.kind, s.refused ? 'refused' : 'ran', ending.kind === 'refused' ? ending.reason : '');
      assertForeignUntouched(w, s.name);
    });
  }

  it('state.json and the audit log removed, the runtime still labelled as ours: refused, nothing touched', async () => {
    const config = freshConfig();
    await history(config);
    const w = world();
    rmSync(join(config.stateDir, 'state.json'));
    rmSync(join(config.stateDir, 'audit.jsonl'));
    const ending = await startOver(config, w);
    assert.equal(ending.kind, 'refused');
    assert.match(ending.kind === 'refused' ? ending.reason : '', /carries this agent's labels/);
    assert.deepEqual(
      w.engine.calls.filter((call) => MUTATING.test(call)),
      [],
    );
  });

  it('two agents on one STATE_DIR: the second refuses before it reads anything', async () => {
    const config = freshConfig();
    await history(config);
    const first = await openAgentState(config.stateDir, OWNER_DEV, { logger: silent, fixedNameIsOurs: async () => false });
    try {
      const w = world();
      const ending = await startOver(config, w);
      assert.equal(ending.kind, 'refused');
      assert.match(ending.kind === 'refused' ? ending.reason : '', /is in use by another agent process/);
      assert.deepEqual(w.engine.calls, [], 'the engine was not asked anything');
    } finally {
      await first.close();
    }
  });
});
