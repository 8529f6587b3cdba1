#!/usr/bin/env bash
# The tests under another supported ansible-core: units (without the peer tests), sanity and the integration
# targets, in a venv of its own (.venv-<version>, Python 3.11) with the collection
# installed in .collections-<version>, so that versions run side by side.
#   scripts/run-compat.sh 2.17 [unit|sanity|integration ...]   (default: all three)
set -euo pipefail
cd "$(dirname "$0")/.."
version=$1
shift
# 2.17's empty-init sanity test wants module_utils packages' __init__.py empty; 2.18
# and later allow the docstring the driver packages carry. An ignore file would do the
# same, but ansible-lint's production profile refuses empty-init ignores.
sanity_args=()
case "$version" in
  2.17) core=ansible-core==2.17.14; sanity_args=(--skip-test empty-init) ;;
  2.18) core=ansible-core==2.18.19 ;;
  *) echo "unsupported ansible-core version $version (2.17 or 2.18; 2.19 is .venv)" >&2; exit 2 ;;
esac
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(unit sanity integration)

venv=$PWD/.venv-$version
want=$(printf '%s\n' "$core" | cat - requirements-compat.txt | sha256sum | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
  echo "creating $venv with $core"
  rm -rf "$venv"
  "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "$core" -r requirements-compat.txt
  echo "$want" > "$venv/.requirements.sha256"
fi
"$venv/bin/python" -c "from ansible.release import __version__; print(\"ansible-core\", __version__)"

export STRATA_COLLECTIONS=$PWD/.collections-$version
export ANSIBLE_COLLECTIONS_PATH=$STRATA_COLLECTIONS
for step in "${steps[@]}"; do
  echo "== ansible-core $version: $step"
  case "$step" in
    # The peer tests (containers-storage, Docker 20.10, a registry) compare the driver,
    # which is stdlib only, with other stores: nothing in them depends on ansible-core,
    # and the main venv runs them in make unit.
    unit) "$venv/bin/pytest" -q -p no:cacheprovider -m "not peer" tests/unit ;;
    sanity) VENV=$venv scripts/run-sanity.sh "${sanity_args[@]}" ;;
    # The layouts' code is the driver's, which does not depend on ansible-core either, and make
    # integration runs every target on both: here the targets that build homes run on one
    # (STRATA_COMPAT_LAYOUTS, the default layout unless set; the playbooks target keeps its
    # host of each layout).
    integration) STRATA_LAYOUTS=${STRATA_COMPAT_LAYOUTS:-overlay} VENV=$venv scripts/run-integration.sh ;;
    *) echo "unknown step $step" >&2; exit 2 ;;
  esac
done
