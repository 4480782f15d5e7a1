#!/usr/bin/env bash
# Makes (or brings up to date) the virtualenv of the API contract suite, with the
# exact versions of tests/contract/requirements.txt, and prints its python.
# Used by tests/run.sh and by CI's install step (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=target/contract-venv
requirements=tests/contract/requirements.txt
python=${PYTHON:-python3.11}
stamp="$venv/.requirements"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$requirements" "$stamp"; then
  rm -rf "$venv"
  "$python" -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2
  cp "$requirements" "$stamp"
fi
echo "$venv/bin/python"
