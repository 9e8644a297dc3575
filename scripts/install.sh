#!/usr/bin/env bash
# Installs, or updates, the deploy agent of one environment on this host, as root, from a checkout
# with the bundle built (npm ci && npm run build):
#
#   scripts/install.sh dev|prod
#
# Idempotent: run it again to install a new agent.js or unit. It never overwrites an existing
# environment file, runtime file or state. It creates the service user, the folders, the environment
# file from the example (mode 0600), installs the bundle and the unit, enables the unit, and starts
# (or restarts) it once no FAKE value is left in the environment file. It ends by printing what is
# left to fill in.
set -euo pipefail

usage() {
  echo "usage: $0 dev|prod" >&2
  exit 2
}
fail() {
  echo "install: $*" >&2
  exit 1
}

env=${1:-}
[[ $env == dev || $env == prod ]] || usage
[[ $(id -u) -eq 0 ]] || fail "run as root"
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[[ -f $src/dist/agent.js ]] || fail "no $src/dist/agent.js: run 'npm ci && npm run build' in the checkout first"

# What the agent needs from the host: Node.js 24 at /usr/bin/node (the unit runs it), and the docker
# group of the engine's socket (created by the Docker engine's package).
node_major=$(/usr/bin/node -p 'process.versions.node.split(".")[0]' 2>/dev/null) || fail "no /usr/bin/node: install Node.js 24 LTS first"
((node_major >= 24)) || fail "/usr/bin/node is Node.js $node_major; the agent runs on Node.js 24 LTS"
getent group docker >/dev/null || fail "no docker group: install the Docker engine first"

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
install -m 0644 "$src/dist/agent.js" "$opt/agent.js"
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
