#!/usr/bin/env bash
# Installs, or updates, the deploy agent of one environment on this host, as root:
#
#   scripts/install.sh dev|prod --release <file> --bundle <bundle> --trusted-root <trusted_root.jsonl>
#       a release of the agent (dreichor-deploy-agent-<version>.js from the GitHub release), installed
#       only once its attestation has verified, offline, as built by release.yml of this repository
#       from a tag v* (`agent.js verify-release`). Nothing of npm runs on the host.
#   scripts/install.sh dev|prod
#       development: the bundle of this checkout (npm ci && npm run build), as it is.
#   --verify-only: verify the release and stop; --verifier <agent.js>: the agent whose code verifies
#       (default: the agent installed for this environment; on a first install, the release's own).
#
# Idempotent: run it again to install a new agent.js or unit. It never overwrites an existing
# environment file, runtime file or state; it repairs (and says so) an environment file whose mode
# or owner drifted. It creates the service user, the folders, the environment file from the example
# (mode 0600), installs the bundle and the unit, enables the unit, and starts (or restarts) it once
# no FAKE value is left in the environment file. It ends by printing what is left to fill in.
# Every check that can refuse runs before anything is changed: a refusal changes nothing.
set -euo pipefail

usage() {
  echo "usage: $0 dev|prod [--release <file> --bundle <bundle> --trusted-root <file> [--verifier <agent.js>] [--verify-only]]" >&2
  exit 2
}
fail() {
  echo "install: $*" >&2
  exit 1
}

env=${1:-}
[[ $env == dev || $env == prod ]] || usage
shift
release='' bundle='' trusted_root='' verifier='' verify_only=false
while (($# > 0)); do
  case $1 in
    --release | --bundle | --trusted-root | --verifier)
      (($# >= 2)) || usage
      declare "$(tr -- - _ <<<"${1#--}")=$2"
      shift 2
      ;;
    --verify-only) verify_only=true && shift ;;
    *) usage ;;
  esac
done
if [[ -n $release ]]; then
  [[ -n $bundle && -n $trusted_root ]] || fail "--release needs --bundle and --trusted-root"
  for f in "$release" "$bundle" "$trusted_root" ${verifier:+"$verifier"}; do
    [[ -f $f && ! -L $f ]] || fail "$f is not a regular file"
  done
else
  [[ -z $bundle && -z $trusted_root && -z $verifier && $verify_only == false ]] || fail "--bundle, --trusted-root, --verifier and --verify-only go with --release"
fi
[[ $(id -u) -eq 0 ]] || fail "run as root"
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
[[ -n $release || -f $src/dist/agent.js ]] || fail "no $src/dist/agent.js: install a release (--release), or run 'npm ci && npm run build' in the checkout first"

user=dreichor-deploy-$env
etc=/etc/dreichor/$env
opt=/opt/dreichor/$env/deploy-agent
data=/var/lib/dreichor/$env

# Security: what is installed from the source tree runs as root (the unit, this script) or as the
# agent: a tree, or any folder above it, that someone other than root owns or may write could have
# been changed under the operator. Refused, as is a file of it that is a symbolic link.
untrusted() { # path: why it is not trusted, or nothing
  local owner group mode
  read -r owner group mode < <(stat -c '%u %g %a' -- "$1")
  if [[ $owner != 0 ]]; then
    echo "owned by uid $owner, not root"
  elif [[ -d $1 ]] && ((8#$mode & 8#1000)); then
    : # a sticky folder (/tmp): others may not replace what root owns in it
  elif ((8#$mode & 8#002)); then
    echo "writable by others (mode $mode)"
  elif ((group != 0 && 8#$mode & 8#020)); then
    echo "writable by group $group (mode $mode)"
  fi
}
sources=("$src/scripts/install.sh" "$src/systemd/dreichor-deploy-agent@.service" "$src/env/$env.env.example" "$src/README.md")
[[ -n $release ]] || sources+=("$src/dist/agent.js")
# The tree and every folder above it (pwd -P: a path without symbolic links), then what is read.
paths=() d=$src
while [[ $d != / ]]; do
  paths+=("$d")
  d=$(dirname "$d")
done
paths+=(/ "$src"/{scripts,systemd,env} "${sources[@]}")
[[ -n $release ]] || paths+=("$src/dist")
for path in "${paths[@]}"; do
  [[ -e $path ]] || fail "$path is missing"
  [[ ! -L $path ]] || fail "refused: $path is a symbolic link. Nothing was changed."
  why=$(untrusted "$path")
  [[ -z $why ]] || fail "refused: the source tree is not root's alone: $path is $why. Nothing was changed."
done
for f in "$etc/deploy-agent.env" "$etc/runtime.env"; do
  [[ ! -L $f ]] || fail "refused: $f is a symbolic link. Nothing was changed."
done

# What the agent needs from the host: Node.js 24 at /usr/bin/node (the unit runs it), and the docker
# group of the engine's socket (created by the Docker engine's package).
node_major=$(/usr/bin/node -p 'process.versions.node.split(".")[0]' 2>/dev/null) || fail "no /usr/bin/node: install Node.js 24 LTS first"
((node_major >= 24)) || fail "/usr/bin/node is Node.js $node_major; the agent runs on Node.js 24 LTS"
getent group docker >/dev/null || fail "no docker group: install the Docker engine first"

# The release, verified before anything is installed. Security: the files are copied into a folder
# of root's first, so what is verified is what is installed (no swap in between), and the verifier
# runs as nobody, with no privilege: until it has verified, the release is code of unknown origin.
agent_js=$src/dist/agent.js
if [[ -n $release ]]; then
  work=$(mktemp -d)
  trap 'rm -rf -- "$work"' EXIT
  chmod 0755 "$work"
  install -m 0644 "$release" "$work/release.js"
  install -m 0644 "$bundle" "$work/bundle.json"
  install -m 0644 "$trusted_root" "$work/trusted_root.jsonl"
  if [[ -n $verifier ]]; then
    by="$verifier"
  elif [[ -f $opt/agent.js ]]; then
    by="the installed agent ($opt/agent.js)"
    verifier=$opt/agent.js
  else
    # A first install has no agent of its own yet: the release checks itself. That finds a damaged
    # file, and one built by another workflow or repository, but not one made to lie about itself.
    by="the release's own code (first install: check the file once with 'gh attestation verify', see the README)"
    verifier=$work/release.js
  fi
  install -m 0644 "$verifier" "$work/verifier.js"
  command -v setpriv >/dev/null || fail "no setpriv (util-linux): it runs the verifier without privileges"
  if ! verdict=$(cd / && setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs --reset-env \
    /usr/bin/node "$work/verifier.js" verify-release "$work/release.js" "$work/bundle.json" --trusted-root "$work/trusted_root.jsonl" 2>&1); then
    echo "${verdict//$work\/release.js/$release}" >&2
    fail "refused: $release did not verify (verified by $by). Nothing was installed or changed."
  fi
  echo "${verdict//$work\/release.js/$release}"
  echo "verified by $by"
  $verify_only && exit 0
  agent_js=$work/release.js
fi

user=dreichor-deploy-$env
etc=/etc/dreichor/$env
opt=/opt/dreichor/$env/deploy-agent
data=/var/lib/dreichor/$env

# 1. The service user: no home, no shell, a group of its own. The unit adds the docker group.
if ! id -u "$user" >/dev/null 2>&1; then
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$user"
  echo "created user $user"
fi

# 2. The bundle: one self-contained file, replaced on every run.
install -d -m 0755 /opt/dreichor "/opt/dreichor/$env" "$opt"
install -m 0644 "$agent_js" "$opt/agent.js"
install -m 0644 "$src/README.md" "$opt/README.md"

# 3. Configuration, never overwritten: root owns it, the service user's group may read the folder.
install -d -m 0750 -o root -g "$user" "$etc"
if [[ ! -e $etc/deploy-agent.env ]]; then
  install -m 0600 -o root -g root "$src/env/$env.env.example" "$etc/deploy-agent.env"
  echo "created $etc/deploy-agent.env from the example"
fi
if [[ ! -e $etc/runtime.env ]]; then
  install -m 0640 -o root -g "$user" /dev/null "$etc/runtime.env"
  echo "created $etc/runtime.env (empty)"
fi
# Security: an environment file holds the service token and the runtime's secrets (DATABASE_URL).
# One whose mode or owner drifted (a `chmod 644` while editing, a copy by another user) is put back,
# and said so: the operator should ask who could have read it meanwhile.
repair() { # file, mode it may have at most, owners it may have, the owner:group to give it
  local file=$1 most=$2 owners=$3 give=$4 owner group mode
  read -r owner group mode < <(stat -c '%U %G %a' -- "$file")
  if ((8#$mode & ~8#$most)); then
    chmod "$most" "$file"
    echo "repaired $file: mode $mode -> $most (it was readable or writable by more than it should be)"
  fi
  if [[ " $owners " != *" $owner "* ]]; then
    chown "$give" "$file"
    echo "repaired $file: owner $owner:$group -> $give"
  fi
}
repair "$etc/deploy-agent.env" 600 "root $user" root:root
repair "$etc/runtime.env" 640 root "root:$user"
[[ ! -f $etc/cf-access-client-secret ]] || repair "$etc/cf-access-client-secret" 600 root root:root

# 4. The runtime's persistence folders (bind-mounted into the runtime container); the agent's own
# state folder is made by systemd (StateDirectory=, mode 0700, owned by the service user).
install -d -m 0755 /var/lib/dreichor "$data"
for folder in audit-events snapshots; do
  [[ -d $data/$folder ]] || install -d -m 0750 "$data/$folder"
done

# 5. The unit, enabled; started or restarted only when the configuration is filled in. A restart
# lets a deploy in progress finish first (SIGTERM), and never touches the runtime container.
install -m 0644 "$src/systemd/dreichor-deploy-agent@.service" /etc/systemd/system/dreichor-deploy-agent@.service
systemctl daemon-reload
systemctl enable --quiet "dreichor-deploy-agent@$env"

fake=$(grep -E '^[A-Z_]+=(FAKE-|fake-)' "$etc/deploy-agent.env" | cut -d= -f1 | tr '\n' ' ' || true)
if [[ -n $fake ]]; then
  echo
  echo "Left to fill in before the agent can start:"
  echo "  $etc/deploy-agent.env: $fake"
  [[ -s $etc/runtime.env ]] || echo "  $etc/runtime.env: the runtime's own variables (DATABASE_URL, SAFETY_MODE, ...)"
  echo "then: systemctl restart dreichor-deploy-agent@$env && journalctl -u dreichor-deploy-agent@$env -n 20 -o cat"
  exit 0
fi
systemctl restart "dreichor-deploy-agent@$env"
echo "dreichor-deploy-agent@$env (re)started: journalctl -u dreichor-deploy-agent@$env -n 20 -o cat"
[[ -s $etc/runtime.env ]] || echo "note: $etc/runtime.env is empty: the runtime gets no variables of its own"
