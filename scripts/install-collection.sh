#!/usr/bin/env bash
# Build the collection tarball and install it where ansible (and ansible-test) find it:
# $STRATA_COLLECTIONS, by default .collections in this checkout (git-ignored).
# ansible-test lists a collection's files through git when it sits inside a git
# repository; the checkout ignores the install, so the install gets a repository of
# its own (nothing committed: ansible-test lists untracked files too).
set -euo pipefail
cd "$(dirname "$0")/.."
root=${STRATA_COLLECTIONS:-$PWD/.collections}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
venv=${VENV:-$PWD/.venv}
"$venv/bin/ansible-galaxy" collection build --force --output-path "$out" . >/dev/null
rm -rf "$root/ansible_collections/strata/overlay"
"$venv/bin/ansible-galaxy" collection install --force -p "$root" "$out"/strata-overlay-*.tar.gz >/dev/null 2>&1
git -C "$root/ansible_collections/strata/overlay" init -q
echo "$root"
