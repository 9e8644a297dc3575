#!/usr/bin/env bash
# npm run bench [-- --quick] [-- --out FILE]: installs what is missing, builds, runs scripts/bench.ts.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
npx tsc --noEmit -p .
node scripts/build.mjs
exec timeout --kill-after=30 1200 npx tsx scripts/bench.ts "$@"
