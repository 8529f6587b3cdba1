#!/usr/bin/env bash
# Build (once) the Debian 12 test VM image from Debian's packages, cached outside the
# repo and keyed by a hash of this recipe. Prints the cache directory, which holds
# root.img (ext4), vmlinuz, initrd.img and the SSH key pair.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache_root=${STRATA_VM_CACHE:-/var/tmp/strata-vm}
key=$(sha256sum "$here/build-image.sh" | cut -c1-12)
out="$cache_root/$key"
if [ -f "$out/root.img" ]; then echo "$out"; exit 0; fi
mkdir -p "$cache_root"
work=$(mktemp -d "$cache_root/build-XXXXXX")
trap 'rm -rf "$work"' EXIT
ssh-keygen -q -t ed25519 -N "" -C strata-overlay-vm -f "$work/id_ed25519"
packages=linux-image-amd64,openssh-server,python3,xfsprogs,btrfs-progs,kmod,ifupdown,isc-dhcp-client,systemd-sysv,udev,iproute2,e2fsprogs
mmdebstrap --variant=minbase --quiet --include="$packages" \
  --customize-hook='echo strata-vm > "$1/etc/hostname"' \
  --customize-hook='printf "auto lo\niface lo inet loopback\nauto eth0\niface eth0 inet dhcp\n" > "$1/etc/network/interfaces"' \
  --customize-hook='printf "/dev/vda / ext4 rw,relatime 0 1\n" > "$1/etc/fstab"' \
  --customize-hook='mkdir -p "$1/root/.ssh" && chmod 700 "$1/root/.ssh"' \
  --customize-hook="cp $work/id_ed25519.pub \"\$1/root/.ssh/authorized_keys\"" \
  --customize-hook='chroot "$1" ssh-keygen -A' \
  --customize-hook='printf "PermitRootLogin prohibit-password\nUseDNS no\n" > "$1/etc/ssh/sshd_config.d/strata.conf"' \
  --customize-hook='chroot "$1" passwd -d root' \
  --customize-hook='rm -f "$1/etc/modules-load.d/"*overlay* || true' \
  bookworm "$work/rootfs"
cp "$work"/rootfs/boot/vmlinuz-* "$work/vmlinuz"
cp "$work"/rootfs/boot/initrd.img-* "$work/initrd.img"
mkfs.ext4 -q -F -d "$work/rootfs" "$work/root.img" 3G
mkdir -p "$out"
mv "$work/root.img" "$work/vmlinuz" "$work/initrd.img" "$work/id_ed25519" "$work/id_ed25519.pub" "$out/"
echo "$out"
