#!/bin/sh
# The release's smoke test: fails for a release that is marked bad.
here=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -s "$here/VERSION" ]; then
  echo "smoke: VERSION missing in $here" >&2
  exit 1
fi
if [ -e "$here/BAD_RELEASE" ]; then
  echo "smoke: release $(cat "$here/VERSION") is marked bad: $(cat "$here/BAD_RELEASE")" >&2
  exit 1
fi
echo "smoke: release $(cat "$here/VERSION") ok"
