// Mutation testing of the security-critical modules (npm run test:mutation; docs/TESTING.md).
// Stryker's command runner has no per-test coverage, so each mutant runs a whole command: it runs only
// the unit files that test the modules being mutated. `npm run test:mutation -- --mutate src/auth.ts`
// measures one module (or a folder's glob); without --mutate, every module in MUTATED.

/** Each module group, and the unit files that are meant to catch a slip in it. */
const GROUPS = [
  { mutate: ['src/auth.ts'], tests: ['test/unit/auth.test.ts', 'test/unit/http/*.test.ts'] },
  { mutate: ['src/http/**/*.ts'], tests: ['test/unit/http/*.test.ts', 'test/unit/auth.test.ts'] },
  // openapi.test.ts: the answer schemas and their descriptions are the published contract (docs/openapi.json).
  { mutate: ['src/routes/**/*.ts'], tests: ['test/unit/http/*.test.ts', 'test/unit/openapi.test.ts'] },
  { mutate: ['src/policy/**/*.ts'], tests: ['test/unit/policy/*.test.ts'] },
  {
    mutate: ['src/supply-chain/**/*.ts'],
    tests: ['test/unit/supply-chain/*.test.ts', 'test/unit/config/verification.test.ts'],
  },
  { mutate: ['src/state/audit*.ts'], tests: ['test/unit/state/audit*.test.ts'] },
  {
    mutate: ['src/deploy/{image-fetch,start-check,stop-sequence,lock,retention}.ts'],
    tests: ['test/unit/deploy/*.test.ts'],
  },
];
const MUTATED = GROUPS.flatMap((g) => g.mutate);

/** The --mutate patterns given on the command line (Stryker's own flag), if any. */
function requested(argv) {
  const at = argv.findIndex((a) => a === '--mutate' || a === '-m');
  if (at >= 0 && argv[at + 1] !== undefined) return argv[at + 1].split(',');
  const inline = argv.find((a) => a.startsWith('--mutate='));
  return inline === undefined ? MUTATED : inline.slice('--mutate='.length).split(',');
}

/** A requested pattern belongs to a group when it names the same folder or file. */
const stem = (pattern) => pattern.replace(/\*.*$/, '').replace(/\{.*$/, '');
function testsFor(patterns) {
  const files = new Set();
  for (const pattern of patterns) {
    for (const group of GROUPS) {
      if (group.mutate.some((m) => stem(m).startsWith(stem(pattern)) || stem(pattern).startsWith(stem(m)))) {
        for (const t of group.tests) files.add(t);
      }
    }
  }
  return [...files];
}

const patterns = requested(process.argv);
// DREICHOR_MUTATION_TESTS (comma-separated files or globs) narrows the unit files run per mutant, for one
// module whose own tests are known: a group's whole set costs several seconds per mutant on two cores.
const override = process.env.DREICHOR_MUTATION_TESTS?.split(',').filter((t) => t !== '');
const tests = override !== undefined && override.length > 0 ? override : testsFor(patterns);
if (tests.length === 0) throw new Error(`no unit files are mapped to ${patterns.join(', ')}`);
// One incremental file per selection, so that measuring one module keeps the results of the others.
const slug = patterns === MUTATED ? 'all' : patterns.join('+').replace(/[^A-Za-z0-9.+-]+/g, '_');

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'command',
  commandRunner: {
    // The fault matrix and property tests run sampled (test/support/sampling.ts), as in the fast tier.
    command: `node --import tsx --test --test-force-exit --test-isolation=none --test-reporter=dot ${tests.join(' ')}`,
  },
  mutate: MUTATED,
  coverageAnalysis: 'off',
  // Two cores shared with everything else on the machine; a test run is itself parallel.
  concurrency: 1,
  timeoutMS: 20_000,
  timeoutFactor: 2,
  incremental: true,
  incrementalFile: `reports/mutation/${slug}.incremental.json`,
  ignorePatterns: ['.sandbox', 'reports', 'BENCHMARKS.md'],
  reporters: ['clear-text', 'progress-append-only', 'html', 'json'],
  htmlReporter: { fileName: `reports/mutation/${slug}.html` },
  jsonReporter: { fileName: `reports/mutation/${slug}.json` },
  tempDirName: '.stryker-tmp',
  cleanTempDir: true,
};
