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
mkdir -p "$cache/apt/etc/sources.list.d" "$cache/apt/etc/preferences.d" "$cache/apt/etc/apt.conf.d" \
  "$cache/apt/state/lists/partial" "$cache/apt/cache/archives/partial" "$cache/debs" "$cache/root"
touch "$cache/apt/state/status"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -e "$keyring" ] || keyring=/usr/share/keyrings/debian-archive-keyring.pgp
[ -e "$keyring" ] || { echo "no Debian archive keyring in /usr/share/keyrings (package debian-archive-keyring)" >&2; exit 1; }
cat >"$cache/apt/etc/sources.list" <<SOURCES
deb [signed-by=$keyring] http://deb.debian.org/debian sid main
SOURCES
# APT_CONFIG is read before anything else, and names every folder apt would otherwise take from
# /etc/apt or /var: the machine's own sources, lists, archives and settings are never used or touched.
cat >"$cache/apt/apt.conf" <<CONF
Dir::Etc "$cache/apt/etc";
Dir::Etc::SourceList "$cache/apt/etc/sources.list";
Dir::Etc::SourceParts "$cache/apt/etc/sources.list.d";
Dir::Etc::Parts "$cache/apt/etc/apt.conf.d";
Dir::Etc::PreferencesParts "$cache/apt/etc/preferences.d";
Dir::State "$cache/apt/state";
Dir::State::Lists "$cache/apt/state/lists";
Dir::State::status "$cache/apt/state/status";
Dir::Cache "$cache/apt/cache";
Dir::Cache::Archives "$cache/apt/cache/archives";
Debug::NoLocking "true";
APT::Sandbox::User "root";
Acquire::Languages "none";
// Signatures are checked as always; the Release file's date is not, so that a mirror serving a
// snapshot of the archive (as this machine's does) still works.
Acquire::Check-Valid-Until "false";
CONF
export APT_CONFIG="$cache/apt/apt.conf"
apt-get -qq update >&2
(
  cd "$cache/debs"
  apt-get -qq download cosign/sid sigstore-go/sid >&2
)
for deb in "$cache"/debs/*.deb; do dpkg -x "$deb" "$cache/root"; done
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
