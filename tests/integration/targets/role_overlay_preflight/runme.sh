#!/usr/bin/env bash
# overlay_preflight on real filesystems: tmpfs and ext4 pass; btrfs and ext4 without
# d_type are refused with one clear message each, in check mode too.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
scratch=$(mktemp -d /tmp/strata-preflight-XXXXXX)
cleanup() {
  for m in "$scratch"/*/; do umount "$m" 2>/dev/null || true; done
  rm -rf "$scratch"
}
trap cleanup EXIT

mkfs_mount() {  # name fstype mkfs-args...
  local name=$1 fstype=$2; shift 2
  truncate -s 300M "$scratch/$name.img"
  "mkfs.$fstype" -q "$@" "$scratch/$name.img" >/dev/null
  mkdir "$scratch/$name"
  mount -o loop "$scratch/$name.img" "$scratch/$name"
}
mkdir "$scratch/tmpfs" && mount -t tmpfs -o size=64m tmpfs "$scratch/tmpfs"
mkfs_mount ext4 ext4
mkfs_mount btrfs btrfs
mkfs_mount nodtype ext4 -O ^filetype,^metadata_csum

cat > "$scratch/inventory.yml" <<INV
all:
  vars:
    ansible_connection: local
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
    overlay_preflight_persist: false
  hosts:
    on_tmpfs: {overlay_home: $scratch/tmpfs/home}
    on_ext4: {overlay_home: $scratch/ext4/home}
    on_btrfs: {overlay_home: $scratch/btrfs/home}
    no_dtype: {overlay_home: $scratch/nodtype/home}
INV

run() {
  ANSIBLE_STDOUT_CALLBACK=default ANSIBLE_NOCOLOR=1 ansible-playbook -i "$scratch/inventory.yml" "$here/check.yml" "$@"
}

for mode in "--check" ""; do
  set +e
  run $mode > "$scratch/out.log" 2>&1
  rc=$?
  set -e
  cat "$scratch/out.log"
  [ "$rc" -eq 2 ] || { echo "expected the refused hosts to fail the play (rc 2), got $rc"; exit 1; }
  grep -Eq "on_tmpfs +: ok=[0-9]+ +changed=0 .*failed=0" "$scratch/out.log"
  grep -Eq "on_ext4 +: ok=[0-9]+ +changed=0 .*failed=0" "$scratch/out.log"
  grep -Eq "on_btrfs +: .*failed=1" "$scratch/out.log"
  grep -Eq "no_dtype +: .*failed=1" "$scratch/out.log"
  grep -q "'overlay' is not supported over btrfs ($scratch/btrfs/home is on btrfs)" "$scratch/out.log"
  grep -q "does not support d_type, which overlay needs (enable it with tune2fs -O filetype, or reformat)" "$scratch/out.log"
  grep -q "on_tmpfs.*backing=tmpfs supported=True" "$scratch/out.log"
  grep -q "on_ext4.*backing=ext4 supported=True" "$scratch/out.log"
  grep -q "zstd layers: the zstd program at /usr/bin/zstd" "$scratch/out.log"
done
# nothing was created by the refusals
[ ! -e "$scratch/btrfs/home" ] && [ ! -e "$scratch/nodtype/home" ]
echo "role_overlay_preflight: all checks passed"
