#!/usr/bin/env bash
# The automatic rollback demo (docs/automatic.md), on this machine only:
#   0. install the demo application below $LASTGOOD_DEMO_ROOT (default /tmp/lastgood-demo), unless
#      scripts/demo.sh left one running there
#   1. ansible-rulebook starts watching it (lastgood.rollback.auto_rollback: /metrics every 2 s)
#   2. Party Mode goes out and the error rate rises to 25 %
#   3. the rulebook notices, the decision matrix says Level 1, Level 1 runs by itself
#   4. the error rate is back to normal; the report and the notification name the rule
# Needs Java 17 for ansible-rulebook (scripts/setup.sh installs it).  Runs scripts/setup.sh first.
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
auto=$demo/automatic

play() {
  ansible-playbook -i demo/inventory.yml -e @demo/vars.yml "$@"
}
act() {
  printf '\n\033[1m=== %s\033[0m\n' "$*"
}
wait_for() {  # wait_for SECONDS WHAT COMMAND...
  local seconds=$1 what=$2
  shift 2
  for _ in $(seq $((seconds * 2))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$rulebook_pid" 2>/dev/null; then
      echo "ansible-rulebook ended while waiting for $what; its output: $auto/rulebook.log" >&2
      exit 1
    fi
    sleep 0.5
  done
  echo "timed out after ${seconds}s waiting for $what; the rulebook's output: $auto/rulebook.log" >&2
  exit 1
}

if ! "$demo/app/bin/appctl" health >/dev/null 2>&1; then
  port=$(python - <<'PY'
import socket
with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    print(s.getsockname()[1])
PY
)
  act "0. Install the demo application in $demo/app (port $port)"
  play demo/playbooks/install.yml -e demo_port="$port"
fi
url=$(python -c 'import json, sys; s = json.load(open(sys.argv[1])); print("http://%s:%d" % (s["bind"], s["port"]))' \
  "$demo/app/settings.json")

act "1. ansible-rulebook watches $url/metrics (lastgood.rollback.auto_rollback, every 2 s)"
rm -rf "$auto"   # a fresh guard: a rerun of the demo is a new incident, not one inside the cooldown
mkdir -p "$auto"
cat > "$auto/watch.yml" <<VARS
lastgood_targets:
  - host: localhost
    metrics_url: $url/metrics
    health_url: $url/health
poll_interval: 2
error_rate_above: 10
cooldown_minutes: 30
lastgood_auto_dir: $auto
site_vars_file: $root/demo/vars.yml
VARS
cat "$auto/watch.yml"
ANSIBLE_NOCOLOR=1 ansible-rulebook -r lastgood.rollback.auto_rollback -i demo/inventory.yml --vars "$auto/watch.yml" \
  >"$auto/rulebook.log" 2>&1 &
rulebook_pid=$!
trap 'kill "$rulebook_pid" 2>/dev/null || true' EXIT
wait_for 120 "the rulebook to watch" grep -q 'lastgood: localhost: health' "$auto/rulebook.log"
grep -h 'lastgood: ' "$auto/rulebook.log"

act "2. Party Mode goes out; a quarter of the requests fail"
play demo/playbooks/party_mode_errors.yml
curl -s "$url/metrics" | grep '^app_error_rate_percent' || true

act "3. The rulebook notices and Level 1 runs by itself (output: $auto/rulebook.log)"
wait_for 60 "the automatic action" test -s "$auto/audit.jsonl"
run_id=$(python -c 'import json, sys; print(json.loads(open(sys.argv[1]).readline())["run_id"])' "$auto/audit.jsonl")
echo "claimed: run $run_id"
wait_for 300 "the Level 1 report" test -s "$demo/controller/$run_id/report.md"
wait_for 60 "the incident to resolve" grep -q 'resolved' "$auto/rulebook.log"

act "4. Back to normal"
curl -s "$url/metrics" | grep '^app_error_rate_percent' || true
"$demo/app/bin/appctl" flags | grep -A1 '"flags"' || true
echo
echo "--- what ansible-rulebook saw and did"
grep -h -A1 "lastgood: \|msg: '" "$auto/rulebook.log" | grep -v '^--$\|^\*\*\*' | sed 's/^ *//'
echo
echo "--- $auto/audit.jsonl (every automatic action, with its event and rule)"
cat "$auto/audit.jsonl"
echo
echo "--- $demo/controller/$run_id/notify-*-internal.txt"
cat "$demo/controller/$run_id"/notify-*-internal.txt
echo
echo "--- $demo/controller/$run_id/report.md"
cat "$demo/controller/$run_id/report.md"
