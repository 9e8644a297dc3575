#!/usr/bin/env bash
# Fetches the independent Sigstore verifiers the oracle tests compare the agent with: Debian sid's
# cosign (3.1.x) and sigstore-go (its sigstore-go-verification command), into a cache folder outside
# the checkout, without installing anything: `apt-get download` with a private apt configuration (its
# own sources list, lists and archive folders; the machine's /etc/apt is never read for sources nor
# written), then `dpkg -x`, as scripts/engine-28.sh does for Docker 28. Both are static Go programs.
#
# Prints the folder holding the binaries (cosign, sigstore-go-verification; and a file `versions`
# naming the packages' versions) on its last line; exits
# non-zero, saying why, when it cannot.
set -euo pipefail

cache="${XDG_CACHE_HOME:-$HOME/.cache}/dreichor-deploy-agent/verifiers"
bin="$cache/bin"
if [ -x "$bin/cosign" ] && [ -x "$bin/sigstore-go-verification" ] && [ -s "$bin/versions" ] && "$bin/cosign" version >/dev/null 2>&1; then
  echo "$bin"
  exit 0
fi

rm -rf "$cache"
source "$(dirname "${BASH_SOURCE[0]}")/lib/debian-unpack.sh"
debian_unpack "$cache" "sid" cosign/sid sigstore-go/sid
mkdir -p "$bin"
# Their versions, for the test run to print (cosign's own `version` says "devel" in Debian's build).
for deb in "$cache"/debs/*.deb; do dpkg-deb --showformat='${Package} ${Version}\n' -W "$deb"; done >"$bin/versions"
for tool in cosign sigstore-go-verification; do
  found=$(find "$cache/root" -type f -name "$tool" -perm -u+x | head -1)
  [ -n "$found" ] || { echo "the unpacked packages hold no $tool" >&2; exit 1; }
  ln -sf "$found" "$bin/$tool"
done
"$bin/cosign" version >&2
echo "$bin"
