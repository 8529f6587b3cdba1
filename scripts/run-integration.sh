#!/usr/bin/env bash
# Run the integration targets against the installed collection (not the source tree), on localhost.
# VENV picks the virtualenv (default .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
venv=${VENV:-$repo/.venv}
root=$(VENV=$venv scripts/install-collection.sh)
cd "$root/ansible_collections/strata/overlay"
PATH="$venv/bin:$PATH" ansible-test integration --allow-destructive --allow-root --python 3.11 --color no "$@"
