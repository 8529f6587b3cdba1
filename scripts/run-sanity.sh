#!/usr/bin/env bash
# ansible-test sanity. By default on the installed collection (what users get); with
# --source on every file tracked in the checkout (bench/, molecule/, scripts/ too), as
# a contributor runs it: the tracked files are copied into a scratch
# ansible_collections/strata/overlay of their own, since ansible-test needs that path.
# ansible-test bootstraps pip in its per-test virtualenvs with a script it downloads
# from a host outside the package index; scripts/ansible-test-get-pip.py stands in for
# it (see its docstring). VENV picks the virtualenv (default .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
venv=${VENV:-$repo/.venv}
cache="$HOME/.ansible/test/cache"
mkdir -p "$cache"
for version in 23_1_2 24_2 25_0 25_1 25_2 25_3; do  # 2.17 wants 23.1.2, 2.18 24.2, 2.19 25.x
  [ -f "$cache/get_pip_$version.py" ] || cp scripts/ansible-test-get-pip.py "$cache/get_pip_$version.py"
done
if [ "${1:-}" = --source ]; then
  shift
  scratch=$(mktemp -d "${TMPDIR:-/var/tmp}/strata-sanity-XXXXXX")
  trap 'rm -rf "$scratch"' EXIT
  dest="$scratch/ansible_collections/strata/overlay"
  mkdir -p "$dest"
  git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$dest" 2>/dev/null || true
  git -C "$dest" init -q
  cd "$dest"
else
  root=$(VENV=$venv scripts/install-collection.sh)
  cd "$root/ansible_collections/strata/overlay"
fi
PATH="$venv/bin:$PATH" ansible-test sanity --requirements --python 3.11 --color no "$@"
