#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite:
#   pytest (unit, integration through ansible-playbook, the SSH fleet) - ansible-test sanity -
#   ansible-lint (production profile) - antsibull-changelog lint - molecule scenarios.
# Every step runs even when an earlier one failed; the exit status is non-zero if any failed.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1
bash scripts/setup.sh || exit 1
export PATH="$root/.venv/bin:$PATH"
export ANSIBLE_CONFIG="$root/ansible.cfg"

passed=0
failed=0
failures=()
step() {
  local name=$1
  shift
  echo
  echo "=== $name: $*"
  local start=$SECONDS
  if "$@"; then
    passed=$((passed + 1))
    echo "=== $name: ok ($((SECONDS - start)) s)"
  else
    failed=$((failed + 1))
    failures+=("$name")
    echo "=== $name: FAILED ($((SECONDS - start)) s)"
  fi
}

# PYTEST_ARGS: extra pytest arguments, split on whitespace (e.g. PYTEST_ARGS="-x tests/unit")
read -r -a pytest_args <<< "${PYTEST_ARGS:-}"
step pytest pytest -p no:cacheprovider "${pytest_args[@]}"
step sanity bash scripts/sanity.sh
step ansible-lint ansible-lint --profile production
step changelog antsibull-changelog lint
demo() {
  # the README's first command, as a user runs it; then stop the demo application it leaves running
  local demo_root=/tmp/lastgood-demo-ci
  LASTGOOD_DEMO_ROOT=$demo_root bash scripts/demo.sh >"$root/tests/output/demo.log" 2>&1
  local rc=$?
  "$demo_root/app/bin/appctl" stop >/dev/null 2>&1 || true
  tail -n 25 "$root/tests/output/demo.log"
  return $rc
}
mkdir -p tests/output
step demo demo
if [ -x scripts/molecule.sh ] || [ -f scripts/molecule.sh ]; then
  step molecule bash scripts/molecule.sh
fi

echo
[ ${#failures[@]} -eq 0 ] || echo "failed steps: ${failures[*]}"
echo "steps: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
