#!/usr/bin/env bash
# The one test command (npm test). On a fresh Debian machine it installs what is missing, then type
# checks, builds, and runs the unit and integration tests against a private Docker engine and image
# registries that it starts on this machine and removes afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

echo "== format and lint (Biome; npm run format applies it)"
npx biome ci --error-on-warnings .
echo "== type check"
npx tsc --noEmit -p .
echo "== build"
node scripts/build.mjs

echo "== tests (unit, then integration against the sandbox engine)"
# One file at a time: the integration tests share the sandbox engine. The whole run is bounded.
exec timeout --kill-after=30 1800 npx tsx test/support/with-sandbox.ts -- \
  node --import tsx --test --test-concurrency=1 --test-timeout=300000 --test-reporter=spec \
  test/unit/*.test.ts test/integration/*.test.ts
