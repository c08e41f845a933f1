#!/usr/bin/env bash
# ansible-test sanity on a copy of the checkout placed under ansible_collections/lastgood/rollback
# (ansible-test needs that path).  Extra arguments go to ansible-test, e.g. --test validate-modules.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d /tmp/lastgood-sanity.XXXXXX)
trap 'rm -rf "$work"' EXIT
dest=$work/ansible_collections/lastgood/rollback
mkdir -p "$dest"
# Tracked files plus untracked ones git does not ignore: exactly what a commit would hold.
(cd "$root" && git ls-files -z --cached --others --exclude-standard) |
  rsync -a --from0 --files-from=- "$root"/ "$dest"/
cd "$dest"
git init -q && git add -A
"$root/.venv/bin/ansible-test" sanity --venv --python 3.11 --color no "$@"
