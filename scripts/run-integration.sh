#!/usr/bin/env bash
# Run the integration targets against the installed collection (not the source tree), on localhost.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
root=$(scripts/install-collection.sh)
cd "$root/ansible_collections/strata/overlay"
PATH="$repo/.venv/bin:$PATH" ansible-test integration --allow-destructive --allow-root --python 3.11 --color no "$@"
