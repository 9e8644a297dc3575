#!/usr/bin/env bash
# The one test command (npm test). On a fresh Debian machine it installs what is missing, then type
# checks, builds, runs the fast tier (unit tests) once, and the integration tier on two Docker
# engines, each private to the run (its own socket, folders and image registries, removed afterwards):
#   1. Debian's docker.io 20.10, the classic image store (the machine's own dockerd binary);
#   2. Docker 28.5.2 with the containerd image store, fetched from Debian sid by
#      scripts/engine-28.sh into a cache folder outside the checkout. When it cannot be fetched, the
#      run says so plainly and why, and goes on without it.
# The systemd test (the shipped units in a booted Debian, which installs its own docker.io), the demo,
# the bench and the fast tier's samples in full do not test an engine's behaviour: they run once, on
# the first engine.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

echo "== format and lint (Biome; npm run format applies it)"
npx biome ci --error-on-warnings .
echo "== type check"
npx tsc --noEmit -p .
echo "== build"
node scripts/build.mjs

# The independent verifiers the oracle tests compare the agent with (cosign and sigstore-go from
# Debian sid, scripts/verifiers.sh); the tests that need them skip, printing why, when they cannot be fetched.
verifiers_log=$(mktemp)
if verifiers_bin=$(bash scripts/verifiers.sh 2>"$verifiers_log" | tail -1) && [ -x "$verifiers_bin/cosign" ]; then
  export DREICHOR_VERIFIERS_BIN="$verifiers_bin"
  echo "== oracles (Debian sid): $(paste -sd, "$verifiers_bin/versions"), in $verifiers_bin"
else
  echo "!! the oracle tests will be SKIPPED: scripts/verifiers.sh could not fetch cosign and sigstore-go from Debian sid: $(tail -2 "$verifiers_log" | tr '\n' ' ')"
fi
rm -f "$verifiers_log"

started=$SECONDS
results=()
failed=0
tier() { # name, timeout in seconds, command...
  local name=$1 limit=$2 began=$SECONDS
  shift 2
  if timeout --kill-after=30 "$limit" "$@"; then
    results+=("passed   $name ($((SECONDS - began)) s)")
  else
    results+=("FAILED   $name ($((SECONDS - began)) s)")
    failed=1
  fi
}
node_test=(node --import tsx --test --test-concurrency=1 --test-timeout=300000 --test-reporter=spec)

echo "== fast tier: unit tests"
# The fault matrix and the property tests sampled, as npm run test:unit runs them (its seed and time
# printed; anything left in its temporary folder fails it); test/integration/full-sets.test.ts runs
# them in full.
tier "unit tests" 300 bash scripts/test-unit.sh --test-reporter=spec

# One file at a time: the integration tests share the sandbox engine.
echo "== integration tier on Debian's docker.io ($(dockerd --version)), classic image store"
tier "integration, docker.io 20.10 (classic image store)" 1500 \
  npx tsx test/support/with-sandbox.ts -- "${node_test[@]}" test/integration/*.test.ts

echo "== integration tier on Docker 28 with the containerd image store"
once_only=(systemd demo bench full-sets)
files=()
for f in test/integration/*.test.ts; do
  base=$(basename "$f" .test.ts)
  [[ " ${once_only[*]} " == *" $base "* ]] || files+=("$f")
done
engine28_log=$(mktemp)
if engine28_bin=$(bash scripts/engine-28.sh 2>"$engine28_log" | tail -1) && [ -x "$engine28_bin/dockerd" ]; then
  echo "== $("$engine28_bin/dockerd" --version), its own containerd ($("$engine28_bin/containerd" --version | cut -d' ' -f3)); once only, not here: ${once_only[*]}"
  tier "integration, Docker 28 (containerd image store)" 1200 \
    env PATH="$engine28_bin:$PATH" DREICHOR_ENGINE=containerd-store \
    npx tsx test/support/with-sandbox.ts -- "${node_test[@]}" "${files[@]}"
else
  why=$(tail -2 "$engine28_log" | tr '\n' ' ')
  echo "!! SKIPPED the integration tier on Docker 28: scripts/engine-28.sh could not fetch it from Debian sid: ${why:-no reason given}"
  results+=("SKIPPED  integration, Docker 28 (containerd image store): could not be fetched: ${why:-no reason given}")
fi
rm -f "$engine28_log"

echo "== summary ($((SECONDS - started)) s of tests)"
printf '   %s\n' "${results[@]}"
exit "$failed"
