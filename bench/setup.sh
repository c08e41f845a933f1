#!/usr/bin/env bash
# Install the peers the benchmark compares against (rsync, restic, coreutils' sha256sum) and GNU time
# from the distribution's packages when they are missing.  Idempotent; needs root for apt.
set -euo pipefail
missing=()
for tool in rsync restic sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
# `time` is also a shell keyword: look for GNU time's binary (peak memory per run).
[ -x /usr/bin/time ] || missing+=(time)
if [ ${#missing[@]} -eq 0 ]; then
  echo "bench/setup.sh: rsync, restic, sha256sum and GNU time are installed"
  exit 0
fi
packages=()
for tool in "${missing[@]}"; do
  case $tool in
    sha256sum) packages+=(coreutils) ;;
    time) packages+=(time) ;;
    *) packages+=("$tool") ;;
  esac
done
if [ "$(id -u)" -ne 0 ]; then
  echo "bench/setup.sh: missing ${missing[*]}; run as root (or: apt-get install ${packages[*]})" >&2
  exit 1
fi
echo "bench/setup.sh: installing ${packages[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}"
