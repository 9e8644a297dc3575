# Sourced by scripts/engine-28.sh and scripts/verifiers.sh: downloads Debian packages with a private
# apt configuration (its own sources list, lists and archive folders; the machine's /etc/apt is never
# read for sources nor written) and unpacks them with `dpkg -x`, installing nothing.
#
#   debian_unpack <cache folder> <suites, space separated> <package/suite>...
#
# The .deb files land in <cache>/debs, their contents in <cache>/root.
debian_unpack() {
  local cache=$1 suites=$2
  shift 2
  mkdir -p "$cache/apt/etc/sources.list.d" "$cache/apt/etc/preferences.d" "$cache/apt/etc/apt.conf.d" \
    "$cache/apt/state/lists/partial" "$cache/apt/cache/archives/partial" "$cache/debs" "$cache/root"
  touch "$cache/apt/state/status"
  local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  [ -e "$keyring" ] || keyring=/usr/share/keyrings/debian-archive-keyring.pgp
  [ -e "$keyring" ] || { echo "no Debian archive keyring in /usr/share/keyrings (package debian-archive-keyring)" >&2; return 1; }
  local suite
  for suite in $suites; do
    echo "deb [signed-by=$keyring] http://deb.debian.org/debian $suite main"
  done >"$cache/apt/etc/sources.list"
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
  APT_CONFIG="$cache/apt/apt.conf" apt-get -qq update >&2
  (cd "$cache/debs" && APT_CONFIG="$cache/apt/apt.conf" apt-get -qq download "$@" >&2)
  local deb
  for deb in "$cache"/debs/*.deb; do dpkg -x "$deb" "$cache/root"; done
}
