#!/usr/bin/env bash
# npm run demo: the whole thing on this machine, with nothing to prepare. Installs what is missing,
# builds the agent, then runs scripts/demo.ts (private engine, local registry, the dev agent from
# env/dev.env.example, a deploy through the CI script, status, stop, clean-up).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
echo "== building dist/agent.js"
npx tsc --noEmit -p .
node scripts/build.mjs
exec timeout --kill-after=30 600 npx tsx scripts/demo.ts
