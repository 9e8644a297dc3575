// Writes docs/openapi.json from the agent's own schemas (src/routes/openapi.ts). Run after changing a
// route's request or answer: `node --import tsx scripts/openapi.ts`. test/unit/openapi.test.ts fails
// while the committed file differs from what this writes.
import { writeFileSync } from 'node:fs';
import { openApiText } from '../src/routes/openapi.js';

writeFileSync('docs/openapi.json', openApiText());
process.stdout.write('docs/openapi.json written\n');
