import { VERIFY_CHILD_ARGUMENT } from './supply-chain/verify-process.js';

/**
 * The bundle's entry (scripts/build.mjs). Normally the agent (agent.ts); started by the agent with
 * VERIFY_CHILD_ARGUMENT, one supply-chain check in a process of its own (supply-chain/verify-child.ts,
 * see verify-process.ts), from this same file, so the install stays one file. Both are imported
 * lazily: the bundle evaluates only the side it runs, so a check does not start Express or dockerode.
 */
void (process.argv[2] === VERIFY_CHILD_ARGUMENT ? import('./supply-chain/verify-child.js') : import('./agent.js'));
