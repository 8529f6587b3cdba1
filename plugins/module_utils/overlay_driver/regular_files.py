# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Opening a file that root reads whole (a remote_src tarball, an image archive) as a regular file only.

A FIFO put where the file was would block root's open() for ever, while it
holds the home's lock; a device would be opened with its side effects. So the
path is first opened as O_PATH (which opens nothing), the type is checked on
that fd, and only a regular file is then opened for reading, through the fd:
the inode checked is the inode read.
"""

import errno
import os
import stat

from .syscalls import O_PATH

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def kind_of(mode):
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def require_regular(fd, path):
    """fstat of fd when it is a regular file; else OSError(EINVAL) saying what it is."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise OSError(errno.EINVAL, "it is %s, not a regular file" % kind_of(st.st_mode), path)
    return st


def open_regular(path):
    """A binary file object of path, which must be a regular file (a symlink to one is followed)."""
    where = os.open(path, O_PATH | os.O_CLOEXEC)
    try:
        require_regular(where, path)
        fd = os.open("/proc/self/fd/%d" % where, os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(where)
    return os.fdopen(fd, "rb")
