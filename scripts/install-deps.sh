#!/usr/bin/env bash
# Install what `make demo` needs: a virtualenv (.venv) with ansible-core from
# requirements.txt, nothing else. With --test, also what `make test` needs: the
# Debian packages the tests use (only those missing; as root) and the pinned test
# tooling from requirements-test.txt. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

test_deps=false
[ "${1:-}" = --test ] && test_deps=true

if $test_deps; then
  packages=(containers-storage btrfs-progs xfsprogs e2fsprogs zstd isal kmod tar util-linux python3-venv time
            mmdebstrap qemu-system-x86 qemu-utils openssh-client rsync
            docker.io docker-registry skopeo umoci apache2-utils openssl psmisc acl)
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "missing Debian packages: ${missing[*]} (run as root to install them)" >&2
      exit 1
    fi
    echo "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

# One venv; a stamp per requirements file says which sets it holds. A change to
# requirements.txt rebuilds it; the test set is added on top when first needed.
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
  echo "creating $VENV with requirements.txt"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r requirements.txt
  echo "$want" > "$VENV/.requirements.sha256"
fi
if $test_deps; then
  want_test=$(cat requirements.txt requirements-test.txt | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$VENV/.requirements-test.sha256" 2>/dev/null)" != "$want_test" ]; then
    echo "adding requirements-test.txt to $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r requirements-test.txt
    echo "$want_test" > "$VENV/.requirements-test.sha256"
  fi
fi
