#!/usr/bin/env bash
# Fetches Docker Engine 28 (Debian sid's docker.io 28.5.2, containerd 2.1.9, runc 1.3.6, tini,
# docker-cli) into a cache folder outside the checkout, without installing anything: `apt-get
# download` with a private apt configuration (its own sources list, lists and archive folders; the
# machine's /etc/apt is never read for sources nor written), then `dpkg -x`. runc needs glibc 2.38,
# newer than bookworm's: sid's libc6 and libseccomp2 are unpacked beside it and a copy of runc is
# pointed at them with patchelf (bookworm's, downloaded the same way). A loader run with
# --library-path does not do: runc re-executes itself through /proc/self/exe.
#
# Prints the folder holding the binaries (dockerd, containerd, containerd-shim-runc-v2, runc,
# docker-init, docker) on its last line; exits non-zero, saying why, when it cannot.
set -euo pipefail

cache="${XDG_CACHE_HOME:-$HOME/.cache}/dreichor-deploy-agent/engine28"
bin="$cache/bin"
if [ -x "$bin/dockerd" ] && "$bin/runc" --version >/dev/null 2>&1 && "$bin/docker-init" --version >/dev/null 2>&1; then
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
deb [signed-by=$keyring] http://deb.debian.org/debian bookworm main
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
  apt-get -qq download \
    docker.io/sid docker-cli/sid containerd/sid runc/sid tini/sid libc6/sid libseccomp2/sid patchelf/bookworm >&2
)
for deb in "$cache"/debs/*.deb; do dpkg -x "$deb" "$cache/root"; done

root="$cache/root"
mkdir -p "$bin"
for tool in dockerd docker-proxy; do
  for d in usr/sbin usr/bin usr/libexec/docker/cli-plugins; do [ -e "$root/$d/$tool" ] && ln -sf "$root/$d/$tool" "$bin/$tool"; done
done
ln -sf "$root/usr/bin/docker" "$bin/docker"
ln -sf "$root/usr/bin/containerd" "$bin/containerd"
ln -sf "$root/usr/bin/containerd-shim-runc-v2" "$bin/containerd-shim-runc-v2"
# runc, pointed at sid's C library and libseccomp unpacked beside it.
libdir="$root/usr/lib/x86_64-linux-gnu"
[ -e "$root/lib/x86_64-linux-gnu/libc.so.6" ] && libdir="$root/lib/x86_64-linux-gnu"
loader="$root/usr/lib64/ld-linux-x86-64.so.2"
[ -e "$loader" ] || loader="$root/lib64/ld-linux-x86-64.so.2"
runc_src="$root/usr/sbin/runc"
[ -e "$runc_src" ] || runc_src="$root/usr/bin/runc"
cp "$runc_src" "$bin/runc"
patchelf_bin="$root/usr/bin/patchelf"
# docker-init (for `docker run --init`): sid's docker.io links it to tini-static, which sid's tini no
# longer ships; tini needs glibc 2.38 too, so it gets the same treatment.
cp "$root/usr/bin/tini" "$bin/docker-init"
for exe in "$bin/runc" "$bin/docker-init"; do
  "$patchelf_bin" --set-interpreter "$loader" "$exe"
  "$patchelf_bin" --force-rpath --set-rpath "$libdir:$root/usr/lib/x86_64-linux-gnu" "$exe"
done
"$bin/runc" --version >&2
"$bin/docker-init" --version >&2
"$bin/dockerd" --version >&2
echo "$bin"
