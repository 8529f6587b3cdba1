#!/usr/bin/env bash
# Install what `make test` and `make demo` need on a Debian host: the Debian
# packages the tests use (only those missing) and a virtualenv with the
# pinned Python requirements. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(containers-storage btrfs-progs xfsprogs e2fsprogs zstd kmod tar util-linux python3-venv time
          mmdebstrap qemu-system-x86 qemu-utils openssh-client rsync
          docker.io docker-registry skopeo umoci apache2-utils openssl psmisc)
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

PYTHON=${PYTHON:-python3}
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "creating .venv with requirements.txt"
  rm -rf .venv
  "$PYTHON" -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
  echo "$want" > "$stamp"
fi
