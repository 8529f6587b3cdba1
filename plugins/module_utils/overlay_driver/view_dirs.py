# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A layer's directories and entries read by directory fd, never by path.

The change walk, diff_size and the exporter read a layer's tree as root. With
id maps that give the remapped root to a user, that user owns the layer's
files and may replace any directory of it by a symlink at any moment, for
instance to a root-only directory: read by path, its names, sizes, xattrs
and data would end in changes, diff_size or an export. So every directory
of a walk is a `Dir`, opened from its parent's fd with
O_NOFOLLOW|O_DIRECTORY (one name, no path resolution at all), and every
entry a `ViewEntry` whose stat, xattrs, link target and data are read
through its directory's fd with follow_symlinks=False or O_NOFOLLOW. A
directory swapped for a symlink fails to open (ELOOP or ENOTDIR), which is
a clear OverlayError, never a read of what the link names.

A deep tree has more directories than a process has descriptors, so only
the last OPEN_DIRS directories opened stay open; one used again after it
was closed is opened once more from its nearest open ancestor, name by name, and
must be the directory (device and inode) first opened there: one moved
meanwhile is an error, never a read elsewhere. The roots, the fds a view is
given, stay open until the view is closed.

xattrs: os.getxattr takes no dir_fd and fgetxattr refuses an O_PATH fd
(EBADF), while opening an entry to read it would open devices and FIFOs. So
an entry's xattrs are read through /proc/self/fd/N of an O_PATH|O_NOFOLLOW fd
of it: that magic link leads to the very inode opened, the symlink itself
for a symlink (checked on this kernel: a symlink's own trusted.* xattr is
read, not its target's), with no other name resolved. A regular file the
exporter has open for its data gives its xattrs through that fd.
"""

import collections
import errno
import os
import resource
import stat

from . import walk
from .errors import OverlayError
from .syscalls import O_PATH

OPEN_DIRS = 64
DIR_OPEN = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
ENTRY_PATH = O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC

_LINK, _DIR, _FILE, _OTHER = range(4)

# non-root Dirs whose fd is open, first opened first
_open_dirs = collections.OrderedDict()
# roots opened by their path (the functions that take paths), open now
_path_roots = []


def release_path_roots():
    """Close every root opened by its path, and the directories below them: the functions that take paths
    call this when done, so no descriptor of theirs outlives the call (a mounted tree they read can be
    unmounted). Their entries stay readable: a closed root opened by its path is opened again when used."""
    while _path_roots:
        _path_roots.pop().close()


def swapped(path, error):
    return OverlayError("a directory of the layer is not one now (%s; swapped for a symlink while it was read?); "
                        "refusing to read it" % error.strerror, path=path)


class Dir:
    """A directory of a layer, open (fileno()) by its name in its parent, with its device and inode."""

    __slots__ = ("parent", "name", "_path", "fd", "dev", "ino", "root", "by_path", "children")

    def __init__(self, parent, name, path, fd, dev, ino):
        self.by_path = False
        self.children = None  # name -> Dir, those opened below this one
        self.parent = parent
        self.name = name
        self._path = path  # None below a root: made from the parent's when a message needs it
        self.fd = fd
        self.dev = dev
        self.ino = ino
        self.root = parent.root if parent is not None else self

    @property
    def path(self):
        """Where it is, for messages (never opened)."""
        if self._path is None:
            self._path = self.parent.path + "/" + self.name
        return self._path

    @classmethod
    def at_root(cls, fd, path):
        """A root of a view: fd (a directory opened by the caller, O_PATH or not) reopened for reading; the
        caller keeps its own fd. path names it in messages."""
        _judge_room()
        own = os.open(".", DIR_OPEN, dir_fd=fd)
        try:
            st = os.fstat(own)
            return cls(None, "", path, own, st.st_dev, st.st_ino)
        except BaseException:
            os.close(own)
            raise

    @classmethod
    def open_path(cls, path):
        """A root opened by its path, which must hold no symlink (walk.open_no_symlinks)."""
        _judge_room()
        try:
            fd = walk.open_no_symlinks(path, DIR_OPEN)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise swapped(path, e)
            raise
        try:
            st = os.fstat(fd)
            root = cls(None, "", path, fd, st.st_dev, st.st_ino)
        except BaseException:
            os.close(fd)
            raise
        root.by_path = True
        _path_roots.append(root)
        return root

    def fileno(self):
        """The directory's fd, opened again from its ancestors if it was closed to save descriptors."""
        if self.fd is None:
            self._reopen()
        return self.fd

    def _reopen(self):
        pending = []
        at = self
        while at.fd is None and at.parent is not None:
            pending.append(at)
            at = at.parent
        if at.fd is None:
            at._reopen_root()
        for d in reversed(pending):
            fd = _open_child(d.parent.fd, d.name, d.path)
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != (d.dev, d.ino):
                os.close(fd)
                raise OverlayError("a directory of the layer was moved or replaced while it was read; refusing to "
                                   "read it", path=d.path)
            d.fd = fd
            _remember(d)

    def _reopen_root(self):
        """A root opened by its path, open again the same way (release_path_roots closed it), and checked to
        be the same directory; a root given as an fd cannot be reopened once closed."""
        if not self.by_path:
            raise ValueError("the view holding %s was closed" % self.path)
        other = Dir.open_path(self.path)
        _path_roots.remove(other)
        fd, other.fd = other.fd, None
        if (other.dev, other.ino) != (self.dev, self.ino):
            os.close(fd)
            raise OverlayError("the layer directory was moved or replaced while it was read; refusing to read it",
                               path=self.path)
        self.fd = fd
        _path_roots.append(self)

    def child(self, name, ino=None):
        """The directory name in this one, opened without following a symlink (OSError as os.open), once:
        asked again, the same Dir.

        ino: its inode number as this directory's listing gave it (readdir's, no stat), which it is
        then taken to be (on this directory's filesystem); one opened again later must be that one.
        Something mounted on it, whose root readdir does not show, is then refused when reopened."""
        children = self.children
        if children is None:
            children = self.children = {}
        else:
            found = children.get(name)
            if found is not None:
                return found
        fd = os.open(name, DIR_OPEN, dir_fd=self.fileno())
        try:
            if ino is None:
                st = os.fstat(fd)
                d = Dir(self, name, None, fd, st.st_dev, st.st_ino)
            else:
                d = Dir(self, name, None, fd, self.dev, ino)
        except BaseException:
            os.close(fd)
            raise
        _remember(d)
        children[name] = d
        return d

    def child_dir(self, name, ino=None):
        """child(), a name that is no directory now (a symlink swapped in) being a clear OverlayError."""
        try:
            return self.child(name, ino)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise swapped(self.path + "/" + name, e)
            raise

    def lookup(self, rel):
        """The directory rel ("a/b") below this one, each name opened by child_dir."""
        d = self
        for name in rel.split("/"):
            if name:
                d = d.child_dir(name)
        return d

    def scan(self, only=None):
        """name -> ViewEntry of every entry (only: of those whose name it holds), types and inodes from
        readdir."""
        with os.scandir(self.fileno()) as it:
            if only is not None:
                return {entry.name: ViewEntry(self, entry.name, _kind(entry), entry.inode())
                        for entry in it if entry.name in only}
            return {entry.name: ViewEntry(self, entry.name, _kind(entry), entry.inode()) for entry in it}

    def scan_raw(self, only=None):
        """name -> os.DirEntry of every entry, for the walk of a plain tree, which wraps the few it keeps or
        stats (ViewEntry.of). Only their names, types and inodes may be used: a DirEntry's stat() would go
        through the number of an fd that may be closed and reused by then. Their types are readdir's
        d_type; where a filesystem gives none, is_dir() stats the entry, so it is called here, while the
        fd is this directory's (the answer is kept), never later. only: the names wanted (None: all); the
        others are neither kept nor typed."""
        with os.scandir(self.fileno()) as it:
            if only is not None:
                return {entry.name: entry for entry in it if entry.name in only and _typed(entry)}
            return {entry.name: entry for entry in it if _typed(entry)}

    def names(self):
        return os.listdir(self.fileno())

    def getxattr(self, name):
        return os.getxattr(self.fileno(), name)

    def close(self):
        """Close a root (and every directory below it still open); its entries cannot be read after. A
        directory below a root is closed with its root (or when OPEN_DIRS others were used since)."""
        if self.parent is not None:
            return
        if self in _path_roots:
            _path_roots.remove(self)
        self.close_below()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def close_below(self):
        """Close the directories below this root that are open; each is opened again when used."""
        for d in [d for d in _open_dirs if d.root is self]:
            _forget(d)

    def __del__(self):
        if self.parent is None and self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass


def _open_child(parent_fd, name, path):
    try:
        return os.open(name, DIR_OPEN, dir_fd=parent_fd)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise swapped(path, e)
        raise


def _remember(d):
    _open_dirs[d] = None
    most = min(OPEN_DIRS, _room[0]) if _room[0] is not None else OPEN_DIRS
    while len(_open_dirs) > most:
        _forget(next(iter(_open_dirs)))


# how many directories below the roots may stay open within the open-file limit: judged when a root is opened
_room = [None]


def _judge_room():
    """A quarter of the descriptors the open-file limit leaves free (at least 2), when that is under OPEN_DIRS:
    beside the walk's directories stand the views' roots, the exporter's files and the process's own, and a
    layer of many directories must be read under a limit of a few dozen too (the ones closed are only opened
    again). Once per root: the count of open descriptors is a listing of /proc/self/fd (a process may hold
    hundreds, so a high limit is no sign of room)."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        _room[0] = None
        return
    try:
        held = len(os.listdir("/proc/self/fd"))
    except OSError as e:
        if e.errno == errno.ENFILE:
            raise OverlayError("cannot open a directory to read the layer: %s (the host's whole file table, "
                               "fs.file-max, is full)" % e.strerror)
        if e.errno != errno.EMFILE:
            raise
        raise OverlayError("cannot open a directory to read the layer: %s (the open-file limit, RLIMIT_NOFILE, is "
                           "%d: raise it with ulimit -n or LimitNOFILE=)" % (e.strerror, soft))
    _room[0] = max(2, (soft - held - len(_open_dirs)) // 4 + len(_open_dirs))


def _forget(d):
    del _open_dirs[d]
    fd, d.fd = d.fd, None
    os.close(fd)


def _typed(entry):
    """True, once entry's type is known (is_dir: d_type, or a stat kept by the DirEntry)."""
    entry.is_dir(follow_symlinks=False)
    return True


def _kind(entry):
    if entry.is_symlink():
        return _LINK
    if entry.is_dir(follow_symlinks=False):
        return _DIR
    if entry.is_file(follow_symlinks=False):
        return _FILE
    return _OTHER


class ViewEntry:
    """What the walks and the exporter use of an os.DirEntry, read through its directory's fd.

    Type and inode are readdir's; stat() is an fstatat of the name, not followed, made once."""

    __slots__ = ("dir", "name", "_kind", "_ino", "_stat")

    def __init__(self, parent, name, kind, ino, st=None):
        self.dir = parent
        self.name = name
        self._kind = kind
        self._ino = ino
        self._stat = st

    @classmethod
    def of(cls, parent, entry):
        """The os.DirEntry entry of Dir parent's listing (scan_raw) as a ViewEntry."""
        return cls(parent, entry.name, _kind(entry), entry.inode())

    @classmethod
    def at(cls, parent, name):
        """The entry name of the Dir parent, found by lstat (for a change the walk gave no entry)."""
        st = os.stat(name, dir_fd=parent.fileno(), follow_symlinks=False)
        mode = st.st_mode
        kind = _LINK if stat.S_ISLNK(mode) else _DIR if stat.S_ISDIR(mode) else _FILE if stat.S_ISREG(mode) \
            else _OTHER
        return cls(parent, name, kind, st.st_ino, st)

    @property
    def path(self):
        """Where it is, for messages (never opened)."""
        return self.dir.path + "/" + self.name

    def __repr__(self):
        return "<ViewEntry %r>" % self.path

    def is_dir(self, follow_symlinks=True):
        _never_followed(follow_symlinks)
        return self._kind == _DIR

    def is_file(self, follow_symlinks=True):
        _never_followed(follow_symlinks)
        return self._kind == _FILE

    def is_symlink(self):
        return self._kind == _LINK

    def inode(self):
        return self._ino

    def stat(self, follow_symlinks=True):
        _never_followed(follow_symlinks)
        if self._stat is None:
            self._stat = os.stat(self.name, dir_fd=self.dir.fileno(), follow_symlinks=False)
        return self._stat

    def open_dir(self):
        """This directory entry as a Dir (a symlink swapped in meanwhile: OverlayError)."""
        return self.dir.child_dir(self.name, self._ino)

    def open(self, flags):
        """os.open of the entry in its directory, O_NOFOLLOW added."""
        return os.open(self.name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.dir.fileno())

    def readlink(self):
        return os.readlink(self.name, dir_fd=self.dir.fileno())

    def xattrs(self):
        """name -> value of the entry's own xattrs (a symlink's included), {} when there are none or the
        filesystem keeps none; a directory's through its Dir, others' through /proc/self/fd of an O_PATH
        fd (see the module's docstring)."""
        if self._kind == _DIR:
            return fd_xattrs(self.open_dir().fileno())
        fd = self.open(O_PATH)
        try:
            return fd_xattrs("/proc/self/fd/%d" % fd)
        finally:
            os.close(fd)

    def getxattr(self, name):
        """One xattr of the entry itself (None when it has none), as xattrs() reads them; a directory's from
        its Dir (the one the walk lists next)."""
        if self._kind == _DIR:
            try:
                return self.open_dir().getxattr(name)
            except OSError:
                return None
        fd = self.open(O_PATH)
        try:
            return os.getxattr("/proc/self/fd/%d" % fd, name)
        except OSError:
            return None
        finally:
            os.close(fd)


def fd_xattrs(where):
    """name -> value of the xattrs of where (a readable fd, or a /proc/self/fd path), {} when unreadable."""
    try:
        names = os.listxattr(where)
    except OSError:
        return {}
    out = {}
    for name in names:
        try:
            out[name] = os.getxattr(where, name)
        except OSError:
            continue
    return out


def _never_followed(follow_symlinks):
    if follow_symlinks:
        raise ValueError("a layer's entries are never followed")
