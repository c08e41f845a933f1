#!/usr/bin/env bash
# Set up everything the demo and the test suite need, idempotently:
#   - system packages (openssh-server, rsync, git, ...) when missing (root, apt)
#   - a virtualenv in .venv with the pinned development requirements
#   - a virtualenv in .venv-importer with galaxy-importer (requirements-importer.txt)
#   - .collections/ansible_collections/lastgood/rollback -> this checkout, so that
#     Ansible (ansible.cfg) and pytest see the collection without an install step
#   - the pip bootstrap stand-in ansible-test needs on a machine without its download host
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

python=${PYTHON:-python3.11}
command -v "$python" >/dev/null 2>&1 || python=python3

need_apt=()
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v ssh >/dev/null 2>&1 || need_apt+=(openssh-client)
command -v ssh-keygen >/dev/null 2>&1 || need_apt+=(openssh-client)
command -v rsync >/dev/null 2>&1 || need_apt+=(rsync)
command -v git >/dev/null 2>&1 || need_apt+=(git)
command -v unshare >/dev/null 2>&1 || need_apt+=(util-linux)
command -v setpriv >/dev/null 2>&1 || need_apt+=(util-linux)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
command -v sha256sum >/dev/null 2>&1 || need_apt+=(coreutils)
# the oracle and adversary suites (tests/reliability) set and read ACLs, xattrs and file capabilities
command -v setfacl >/dev/null 2>&1 || need_apt+=(acl)
command -v getfacl >/dev/null 2>&1 || need_apt+=(acl)
command -v setfattr >/dev/null 2>&1 || need_apt+=(attr)
command -v getfattr >/dev/null 2>&1 || need_apt+=(attr)
command -v setcap >/dev/null 2>&1 || [ -x /usr/sbin/setcap ] || [ -x /sbin/setcap ] || need_apt+=(libcap2-bin)
command -v getcap >/dev/null 2>&1 || [ -x /usr/sbin/getcap ] || [ -x /sbin/getcap ] || need_apt+=(libcap2-bin)
# ansible-rulebook (the Event-Driven Ansible tests, extensions/eda) runs its rules engine on Java 17
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
# without it ansible-test skips its shellcheck sanity test with only a warning
command -v shellcheck >/dev/null 2>&1 || need_apt+=(shellcheck)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing system packages: ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "setup: missing system packages (${need_apt[*]}); install them as root" >&2
  fi
fi

stamp=.venv/.requirements.sha256
want=$(sha256sum requirements-dev.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: creating .venv with pinned requirements"
  "$python" -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
  echo "$want" > "$stamp"
fi

# galaxy-importer (Galaxy's import checks) needs attrs<24: its own virtualenv, .venv-importer.
stamp=.venv-importer/.requirements.sha256
want=$(sha256sum requirements-importer.txt | cut -d' ' -f1)
if [ ! -x .venv-importer/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: creating .venv-importer with pinned requirements"
  "$python" -m venv .venv-importer
  .venv-importer/bin/pip install -q --disable-pip-version-check -r requirements-importer.txt
  echo "$want" > "$stamp"
fi

mkdir -p .collections/ansible_collections/lastgood
ln -sfn ../../.. .collections/ansible_collections/lastgood/rollback

# ansible-test bootstraps pip in its sanity venvs from a script it downloads; that host is
# out of reach here, so provide a stand-in for every pip version this ansible-test may ask for.
.venv/bin/python scripts/get_pip_standin.py --install
echo "setup: done (activate with: source .venv/bin/activate)"
