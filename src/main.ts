import { isMainThread } from 'node:worker_threads';

/**
 * The bundle's entry (scripts/build.mjs). In the main thread, the agent (agent.ts); in a worker
 * thread, one supply-chain check (supply-chain/verify-thread.ts, started by verify-worker.ts from this
 * same file, so the install stays one file). Both are imported lazily: the bundle evaluates only the
 * side it runs, so a check's worker does not start Express, dockerode or pino.
 */
void (isMainThread ? import('./agent.js') : import('./supply-chain/verify-thread.js'));
