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
source "$(dirname "${BASH_SOURCE[0]}")/lib/debian-unpack.sh"
debian_unpack "$cache" "sid bookworm" docker.io/sid docker-cli/sid containerd/sid runc/sid tini/sid libc6/sid libseccomp2/sid patchelf/bookworm

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
