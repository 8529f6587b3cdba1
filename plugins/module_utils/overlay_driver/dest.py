# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing a file as root to a path another user may be able to touch.

The data goes to an unnamed file in dest's directory (O_TMPFILE; elsewhere a
temp file with a random name, O_EXCL|O_NOFOLLOW, so a planted file or symlink
is never reused or followed), linked under a temp name and renamed over dest,
relative to the directory's fd, then checked to be there: a dest that is a
symlink is replaced, never written through (AtomicDest). The directory is
opened by walking its path from / one component at a time with O_NOFOLLOW:
a symlink on the way is followed only when root made it in a directory no
other user can change, because a symlink another user planted (in /tmp, or in
a directory they own) would send root's file into a directory of their
choosing. Paths are compared resolved, and directories by device and inode,
so neither a symlinked home nor a bind-mount alias of it can make dest land
inside it.
"""

import errno
import fcntl
import hashlib
import os
import stat

from .errors import OverlayError
from .layout import create_unique, open_temp_file
from .state_files import open_regular
from .walk import DIR_FLAGS, PathWalk, untrusted_reason

TEMP_PREFIX = ".strata-diff-"


class NullWriter:
    """Takes everything, keeps nothing: a check run hashes the tarball without writing it."""

    discards = True  # tar_split.target_fd

    @staticmethod
    def write(data):
        return len(data)

    @staticmethod
    def restart():
        """Nothing to take back."""


class _DestWalk(PathWalk):
    """dest's directory: it must exist; a symlink on the way is followed only when root made it in a
    directory no other user can change."""

    def __init__(self, path, layer_id):
        PathWalk.__init__(self, path)
        self.layer_id = layer_id

    def _fail(self, message):
        raise OverlayError(message, layer=self.layer_id, path=self.path)

    def missing(self, dir_fd, name, last):
        self._fail("destination directory does not exist")

    def check_link(self, dir_fd, st, where):
        if st.st_uid != 0:
            self._fail("refusing to follow %s, a symlink owned by uid %d, to the destination" % (where, st.st_uid))
        reason = untrusted_reason(os.fstat(dir_fd), {0}, {0}, dir_fd)
        if reason:
            self._fail("refusing to follow the symlink %s: its directory can be changed by another user (%s)"
                       % (where, reason))

    def too_many_links(self):
        self._fail("too many symlinks in the destination's path")

    def not_a_directory(self, where):
        self._fail("%s is not a directory" % where)

    def cannot_open(self, where, error):
        self._fail("cannot open %s: %s" % (where, error.strerror))


def open_directory(path, layer_id=None):
    """(fd, resolved path) of an existing directory, never through a symlink another user planted."""
    return _DestWalk(path, layer_id).open()


def resolve_dest(dest, home, layer_id=None):
    """(directory fd, resolved directory, name) of dest; refuses /, directories, and anything in the home.

    The caller closes the fd; every later step acts relative to it.
    """
    given = dest
    dest = os.path.abspath(dest)
    directory, name = os.path.split(dest)
    if not name or dest == "/" or given.endswith("/"):
        raise OverlayError("dest must name a file, not a directory", layer=layer_id, path=given)
    dir_fd, directory = open_directory(directory, layer_id)
    try:
        target = os.path.join(directory, name)
        home = os.path.realpath(home).rstrip("/") + "/"
        if (target + "/").startswith(home) or home.startswith(target + "/") or _below(dir_fd, home):
            raise OverlayError("refusing to write a diff inside the layer home (%s)" % home.rstrip("/"),
                               layer=layer_id, path=target)
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise OverlayError("dest is a directory; it must name a file", layer=layer_id, path=target)
    except BaseException:
        os.close(dir_fd)
        raise
    return dir_fd, directory, name


def _below(dir_fd, home):
    """Whether the directory dir_fd is home or inside it, by device and inode: a bind-mount alias
    of the home (or of a directory in it) names it by a path no text comparison catches.

    Walks up by ".." from dir_fd, one fd at a time, to the root."""
    try:
        st = os.stat(home)
    except OSError:
        return False
    want = (st.st_dev, st.st_ino)
    fd = os.dup(dir_fd)
    try:
        here = os.fstat(fd)
        while True:
            if (here.st_dev, here.st_ino) == want:
                return True
            up = os.open("..", DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = up
            above = os.fstat(fd)
            if (above.st_dev, above.st_ino) == (here.st_dev, here.st_ino):
                return False  # "/" is its own parent
            here = above
    finally:
        os.close(fd)


def same_content(dir_fd, name, digest):
    """Whether dir_fd/name is a regular file (not followed) whose sha256 is digest.

    O_NONBLOCK: a FIFO planted at dest would otherwise block the open, with the home's lock held.
    """
    f = open_regular(dir_fd, name)
    if f is None:
        return False
    with f:
        h = hashlib.sha256()
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest() == digest


def remove_leftovers(dir_fd):
    """Remove the temp files that killed runs left in dest's directory; returns their names.

    Only root's regular files named like ours go, and only when no live run holds them: every
    writer keeps an flock on its temp file until it is renamed over dest, so a name whose file
    can be locked belongs to a run that is gone (also one of a version that took no lock). Each
    is opened without following or blocking, checked on the fd, and unlinked only while the name
    still is that file.
    """
    removed = []
    with os.scandir(dir_fd) as entries:
        names = [e.name for e in entries if e.name.startswith(TEMP_PREFIX) and e.is_file(follow_symlinks=False)]
    for name in names:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError:
            continue  # gone, or not ours to open
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != 0:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live run's, about to be renamed
            there = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if (there.st_dev, there.st_ino) == (st.st_dev, st.st_ino):
                os.unlink(name, dir_fd=dir_fd)
                removed.append(name)
        except FileNotFoundError:
            continue
        finally:
            os.close(fd)
    return removed


class AtomicDest:
    """with AtomicDest(dir_fd, name) as out: write to out; commit() puts it at dest.

    The data goes to an unnamed file in dest's directory (O_TMPFILE): nobody
    can reach it by name while it is written, and a run killed before commit
    leaves nothing behind. commit() links it under a random temp name and
    renames that over dest, both relative to the directory's fd. A user who
    can write in that directory could still swap the temp name in between, so
    dest is checked afterwards to be this very file (device and inode), and
    the directory to still be the one at its path: a swap is a failure, never
    a success reported for a file that is not there. Filesystems without
    O_TMPFILE get a named temp file made with O_EXCL|O_NOFOLLOW, checked the
    same way. Leaving the block without commit() (an error, a signal) removes
    any temp name. The directory fd stays the caller's.
    """

    def __init__(self, dir_fd, name, directory=None, layer_id=None):
        self.name = name
        self.dir_fd = dir_fd
        self.directory = directory
        self.layer_id = layer_id
        self.tmp = None
        self.file = None

    def __enter__(self):
        try:
            fd = _open_unnamed(self.dir_fd)
            if fd is None:
                self.tmp, fd = open_temp_file(self.dir_fd, TEMP_PREFIX, 0o644)
            self.file = os.fdopen(fd, "wb")
            fcntl.flock(fd, fcntl.LOCK_EX)  # while it is held, remove_leftovers knows the temp name is a live run's
        except BaseException:
            self._drop_temp()
            raise
        return self

    def write(self, data):
        return self.file.write(data)

    def fileno(self):
        return self.file.fileno()

    def restart(self):
        """Empty again (tar_split.restart)."""
        self.file.seek(0)
        self.file.truncate()

    def flush(self):
        self.file.flush()

    def commit(self, keep_existing=False):
        """Put the file at dest (or drop it when keep_existing: dest already has it)."""
        self.file.flush()
        os.fsync(self.file.fileno())
        if keep_existing:
            self.file.close()
            self._drop_temp()
            return
        if self.tmp is None:
            self.tmp = self._link_temp()
        try:
            os.rename(self.tmp, self.name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
        except OSError as e:
            if e.errno in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST):
                self._fail("dest became a directory while the diff was written; it must name a file")
            raise
        self.tmp = None
        self._check_in_place()
        os.fsync(self.dir_fd)
        self.file.close()

    def _link_temp(self):
        """Give the unnamed file a random temp name in dest's directory."""
        source = "/proc/self/fd/%d" % self.file.fileno()
        return create_unique(self.dir_fd, TEMP_PREFIX,
                             lambda name, dir_fd: os.link(source, name, dst_dir_fd=dir_fd, follow_symlinks=True))[0]

    def _check_in_place(self):
        """dest is this file, in the directory that is at its path: else another user swapped one of them."""
        mine = os.fstat(self.file.fileno())
        try:
            there = os.stat(self.name, dir_fd=self.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            there = None
        if there is None or (there.st_dev, there.st_ino) != (mine.st_dev, mine.st_ino):
            self._fail("dest was replaced while the diff was renamed into place (another user can change "
                       "its directory: %s)" % (untrusted_reason(os.fstat(self.dir_fd), {0}, {0}, self.dir_fd) or "it was swapped"))
        if self.directory is not None:
            fd, _resolved = open_directory(self.directory, self.layer_id)
            try:
                now, held = os.fstat(fd), os.fstat(self.dir_fd)
            finally:
                os.close(fd)
            if (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino):
                self._fail("dest's directory was moved or replaced while the diff was written")

    def _fail(self, message):
        path = os.path.join(self.directory, self.name) if self.directory else self.name
        raise OverlayError(message, layer=self.layer_id, path=path)

    def _drop_temp(self):
        if self.tmp is not None:
            try:
                os.unlink(self.tmp, dir_fd=self.dir_fd)
            except FileNotFoundError:
                pass
            self.tmp = None

    def __exit__(self, *exc):
        try:
            if self.file is not None and not self.file.closed:
                self.file.close()
        finally:
            self._drop_temp()
        return False


def _open_unnamed(dir_fd):
    """An O_TMPFILE file in the directory dir_fd, or None where the filesystem has none."""
    try:
        return os.open(".", os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)
    except OSError as e:
        if e.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            return None
        raise
