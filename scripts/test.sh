#!/usr/bin/env bash
# The one test command (npm test). On a fresh Debian machine it installs what is missing, then type
# checks, builds, and runs the unit and integration tests against a private Docker engine and image
# registries that it starts on this machine and removes afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '== %s\n' "$*"; }

# --- system packages: the engine, a registry, a static busybox for the test images, htpasswd
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' || missing+=(busybox-static)
command -v htpasswd >/dev/null 2>&1 || missing+=(apache2-utils)
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then echo "need root to install: ${missing[*]}" >&2; exit 1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The engine's client: the package's, unless the machine already has one.
command -v docker >/dev/null 2>&1 || { echo "no docker client after installing docker.io" >&2; exit 1; }

# --- node packages, exactly as locked
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

say "type check"
npx tsc --noEmit -p .

say "build"
node scripts/build.mjs

say "tests (unit, then integration against the sandbox engine)"
# One file at a time: the integration tests share the sandbox engine. The whole run is bounded.
exec timeout --kill-after=30 1800 npx tsx test/support/sandbox.ts run -- \
  node --import tsx --test --test-concurrency=1 --test-timeout=300000 --test-reporter=spec \
  test/unit/*.test.ts test/integration/*.test.ts
