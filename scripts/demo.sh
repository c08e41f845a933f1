#!/usr/bin/env bash
# The lastgood.rollback demo, on this machine only (no SSH, nothing in /srv or /var):
#   0. install the demo application below $LASTGOOD_DEMO_ROOT (default /tmp/lastgood-demo)
#   1. checkpoint the known good state (configuration in the backup store, running release marked)
#   2. a bad configuration goes out - health fails
#   3. level 2 rolls the configuration back - health passes
#   4. a bad release goes out - health fails
#   5. level 3 rolls the code back - health passes
#   6. verification of the whole host, and the reports
# Runs scripts/setup.sh first (idempotent).  Rerunning starts over from a fresh install.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/setup.sh >/dev/null
export PATH="$root/.venv/bin:$PATH"
export ANSIBLE_CONFIG="$root/ansible.cfg"
export ANSIBLE_DISPLAY_SKIPPED_HOSTS=false
export ANSIBLE_NOCOLOR=${ANSIBLE_NOCOLOR:-}
export LASTGOOD_DEMO_ROOT=${LASTGOOD_DEMO_ROOT:-/tmp/lastgood-demo}
demo=$LASTGOOD_DEMO_ROOT
port=$(python - <<'PY'
import socket
with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    print(s.getsockname()[1])
PY
)
stamp=$(date -u +%Y%m%dT%H%M%SZ)
level2_run=demo-level2-$stamp
level3_run=demo-level3-$stamp

play() {
  ansible-playbook -i demo/inventory.yml -e @demo/vars.yml -e lastgood_metrics_url="http://127.0.0.1:$port/metrics" "$@"
}
act() {
  printf '\n\033[1m=== %s\033[0m\n' "$*"
}

act "0. Install the demo application in $demo/app (port $port)"
play demo/playbooks/install.yml -e demo_port="$port"

act "1. Checkpoint the known good state: configuration into the store (marked last known good), running release marked known-good"
play lastgood.rollback.checkpoint -e lastgood_checkpoint_id=known-good -e lastgood_mark_lastgood=true \
  -e lastgood_run_id="demo-checkpoint-$stamp"
play demo/playbooks/mark_release.yml

act "2. A bad configuration goes out"
play demo/playbooks/bad_config.yml

act "3. Level 2: roll the configuration back to the last known good"
play lastgood.rollback.rollback_level2 -e lastgood_run_id="$level2_run"

act "4. A bad release goes out"
play demo/playbooks/bad_release.yml

act "5. Level 3: roll the code back to the last release marked known-good"
play lastgood.rollback.rollback_level3 -e lastgood_run_id="$level3_run"

act "6. Verify the host: configuration, checksums against the known good backup, health, tests"
play lastgood.rollback.verify

act "7. Automatic rollback: ansible-rulebook watches /metrics, the error rate rises, Level 1 runs by itself"
bash scripts/demo_automatic.sh

act "The reports"
for run in "$level2_run" "$level3_run"; do
  echo
  echo "--- $demo/controller/$run/report.md"
  cat "$demo/controller/$run/report.md"
done
echo
echo "Post-mortem skeletons (timeline from the audit log): $demo/controller/*/postmortem.md"
echo "Each host's own report:                            $demo/reports/<run id>/report.md"
echo "Audit log (hash-chained):                           $demo/log/audit.jsonl"
echo "The application is still running: $demo/app/bin/appctl health | stop"
