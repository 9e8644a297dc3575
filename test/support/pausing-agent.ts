/**
 * Fault injection: the real agent, from its environment, that freezes in its Nth deploy right after
 * journaling PAUSE_AT, and says so by writing PAUSE_SIGNAL_FILE. The test then kills it with SIGKILL,
 * exactly between two steps of the deploy. Run with: node --import tsx test/support/pausing-agent.ts
 */
import { writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig } from '../../src/config/config.js';
import { startAgent } from '../../src/http/app.js';
import type { DeployPhase } from '../../src/state/journal.js';

const pauseAt = process.env['PAUSE_AT'] as DeployPhase;
const inDeploy = Number(process.env['PAUSE_IN_DEPLOY'] ?? '1');
const signalFile = process.env['PAUSE_SIGNAL_FILE'] ?? '';
let deploys = 0;

await startAgent(loadConfig(process.env), {
  onPhase: async (phase) => {
    if (phase === 'pulling') deploys += 1;
    if (phase !== pauseAt || deploys !== inDeploy) return;
    writeFileSync(signalFile, phase);
    await sleep(600_000);
  },
});
