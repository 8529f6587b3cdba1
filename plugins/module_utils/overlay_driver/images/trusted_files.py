# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host's files that decide what is trusted (the signature policy, its keys, registries.d), read safely.

Such a file weakens every pull if someone else can change it, so it is read
only when it is root's (or the task user's) alone: the file and the directory
holding it owned by root or the user running the task, neither writable by
group or others (a world-writable directory with the sticky bit is the one
exception for the directory). The file is opened by the directory's
descriptor without following a symbolic link and without blocking (a FIFO
there would hold the task forever), must be a regular file on that
descriptor, and is read whole within a size bound.
"""

import errno
import os
import stat

from .errors import ImageError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _owned_safely(st, sticky_ok=False):
    """Owned by root or this user, and writable by nobody else (through the mode bits)."""
    if st.st_uid not in (0, os.geteuid()):
        return False
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return sticky_ok and bool(st.st_mode & stat.S_ISVTX)
    return True


def read_trusted(path, what, limit, image=None, missing_ok=False):
    """The bytes of the file at path (absolute), or None when it is missing and missing_ok.

    what names the file in messages ("the signature policy", "the key file").
    """
    if not isinstance(path, str) or not os.path.isabs(path):
        raise ImageError("%s must be an absolute path, not %r" % (what, path), image=image)
    directory, name = os.path.split(os.path.normpath(path))
    try:
        dir_fd = os.open(directory, _DIR_FLAGS)
    except OSError as e:
        if missing_ok and e.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise ImageError("cannot open the directory of %s: %s" % (what, e.strerror), image=image, path=path)
    try:
        if not _owned_safely(os.fstat(dir_fd), sticky_ok=True):
            raise ImageError("%s is in a directory another user can write or owns (%s): it is not trusted"
                             % (what, directory), image=image, path=path)
        try:
            fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
        except OSError as e:
            if missing_ok and e.errno == errno.ENOENT:
                return None
            if e.errno == errno.ELOOP:
                raise ImageError("%s is a symbolic link, which is not followed" % what, image=image, path=path)
            raise ImageError("cannot read %s: %s" % (what, e.strerror), image=image, path=path)
    finally:
        os.close(dir_fd)
    # the type is checked on the fd before fdopen, which raises EISDIR for a directory (and leaks the fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ImageError("%s is not a regular file" % what, image=image, path=path)
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as f:
        if not _owned_safely(st):
            raise ImageError("%s is owned or writable by another user than root: it is not trusted" % what,
                             image=image, path=path)
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ImageError("%s is larger than %d bytes" % (what, limit), image=image, path=path)
    return data


def list_dir(path, what, image=None):
    """The names in the directory at path (sorted), or [] when it is missing; the directory must be trusted."""
    try:
        fd = os.open(path, _DIR_FLAGS | os.O_NOFOLLOW)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return []
        if e.errno == errno.ELOOP:
            raise ImageError("%s is a symbolic link, which is not followed" % what, image=image, path=path)
        raise ImageError("cannot read %s: %s" % (what, e.strerror), image=image, path=path)
    try:
        if not _owned_safely(os.fstat(fd)):
            raise ImageError("%s is owned or writable by another user than root: it is not trusted" % what,
                             image=image, path=path)
        return sorted(os.listdir(fd))
    finally:
        os.close(fd)
