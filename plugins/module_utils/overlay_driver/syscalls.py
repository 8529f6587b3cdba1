# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Linux system calls Python's os module lacks, through ctypes.

mount/umount2, open_tree/mount_setattr/move_mount (a bind made read-only before
it is attached), statfs (for the filesystem magic), openat2 (walk.py resolves
names inside a root with it, whatever their symlinks say), renameat2 (atomic
exchange) and a raw readdir (to see whether a filesystem reports d_type).
Thin wrappers only: what to do with them is the callers'.
"""

import ctypes
import errno
import os

# The interpreter's own symbols include libc's. ctypes.util.find_library would
# run ldconfig in a subprocess on every import: 25 ms of every module run.
_libc = ctypes.CDLL(None, use_errno=True)

# openat2 has no glibc wrapper; 437 is its number on every architecture
# that got it after the syscall table unification.
SYS_OPENAT2 = 437

RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_IN_ROOT = 0x10

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2

MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
O_PATH = getattr(os, "O_PATH", 0o10000000)


def _raise_errno(what, path=None):
    err = ctypes.get_errno()
    if path is None:
        raise OSError(err, "%s: %s" % (what, os.strerror(err)))
    raise OSError(err, os.strerror(err), path)


def _b(path):
    return os.fsencode(path) if path is not None else None


# --- mount -----------------------------------------------------------------

_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def mount(source, target, fstype, flags=0, data=None):
    if _libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)) != 0:
        _raise_errno("mount", target)


def umount(target, flags=0):
    if _libc.umount2(_b(target), flags) != 0:
        _raise_errno("umount", target)


# --- the mount API of fds (open_tree, move_mount: 5.2; mount_setattr: 5.12) ---
# No glibc wrappers before 2.36. The numbers are the generic table's: the same on x86_64 and aarch64.

SYS_OPEN_TREE, SYS_MOVE_MOUNT, SYS_MOUNT_SETATTR = 428, 429, 442
_libc.syscall.restype = ctypes.c_long
AT_EMPTY_PATH = 0x1000
MOUNT_ATTR_RDONLY = 1  # NOSUID 2, NODEV 4, NOEXEC 8: the bits of MS_NOSUID, MS_NODEV, MS_NOEXEC


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64), ("propagation", ctypes.c_uint64),
                ("userns_fd", ctypes.c_uint64)]


def _syscall(name, number, *args):
    ret = _libc.syscall(ctypes.c_long(number), *args)
    if ret < 0:
        _raise_errno(name)
    return ret


def open_tree_clone(fd):
    """An fd of a detached copy of the mount of the directory fd, rooted there, without its submounts
    (OPEN_TREE_CLONE, not AT_RECURSIVE); closed unattached, the copy is unmounted."""
    return _syscall("open_tree", SYS_OPEN_TREE, ctypes.c_int(fd), ctypes.c_char_p(b""),
                    ctypes.c_uint(1 | os.O_CLOEXEC | AT_EMPTY_PATH))


def mount_setattr(fd, attr_set, attr_clr=0):
    """MOUNT_ATTR_* flags of the mount fd is the root of: attr_set set, attr_clr cleared."""
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    _syscall("mount_setattr", SYS_MOUNT_SETATTR, ctypes.c_int(fd), ctypes.c_char_p(b""), ctypes.c_uint(AT_EMPTY_PATH),
             ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)))


def move_mount(from_fd, to_fd):
    """The mount from_fd is the root of, attached onto the directory to_fd is."""
    _syscall("move_mount", SYS_MOVE_MOUNT, ctypes.c_int(from_fd), ctypes.c_char_p(b""), ctypes.c_int(to_fd),
             ctypes.c_char_p(b""), ctypes.c_uint(0x4 | 0x40))  # MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH


# --- statfs ----------------------------------------------------------------

class _StatFS(ctypes.Structure):
    # struct statfs on 64-bit Linux: f_type first, as a long.
    _fields_ = [("f_type", ctypes.c_long), ("f_bsize", ctypes.c_long), ("f_rest", ctypes.c_byte * 112)]


_libc.statfs.argtypes = [ctypes.c_char_p, ctypes.POINTER(_StatFS)]


def fs_magic(path):
    """The f_type of the filesystem holding path (seed: graphdriver.GetFSMagic)."""
    buf = _StatFS()
    if _libc.statfs(_b(path), ctypes.byref(buf)) != 0:
        _raise_errno("statfs", path)
    return buf.f_type & 0xFFFFFFFF


# --- openat2 ---------------------------------------------------------------

class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_openat2_works = None


def openat2_available():
    """Probe once; kernels before 5.6 (or seccomp filters) answer ENOSYS."""
    global _openat2_works
    if _openat2_works is None:
        if os.uname().sysname != "Linux" or os.environ.get("STRATA_OVERLAY_NO_OPENAT2"):
            _openat2_works = False
        else:
            try:
                fd = openat2(-100, b"/", os.O_PATH | os.O_DIRECTORY, 0)
                os.close(fd)
                _openat2_works = True
            except OSError as e:
                if e.errno not in (errno.ENOSYS, errno.EPERM):
                    raise
                _openat2_works = False
    return _openat2_works


def openat2(dirfd, path, flags, resolve, mode=0):
    """openat2(2) with O_CLOEXEC; dirfd -100 is AT_FDCWD, path is bytes."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    fd = _libc.syscall(ctypes.c_long(SYS_OPENAT2), ctypes.c_int(dirfd), ctypes.c_char_p(path),
                       ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), os.fsdecode(path))
    return fd


# --- renameat2 -------------------------------------------------------------

_renameat2 = getattr(_libc, "renameat2", None)
if _renameat2 is not None:
    _renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]


def exchange(path_a, path_b, dir_fd_a=None, dir_fd_b=None):
    """Swap two paths atomically (RENAME_EXCHANGE): readers see one or the other, never neither.

    Names are relative to the dir fds when given."""
    if _renameat2 is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available in this C library")
    fd_a = -100 if dir_fd_a is None else dir_fd_a
    fd_b = -100 if dir_fd_b is None else dir_fd_b
    if _renameat2(fd_a, _b(path_a), fd_b, _b(path_b), RENAME_EXCHANGE) != 0:
        _raise_errno("renameat2", path_b)


def rename_noreplace(src, dst, src_dir_fd=None, dst_dir_fd=None):
    """rename that fails with EEXIST instead of replacing an (empty) directory; names relative to dir fds."""
    if _renameat2 is None:
        try:
            os.stat(dst, dir_fd=dst_dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            os.rename(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)
            return
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), dst)
    src_fd = -100 if src_dir_fd is None else src_dir_fd
    dst_fd = -100 if dst_dir_fd is None else dst_dir_fd
    if _renameat2(src_fd, _b(src), dst_fd, _b(dst), RENAME_NOREPLACE) != 0:
        _raise_errno("renameat2", dst)


# --- readdir with d_type ---------------------------------------------------

_libc.opendir.restype = ctypes.c_void_p
_libc.opendir.argtypes = [ctypes.c_char_p]
_libc.readdir.restype = ctypes.c_void_p
_libc.readdir.argtypes = [ctypes.c_void_p]
_libc.closedir.argtypes = [ctypes.c_void_p]

DT_UNKNOWN = 0
# struct dirent on glibc/Linux: d_ino(8) d_off(8) d_reclen(2) d_type(1) d_name
_DTYPE_OFFSET = 18
_DNAME_OFFSET = 19


def readdir_types(path, limit=None):
    """(name, d_type) of every entry (the first limit of them) as the filesystem itself reports it.

    os.scandir hides DT_UNKNOWN by falling back to stat; the d_type check
    needs the raw answer.
    """
    d = _libc.opendir(_b(path))
    if not d:
        _raise_errno("opendir", path)
    out = []
    try:
        while True:
            ctypes.set_errno(0)
            ent = _libc.readdir(d)
            if not ent:
                if ctypes.get_errno():
                    _raise_errno("readdir", path)
                break
            name = ctypes.string_at(ent + _DNAME_OFFSET)
            if name in (b".", b".."):
                continue
            out.append((os.fsdecode(name), ctypes.c_ubyte.from_address(ent + _DTYPE_OFFSET).value))
            if limit is not None and len(out) >= limit:
                break
    finally:
        _libc.closedir(d)
    return out
