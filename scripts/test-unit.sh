#!/usr/bin/env bash
# The fast tier (npm run test:unit): builds, then runs test/unit/** with the fault matrix and the
# property tests sampled (test/support/sampling.ts), and prints how long it took and how to repeat
# its sample. Its goal is under 20 s on a 2-core machine.
#   DREICHOR_SEED=<n> npm run test:unit       the same sample again
#   DREICHOR_MATRIX=full npm run test:unit    every case (what test/integration/full-sets.test.ts runs)
# Extra arguments go to node's test runner (e.g. --test-reporter=spec to see each file's duration).
#
# The tests run with a temporary folder of their own; whatever a test leaves in it fails the tier
# (every test cleans up after itself, also when run directly with node --test).
set -uo pipefail
cd "$(dirname "$0")/.."

export DREICHOR_SEED=${DREICHOR_SEED:-$(((RANDOM << 15) | RANDOM))}
sample="seed $DREICHOR_SEED"
[ "${DREICHOR_MATRIX:-}" = full ] && sample="every case (DREICHOR_MATRIX=full)"
began=$(date +%s%N)

node scripts/build.mjs || exit 1
own_tmp=$(mktemp -d)
reporter=(--test-reporter=dot)
for arg in "$@"; do [[ $arg == --test-reporter* ]] && reporter=(); done
TMPDIR="$own_tmp" node --import tsx --test --test-force-exit --test-concurrency=2 "${reporter[@]}" "$@" \
  test/unit/*.test.ts test/unit/*/*.test.ts
status=$?
left=$(find "$own_tmp" -mindepth 1 -maxdepth 1 -name 'dreichor-*' -printf '%f ' 2>/dev/null)
rm -rf "$own_tmp"
if [ -n "$left" ]; then
  echo "!! the unit tests left this behind in their temporary folder: $left"
  [ "$status" -eq 0 ] && status=1
fi

ms=$((($(date +%s%N) - began) / 1000000))
verdict=passed
[ "$status" -eq 0 ] || verdict=FAILED
printf '== fast tier %s in %d.%01d s (build included; %s; load average %s)\n' \
  "$verdict" $((ms / 1000)) $((ms % 1000 / 100)) "$sample" "$(cut -d' ' -f1-3 /proc/loadavg)"
[ "$status" -eq 0 ] || echo "   repeat this sample: DREICHOR_SEED=$DREICHOR_SEED npm run test:unit"
exit "$status"
