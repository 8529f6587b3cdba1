#!/usr/bin/env bash
# Build the collection tarball and install it where ansible (and ansible-test) find it.
# The install lives outside the git checkout: ansible-test lists a collection's files
# through git when it sits inside a repository, and the install is not tracked.
set -euo pipefail
cd "$(dirname "$0")/.."
root=${STRATA_COLLECTIONS:-/tmp/strata-overlay-collections}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
.venv/bin/ansible-galaxy collection build --force --output-path "$out" . >/dev/null
rm -rf "$root/ansible_collections/strata/overlay"
.venv/bin/ansible-galaxy collection install --force -p "$root" "$out"/strata-overlay-*.tar.gz >/dev/null 2>&1
echo "$root"
