#!/usr/bin/env bash
# Run the integration targets against the installed collection (not the source tree), on localhost.
# VENV picks the virtualenv (default .venv). STRATA_LAYOUTS (e.g. "overlay", or "overlay overlay2")
# narrows the on-disk layouts the targets that build homes run on (setup_overlay_home's
# strata_layouts, both by default): it goes into the installed collection's
# tests/integration/integration_config.yml, the vars file ansible-test hands every target.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
venv=${VENV:-$repo/.venv}
root=$(VENV=$venv scripts/install-collection.sh)
cd "$root/ansible_collections/strata/overlay"
if [ -n "${STRATA_LAYOUTS:-}" ]; then
  read -r -a layouts <<< "${STRATA_LAYOUTS//,/ }"
  for layout in "${layouts[@]}"; do
    case "$layout" in
      overlay|overlay2) ;;
      *) echo "STRATA_LAYOUTS: unknown layout $layout (overlay, overlay2)" >&2; exit 2 ;;
    esac
  done
  printf 'strata_layouts: [%s]\n' "$(IFS=,; echo "${layouts[*]}")" > tests/integration/integration_config.yml
fi
PATH="$venv/bin:$PATH" ansible-test integration --allow-destructive --allow-root --python 3.11 --color no "$@"
