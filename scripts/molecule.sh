#!/usr/bin/env bash
# Run the molecule scenarios (molecule/<scenario>/) on the SSH test fleet, one after another.
#   bash scripts/molecule.sh                  every scenario
#   bash scripts/molecule.sh backup_restore   just the named ones
# Needs root (the fleet uses mount namespaces); scripts/setup.sh installs the rest.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export PATH="$root/.venv/bin:$PATH"
export MOLECULE_PROJECT_DIRECTORY="$root"
# Scenarios live in molecule/ (not extensions/molecule/); say so instead of letting molecule guess.
export MOLECULE_GLOB='molecule/*/molecule.yml'
unset ANSIBLE_CONFIG

if [ "$#" -eq 0 ]; then
  exec molecule test --all
fi
status=0
for scenario in "$@"; do
  molecule test --scenario-name "$scenario" || status=1
done
exit "$status"
