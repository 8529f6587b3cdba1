# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Can this host, and this directory, carry overlay layers?

The seed's Init: modprobe overlay, look for it in /proc/filesystems, read the
backing filesystem's statfs magic and refuse btrfs, aufs and zfs. Overlay
also needs d_type from the backing filesystem (xfs ftype=0, ext4 without
filetype lack it), and cannot use an overlay as upper layer.
"""

import os

from . import mounts, syscalls
from .errors import IncompatibleFS, NotSupported
from .layout import make_temp_dir

FS_NAMES = {
    0x61756673: "aufs",
    0x9123683E: "btrfs",
    0x28CD3D45: "cramfs",
    0x64626720: "debugfs",
    0xF15F: "ecryptfs",
    0xE0F5E1E2: "erofs",
    0x0000EF53: "extfs",
    0xF2F52010: "f2fs",
    0x65735546: "fuse",
    0x01021994: "tmpfs",
    0x9660: "isofs",
    0x3153464A: "jfs",
    0x137F: "minix",
    0x4D44: "msdos",
    0x6969: "nfs",
    0x794C7630: "overlayfs",
    0x9FA0: "proc",
    0x858458F6: "ramfs",
    0x52654973: "reiserfs",
    0xFF534D42: "cifs",
    0x73717368: "squashfs",
    0x62656572: "sysfs",
    0x58465342: "xfs",
    0x2FC12FC1: "zfs",
}

# The seed refuses these three; overlay and ecryptfs cannot hold an upper
# dir either, so refusing them here turns a later EINVAL into a clear message.
INCOMPATIBLE = {
    0x9123683E: "btrfs",
    0x61756673: "aufs",
    0x2FC12FC1: "zfs",
    0x794C7630: "overlayfs",
    0xF15F: "ecryptfs",
}


EXT_MAGIC = 0x0000EF53


def mount_fstype(path):
    """The fstype mountinfo gives for the mount holding path (the longest mount point above it), or None."""
    path = os.path.realpath(path)
    best = None
    try:
        entries = mounts.read_mountinfo()
    except (OSError, ValueError, IndexError):
        return None
    for entry in entries:
        point = entry.mount_point
        if path == point or path.startswith(point.rstrip("/") + "/"):
            if best is None or len(point) >= len(best.mount_point):
                best = entry  # later lines stack on earlier ones
    return best.fstype if best else None


def backing_fs(path):
    """Name of the filesystem holding path, or "<unknown>" with its magic in hex.

    ext2, ext3 and ext4 share one statfs magic; the mount's fstype tells them apart.
    """
    magic = syscalls.fs_magic(path)
    if magic == EXT_MAGIC:
        fstype = mount_fstype(path)
        return (fstype if fstype in ("ext2", "ext3", "ext4") else "extfs"), magic
    return FS_NAMES.get(magic, "<unknown 0x%x>" % magic), magic


def load_overlay_module():
    """modprobe overlay, as the seed does; its failure is not an error by itself."""
    # imported here: only a host without overlay loaded ever needs a subprocess
    import shutil  # pylint: disable=import-outside-toplevel
    import subprocess  # pylint: disable=import-outside-toplevel

    modprobe = shutil.which("modprobe") or next(
        (p for p in ("/usr/sbin/modprobe", "/sbin/modprobe") if os.path.exists(p)), None)
    if modprobe is None:
        return False
    try:
        return subprocess.call([modprobe, "overlay"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0
    except OSError:
        return False


def overlay_in_proc(proc_filesystems="/proc/filesystems"):
    try:
        with open(proc_filesystems) as f:
            return any(line.rstrip("\n") == "nodev\toverlay" for line in f)
    except OSError:
        return False


def supports_overlay(load=True):
    if load and not overlay_in_proc():
        load_overlay_module()
    return overlay_in_proc()


def require_overlay(load=True):
    if not supports_overlay(load):
        raise NotSupported("'overlay' not found as a supported filesystem on this host "
                           "(kernel %s): load the overlay module or use a kernel with overlay support"
                           % os.uname().release)


def dir_reports_dtype(path):
    """True when every entry of path comes back with a d_type from readdir.

    Fed any real directory; the filesystem decides, not a guess.
    """
    entries = syscalls.readdir_types(path)
    return all(t != syscalls.DT_UNKNOWN for _name, t in entries)


def supports_dtype(path):
    """Write a probe file in path and see whether readdir reports its type."""
    probe = make_temp_dir(path, ".dtype-probe-")
    try:
        with open(os.path.join(probe, "f"), "w"):
            pass
        os.mkdir(os.path.join(probe, "d"))
        return dir_reports_dtype(probe)
    finally:
        syscalls.remove_tree(probe)


def existing_ancestor(path):
    path = os.path.abspath(path)
    while not os.path.isdir(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def backing_problems(path):
    """Every reason the filesystem under path cannot carry layers, as messages (empty: fine)."""
    probe_dir = existing_ancestor(path)
    name, magic = backing_fs(probe_dir)
    problems = []
    if magic in INCOMPATIBLE:
        problems.append("'overlay' is not supported over %s (%s is on %s)" % (name, path, name))
        return problems
    if os.access(probe_dir, os.W_OK) and not supports_dtype(probe_dir):
        hint = ""
        if name == "xfs":
            hint = " (reformat with mkfs.xfs -n ftype=1)"
        elif magic == EXT_MAGIC:
            hint = " (enable it with tune2fs -O filetype, or reformat)"
        problems.append("the %s filesystem under %s does not support d_type, which overlay needs%s"
                        % (name, path, hint))
    return problems


def require_compatible(path):
    problems = backing_problems(path)
    if problems:
        raise IncompatibleFS("; ".join(problems), path=path)


def zstd_support():
    """Whether zstd layers can be read here: the zstd program or the zstandard module (either will do)."""
    import importlib.util  # pylint: disable=import-outside-toplevel
    import shutil  # pylint: disable=import-outside-toplevel

    program = shutil.which("zstd") or ""
    try:
        module = importlib.util.find_spec("zstandard") is not None
    except (ImportError, ValueError):
        module = False
    return {"program": program, "module": module, "supported": bool(program) or module}
