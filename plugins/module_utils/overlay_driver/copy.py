# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Copy a layer tree with everything overlay and images care about (seed: copyDir).

Modes, owners, times, all xattrs (security.capability, trusted.overlay.*,
also those of symlinks), devices, fifos, sockets, symlinks, and hardlinks
inside the tree stay what they were. With hardlink=True regular files are linked, not copied, which is
how a child layer shares file data with its parent's root/ (the seed's
copyHardlink): linked files are never touched afterwards, since a metadata
change would reach the parent through the shared inode.

The source may be a mounted layer's upper/, which the processes running in
that layer change while root copies it: a directory swapped for a symlink, a
file for a FIFO. So the source is read only by directory fd, every name is
opened without following a symlink (a regular file first as O_PATH, so a FIFO
or a device is never opened at all), the type is checked on the fd, and a
directory is left upwards through ".." only when that is still the directory
it came from. What changed under the copy is an error naming it, never a read
elsewhere and never a blocked open. The destination is root's own temp
directory. At most a few descriptors are open whatever the depth.
"""

import errno
import os
import stat

from .changes import raise_too_deep
from .errors import OverlayError
from .syscalls import O_PATH

_COPY_CHUNK = 1 << 30
_DIR_OPEN = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_PATH_OPEN = O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISREG, "a regular file"), (stat.S_ISLNK, "a symlink"),
          (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"))


def _kind(mode):
    for test, name in _KINDS:
        if test(mode):
            return name
    return "of an unknown type"


def _fd_path(fd, name=None):
    """/proc/self/fd/N[/name]: for the calls that take no dir_fd (xattrs, a link to a path)."""
    return "/proc/self/fd/%d" % fd if name is None else "/proc/self/fd/%d/%s" % (fd, name)


def _copy_xattrs(src, dst, follow=True):
    """src and dst: fds, or /proc/self/fd paths read and written without following the last name."""
    try:
        names = os.listxattr(src, follow_symlinks=False) if isinstance(src, str) else os.listxattr(src)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return
        raise
    for name in names:
        try:
            value = os.getxattr(src, name, follow_symlinks=False) if isinstance(src, str) else os.getxattr(src, name)
        except OSError as e:
            if e.errno == errno.ENODATA:
                continue  # removed since it was listed
            raise
        if isinstance(dst, str):
            os.setxattr(dst, name, value, follow_symlinks=follow)
        else:
            os.setxattr(dst, name, value)


def _copy_data(src_fd, dst_fd, size):
    """copy_file_range (reflinks on xfs/btrfs, in-kernel elsewhere), then a plain loop."""
    copied = 0
    use_cfr = hasattr(os, "copy_file_range")
    while copied < size or size == 0:
        if use_cfr:
            try:
                n = os.copy_file_range(src_fd, dst_fd, _COPY_CHUNK)
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                    raise
                use_cfr = False
                continue
        else:
            buf = os.read(src_fd, 1 << 20)
            n = len(buf)
            view = memoryview(buf)
            while view:
                view = view[os.write(dst_fd, view):]
        if n == 0:
            break
        copied += n
    return copied


def _set_attrs_fd(src_fd, dst_fd, st):
    """Owner, then xattrs, then mode (chown clears setuid), then times: all on the fds."""
    os.fchown(dst_fd, st.st_uid, st.st_gid)
    _copy_xattrs(src_fd, dst_fd)
    os.fchmod(dst_fd, stat.S_IMODE(st.st_mode))
    os.utime(dst_fd, ns=(st.st_atime_ns, st.st_mtime_ns))


class _Copy:
    """One copy: the source read by fd only, the destination built in root's own directory."""

    def __init__(self, src_fd, dst_fd, hardlink, where):
        self.hardlink = hardlink
        self.where = where
        self.dst_root = os.dup(dst_fd)
        self.src_fd = os.dup(src_fd)  # the directory being copied now, and its copy
        self.dst_fd = os.dup(dst_fd)
        self.seen_inodes = {}  # (dev, ino) -> first destination, relative to dst_root
        self.names = []  # the path below the top, for messages and hardlinks

    def close(self):
        for fd in (self.src_fd, self.dst_fd, self.dst_root):
            if fd is not None:
                os.close(fd)
        self.src_fd = self.dst_fd = self.dst_root = None

    def path(self, name=None):
        parts = self.names + ([name] if name is not None else [])
        return os.path.join(self.where, *parts) if parts else self.where

    def changed(self, name, cause):
        return OverlayError("the tree changed while it was copied: %s; nothing was copied into place, try again "
                            "when nothing writes to it" % cause, path=self.path(name))

    def run(self):
        top = os.fstat(self.src_fd)
        if not stat.S_ISDIR(top.st_mode):
            raise self.changed(None, "it is %s, not a directory" % _kind(top.st_mode))
        _set_attrs_dir(self.src_fd, self.dst_fd, top)
        # one frame per directory on the current chain: (names still to copy, its stat, its copy's (dev, ino))
        stack = [(self._list(), top, _ident(os.fstat(self.dst_fd)))]
        while stack:
            names, st, _dst_ident = stack[-1]
            if names:
                name = names.pop()
                child = self._entry(name)
                if child is not None:
                    self.names.append(name)
                    stack.append((self._list(), child, _ident(os.fstat(self.dst_fd))))
                continue
            os.utime(self.dst_fd, ns=(st.st_atime_ns, st.st_mtime_ns))  # after its children
            stack.pop()
            if stack:
                self._up(stack[-1][1], stack[-1][2])
                self.names.pop()

    def _list(self):
        names = os.listdir(self.src_fd)
        names.sort(reverse=True)
        return names

    def _up(self, src_st, dst_ident):
        """Back to the parent through "..", which must still be the directory the copy came down from."""
        src_parent = os.open("..", _DIR_OPEN, dir_fd=self.src_fd)
        if _ident(os.fstat(src_parent)) != _ident(src_st):
            os.close(src_parent)
            raise self.changed(None, "it was moved elsewhere")
        dst_parent = os.open("..", _DIR_OPEN, dir_fd=self.dst_fd)
        self._replace(src_parent, dst_parent)
        if _ident(os.fstat(self.dst_fd)) != dst_ident:
            raise self.changed(None, "its copy was moved")

    def _replace(self, src_fd, dst_fd):
        os.close(self.src_fd)
        os.close(self.dst_fd)
        self.src_fd, self.dst_fd = src_fd, dst_fd

    def _lstat(self, name):
        try:
            return os.stat(name, dir_fd=self.src_fd, follow_symlinks=False)
        except FileNotFoundError:
            raise OverlayError("it vanished while the tree was copied", path=self.path(name))

    def _entry(self, name):
        """Copy one entry; for a directory, step into it and return its stat."""
        st = self._lstat(name)
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            return self._enter(name)
        if stat.S_ISREG(mode):
            self._file(name, st)
        elif stat.S_ISLNK(mode):
            self._symlink(name, st)
        else:
            # fifo, char/block device, socket: mknod makes all four; nothing of the source is opened
            os.mknod(name, mode, st.st_rdev, dir_fd=self.dst_fd)
            os.chown(name, st.st_uid, st.st_gid, dir_fd=self.dst_fd, follow_symlinks=False)
            _copy_xattrs(_fd_path(self.src_fd, name), _fd_path(self.dst_fd, name), follow=False)
            os.chmod(name, stat.S_IMODE(mode), dir_fd=self.dst_fd)
            os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=self.dst_fd, follow_symlinks=False)
        return None

    def _enter(self, name):
        try:
            src = os.open(name, _DIR_OPEN, dir_fd=self.src_fd)
        except FileNotFoundError:
            raise OverlayError("it vanished while the tree was copied", path=self.path(name))
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise self.changed(name, "a directory became %s" % self._now(name))
            raise
        try:
            st = os.fstat(src)
            os.mkdir(name, 0o700, dir_fd=self.dst_fd)
            dst = os.open(name, _DIR_OPEN, dir_fd=self.dst_fd)
        except BaseException:
            os.close(src)
            raise
        try:
            _set_attrs_dir(src, dst, st)
        except BaseException:
            os.close(src)
            os.close(dst)
            raise
        self._replace(src, dst)
        return st

    def _now(self, name):
        try:
            return _kind(os.stat(name, dir_fd=self.src_fd, follow_symlinks=False).st_mode)
        except OSError:
            return "something else"

    def _file(self, name, st):
        key = (st.st_dev, st.st_ino)
        rel = os.path.join(*(self.names + [name]))
        if self.hardlink:
            os.link(name, name, src_dir_fd=self.src_fd, dst_dir_fd=self.dst_fd, follow_symlinks=False)
            linked = os.stat(name, dir_fd=self.dst_fd, follow_symlinks=False)
            if _ident(linked) != key:
                os.unlink(name, dir_fd=self.dst_fd)
                raise self.changed(name, "a regular file was replaced")
            return
        if st.st_nlink > 1:
            first = self.seen_inodes.get(key)
            if first is not None:
                os.link(_fd_path(self.dst_root, first), name, dst_dir_fd=self.dst_fd, follow_symlinks=False)
                return
        path_fd = self._open_regular(name)
        try:
            src = os.open(_fd_path(path_fd), os.O_RDONLY | os.O_CLOEXEC)
        finally:
            os.close(path_fd)
        try:
            fst = os.fstat(src)
            dst = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                          dir_fd=self.dst_fd)
            try:
                if fst.st_size:
                    _copy_data(src, dst, fst.st_size)
                _set_attrs_fd(src, dst, fst)
            finally:
                os.close(dst)
        finally:
            os.close(src)
        if st.st_nlink > 1:
            self.seen_inodes[key] = rel

    def _open_regular(self, name):
        """An O_PATH fd of name when it is (still) a regular file: a FIFO or a device is never opened."""
        try:
            fd = os.open(name, _PATH_OPEN, dir_fd=self.src_fd)
        except FileNotFoundError:
            raise OverlayError("it vanished while the tree was copied", path=self.path(name))
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            raise self.changed(name, "a regular file became %s" % _kind(mode))
        return fd

    def _symlink(self, name, st):
        try:
            target = os.readlink(name, dir_fd=self.src_fd)
        except FileNotFoundError:
            raise OverlayError("it vanished while the tree was copied", path=self.path(name))
        except OSError as e:
            if e.errno == errno.EINVAL:
                raise self.changed(name, "a symlink became %s" % self._now(name))
            raise
        os.symlink(target, name, dir_fd=self.dst_fd)
        os.chown(name, st.st_uid, st.st_gid, dir_fd=self.dst_fd, follow_symlinks=False)
        # lsetxattr: Docker sets xattrs on symlinks too
        _copy_xattrs(_fd_path(self.src_fd, name), _fd_path(self.dst_fd, name), follow=False)
        os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=self.dst_fd, follow_symlinks=False)


def _set_attrs_dir(src_fd, dst_fd, st):
    """A directory's owner, xattrs and mode; its times come after its children."""
    os.fchown(dst_fd, st.st_uid, st.st_gid)
    _copy_xattrs(src_fd, dst_fd)
    os.fchmod(dst_fd, stat.S_IMODE(st.st_mode))


def _ident(st):
    return (st.st_dev, st.st_ino)


def copy_tree_at(src_fd, dst_fd, hardlink=False, where="."):
    """Copy the contents and attributes of the directory src_fd into the directory dst_fd.

    where names the source in errors. The caller keeps its fds.
    """
    copy = _Copy(src_fd, dst_fd, hardlink, where)
    try:
        copy.run()
    except OSError as e:
        raise_too_deep(e, "copy")
        raise
    finally:
        copy.close()


def copy_tree_into(src_parent_fd, src_name, dst_parent_fd, dst_name, hardlink=False, where=None, exist_ok=False):
    """Copy the directory src_name of src_parent_fd to dst_name of dst_parent_fd, made there (0700 until the
    copy gives it the source's attributes) unless exist_ok finds it.

    Both ends are named from directory fds the caller opened and keeps, never by path: the
    source is in a layer directory its owner (the remapped root) can change, and a path to
    the destination in root's .strata/tmp runs through the home, whose names that owner can
    swap (rename .strata and put a tree of its own there). Neither last name is followed.
    where names the source in errors.
    """
    where = where if where is not None else src_name
    try:
        src_fd = os.open(src_name, _DIR_OPEN, dir_fd=src_parent_fd)
    except OSError as e:
        raise OverlayError("cannot copy it: %s" % e.strerror, path=where)
    try:
        try:
            os.mkdir(dst_name, 0o700, dir_fd=dst_parent_fd)
        except FileExistsError:
            if not exist_ok:
                raise
        dst_fd = os.open(dst_name, _DIR_OPEN, dir_fd=dst_parent_fd)
        try:
            copy_tree_at(src_fd, dst_fd, hardlink, where=where)
        finally:
            os.close(dst_fd)
    finally:
        os.close(src_fd)


def copy_tree(src, dst, hardlink=False):
    """copy_tree_into for paths whose directories are trusted (tests, tools): dst made if missing."""
    fds = []
    try:
        for path in (src, dst):
            parent = os.path.dirname(os.path.abspath(path))
            try:
                fds.append(os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
            except OSError as e:
                raise OverlayError("cannot copy it: %s" % e.strerror, path=path if path is src else parent)
        copy_tree_into(fds[0], os.path.basename(os.path.abspath(src)), fds[1], os.path.basename(os.path.abspath(dst)),
                       hardlink, where=src, exist_ok=True)
    finally:
        for fd in fds:
            os.close(fd)
