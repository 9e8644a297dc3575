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
# Most of a test file's cost was its own process (Node.js, tsx and the agent's modules, loaded again for
# each of 50 files: two thirds of the tier's CPU), and most of a test's time is waiting (timers, the
# scripted engine's holds). So the files run in $shards processes side by side, each one loading the
# code once and running its share of the files one after the other (--test-isolation=none).
shards=${DREICHOR_UNIT_SHARDS:-4}
outputs=() pids=()
for i in $(seq 1 "$shards"); do
  outputs+=("$own_tmp/shard-$i.out")
  TMPDIR="$own_tmp" node --import tsx --test --test-force-exit --test-isolation=none --test-shard="$i/$shards" \
    "${reporter[@]}" "$@" test/unit/*.test.ts test/unit/*/*.test.ts >"$own_tmp/shard-$i.out" 2>&1 &
  pids+=($!)
done
status=0
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || status=1
  echo "-- shard $((i + 1)) of $shards"
  cat "${outputs[$i]}"
  rm -f "${outputs[$i]}"
done
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
