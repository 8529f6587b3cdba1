# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Can this host, and this directory, carry overlay layers?

The seed's Init: modprobe overlay, look for it in /proc/filesystems, read the
backing filesystem's statfs magic and refuse btrfs, aufs and zfs. Overlay
also needs d_type from the backing filesystem (xfs ftype=0, ext4 without
filetype lack it), and cannot use an overlay as upper layer.
"""

import fcntl
import os
import struct

from . import mounts, syscalls
from .errors import IncompatibleFS, NotSupported

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


def missing_overlay():
    """The one message for a kernel without overlay, raised by writers and listed by host_status."""
    return ("kernel %s has no overlay filesystem: 'overlay' is not in /proc/filesystems "
            "(modprobe overlay failed or the kernel lacks CONFIG_OVERLAY_FS)" % os.uname().release)


def require_overlay(load=True):
    if not supports_overlay(load):
        raise NotSupported(missing_overlay())


def dir_reports_dtype(path):
    """True when every entry of path comes back with a d_type from readdir.

    Fed any real directory; the filesystem decides, not a guess.
    """
    entries = syscalls.readdir_types(path)
    return all(t != syscalls.DT_UNKNOWN for _name, t in entries)


DTYPE_SAMPLE = 16
XFS_MAGIC = 0x58465342
# filesystems whose readdir always reports d_type: tmpfs, ramfs, f2fs
ALWAYS_DTYPE = (0x01021994, 0x858458F6, 0xF2F52010)
# _IOR('X', 100, struct xfs_fsop_geom_v1): 112 bytes, flags at offset 92
_XFS_IOC_FSGEOMETRY_V1 = (2 << 30) | (112 << 16) | (ord("X") << 8) | 100
_XFS_GEOM_FLAGS_FTYPE = 0x10000


def _xfs_ftype(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        buf = fcntl.ioctl(fd, _XFS_IOC_FSGEOMETRY_V1, bytes(112))
    finally:
        os.close(fd)
    return bool(struct.unpack_from("=I", buf, 92)[0] & _XFS_GEOM_FLAGS_FTYPE)


def dtype_without_writing(path):
    """d_type support read from what is there: xfs's geometry, else the entries of path or a
    directory above it on the same filesystem. None when nothing tells (an empty filesystem)."""
    path = existing_ancestor(path)
    try:
        magic = syscalls.fs_magic(path)
        if magic in ALWAYS_DTYPE:
            return True
        if magic == XFS_MAGIC:
            return _xfs_ftype(path)
    except OSError:
        pass
    dev = os.stat(path).st_dev
    while True:
        try:
            # the filesystem gives d_type for all its entries or for none: a few tell (a home of 1,000 layers
            # is read by every writer's call)
            entries = syscalls.readdir_types(path, limit=DTYPE_SAMPLE)
        except OSError:
            return None
        if entries:
            return all(t != syscalls.DT_UNKNOWN for _name, t in entries)
        parent = os.path.dirname(path)
        if parent == path or os.stat(parent).st_dev != dev:
            return None
        path = parent


def existing_ancestor(path):
    path = os.path.abspath(path)
    while not os.path.isdir(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def backing_problems(path, dtype=None):
    """Every reason the filesystem under path cannot carry layers, as messages (empty: fine).

    dtype is what a probe found; None: read it without writing anything.
    """
    probe_dir = existing_ancestor(path)
    name, magic = backing_fs(probe_dir)
    if dtype is None and magic not in INCOMPATIBLE:
        dtype = dtype_without_writing(probe_dir)
    return fs_problems(path, name, magic, dtype)


def fs_problems(path, name, magic, dtype):
    """backing_problems from what was already read: the filesystem's name and magic, and d_type (None: unknown)."""
    if magic in INCOMPATIBLE:
        return ["'overlay' is not supported over %s (%s is on %s)" % (name, path, name)]
    if dtype is not False:
        return []
    hint = ""
    if name == "xfs":
        hint = " (reformat with mkfs.xfs -n ftype=1)"
    elif magic == EXT_MAGIC:
        hint = " (enable it with tune2fs -O filetype, or reformat)"
    return ["the %s filesystem under %s does not support d_type, which overlay needs%s" % (name, path, hint)]


# Filesystems that live in memory only: a home on one is empty after a reboot.
VOLATILE = {0x01021994: "tmpfs", 0x858458F6: "ramfs"}


def volatile_home(home):
    """A warning when the home's filesystem (that of its nearest existing ancestor) keeps nothing across a
    reboot, else None.

    Overlay works on tmpfs, so nothing refuses such a home, and everything looks fine until the host
    restarts: then the layers, their holders and records are gone, and the boot unit has nothing to restore.
    """
    try:
        name = VOLATILE.get(syscalls.fs_magic(existing_ancestor(home)))
    except OSError:
        return None
    if name is None:
        return None
    return ("the layer home %s is on %s, which keeps nothing across a reboot: its layers, holders and records are "
            "lost then, and the boot unit has nothing to restore. Put the home on a disk-backed filesystem (ext4, "
            "xfs) for layers that must last, or accept that they are staged again after every boot" % (home, name))


def require_compatible(path, dtype=None):
    problems = backing_problems(path, dtype)
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


IGZIP_DISABLE_ENV = "STRATA_OVERLAY_DISABLE_IGZIP"  # as containerd's CONTAINERD_DISABLE_IGZIP


def igzip_program():
    """What image layers' gzip goes through (images/igzip.py), unless IGZIP_DISABLE_ENV is set (not to 0)."""
    if os.environ.get(IGZIP_DISABLE_ENV, "0") not in ("", "0"):
        return None
    import shutil  # pylint: disable=import-outside-toplevel

    return shutil.which("igzip")


def signature_verifiers():
    """The verifiers a signature policy can use here (signature_verifiers.py)."""
    from .signature_verifiers import host_verifiers  # pylint: disable=import-outside-toplevel
    return host_verifiers()


def host_status(home, verifiers=False):
    """Overlay support, kernel and backing filesystem, without creating, probing or loading anything.

    Each fact is read once: the filesystem and its d_type here feed the problems listed. The signature
    verifiers (which run gpg and openssl and import cryptography) only when asked: overlay_info runs on
    every host of a fleet and as the action plugin's probe, and only the preflight report needs them.
    """
    supported = supports_overlay(load=False)
    probe = existing_ancestor(home)
    backing, magic = backing_fs(probe)
    try:
        dtype = dtype_without_writing(probe)
    except OSError:
        dtype = None
    problems = fs_problems(home, backing, magic, dtype)
    if not supported:
        problems.insert(0, missing_overlay())
    return {
        "overlay_supported": supported,
        "kernel": os.uname().release,
        "backing_fs": backing,
        "d_type": dtype,
        "home": home,
        "home_exists": os.path.isdir(home),
        "problems": problems,
        "zstd": zstd_support(),
        "gzip": {"program": igzip_program() or ""},
        "signature_verifiers": signature_verifiers() if verifiers else None,
    }
