# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The small files the home keeps (layer records, maps.json, the image config cache), by directory fd.

They are read without following a symlink or blocking on a FIFO, and
replaced whole: a reader sees the old file or the new one, never a torn one,
and never a file someone planted in its place.
"""

import errno
import json
import os
import stat

from . import faults
from .layout import open_temp_file


def open_regular(dir_fd, name):
    """dir_fd/name opened for reading when it is a regular file, else None (missing, a symlink, a FIFO, ...).

    Never follows a symlink, and O_NONBLOCK: a FIFO planted there would otherwise block the open.
    """
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # before fdopen, which refuses a directory with IsADirectoryError
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")


def remove_entry(dir_fd, name):
    """Remove dir_fd/name whatever it is (a file, a symlink, a FIFO, an empty directory); False when missing.

    For bookkeeping names in a directory an earlier version gave the remapped root: what that user put there
    in place of root's file (a directory, a FIFO) must neither fail the run with a bare errno nor block it. A
    directory that is not empty is renamed aside (.tmp-aside-<random>, which no reader takes for a record), never
    walked: that user may still fill it by a descriptor it kept. Other OSErrors are left to the caller to name.
    """
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    try:
        if stat.S_ISDIR(st.st_mode):
            try:
                os.rmdir(name, dir_fd=dir_fd)
            except OSError as e:
                if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                os.rename(name, ".tmp-aside-" + os.urandom(8).hex(), src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        else:
            os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    return True


def require_roots_own(st):
    """For read_json: a file root owns and only root can write. Root writes every file of the home's
    bookkeeping (0600); one of anybody else's, or one others can write, was never root's to believe."""
    if st.st_uid != 0 or st.st_mode & 0o022:
        raise ValueError("it must be root's and writable by root only (it is %o, uid %d); if you trust its "
                         "contents, chown it to root and chmod it 0600" % (stat.S_IMODE(st.st_mode), st.st_uid))


def read_roots_own(dir_fd, name, limit):
    """Up to limit + 1 bytes of dir_fd/name when it is root's own regular file (require_roots_own), else None:
    for entries that are hints or compared, where one not root's counts as missing rather than as an error."""
    f = open_regular(dir_fd, name)
    if f is None:
        return None
    with f:
        try:
            require_roots_own(os.fstat(f.fileno()))
        except ValueError:
            return None
        return f.read(limit + 1)


def read_json(dir_fd, name, check=None):
    """Parsed JSON of dir_fd/name, None when missing; ValueError when it is not a regular file or not JSON.

    check(stat of the open file) may raise ValueError too: whose file is believed.
    """
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    try:  # looked at before fdopen, which refuses a directory without closing the fd
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("not a regular file")
        if check is not None:
            check(st)
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        return json.loads(f.read().decode("utf-8"))


def write_atomic(dir_fd, name, payload, mode=0o600):
    """name in dir_fd replaced whole: temp (O_EXCL|O_NOFOLLOW), fsync, rename, fsync the directory.

    A directory under name (what the remapped root put there, in a .strata an earlier version gave it) would
    fail the rename; it is set aside (remove_entry) and the rename tried once more.
    """
    tmp, fd = open_temp_file(dir_fd, ".tmp-", mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        faults.point("record.written")
        try:
            os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except IsADirectoryError:
            remove_entry(dir_fd, name)
            os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise
    os.fsync(dir_fd)
