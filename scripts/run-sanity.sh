#!/usr/bin/env bash
# ansible-test sanity on the installed collection. ansible-test bootstraps pip in its
# per-test virtualenvs with a script it downloads from a host outside the package
# index; scripts/ansible-test-get-pip.py stands in for it (see its docstring).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
cache="$HOME/.ansible/test/cache"
mkdir -p "$cache"
for version in 24_2 25_0 25_1 25_2 25_3; do
  [ -f "$cache/get_pip_$version.py" ] || cp scripts/ansible-test-get-pip.py "$cache/get_pip_$version.py"
done
root=$(scripts/install-collection.sh)
cd "$root/ansible_collections/strata/overlay"
PATH="$repo/.venv/bin:$PATH" ansible-test sanity --requirements --python 3.11 --color no "$@"
