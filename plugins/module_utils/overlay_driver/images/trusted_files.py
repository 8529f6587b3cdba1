# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host's files that decide what is trusted (the signature policy, its keys, registries.d), read safely.

Such a file weakens every pull if someone else can change it, so it is read
only when it is root's (or the task user's) alone: the file and every
directory on its path, from `/` down, owned by root or the user running the
task, none writable by group or others (a world-writable directory with the
sticky bit is the one exception for a directory: nobody else can rename or
remove what root put there). Another user owning any directory on the way
could rename the one below it and put a link to a directory of their
choosing in its place. The directories are walked one at a time from `/`,
following a symbolic link only when root (or that user) made it (a link the
host itself keeps on the way still works), and the file is opened by the last
directory's descriptor without following a link and without blocking (a FIFO
there would hold the task forever), must be a regular file on that
descriptor, and is read whole within a size bound.
"""

import collections
import errno
import os
import stat

from .errors import ImageError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_MAX_LINKS = 40  # as the kernel's own bound on links in one path


def _owned_safely(st, sticky_ok=False):
    """Owned by root or this user, and writable by nobody else (through the mode bits)."""
    if st.st_uid not in (0, os.geteuid()):
        return False
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return sticky_ok and bool(st.st_mode & stat.S_ISVTX)
    return True


def _open_trusted_dir(directory, what, image, path, missing_ok):
    """A descriptor of directory, walked from / one component at a time without following a link, each
    directory on the way checked as _owned_safely (sticky allowed); None when it is missing and missing_ok.

    A symbolic link on the way is followed only when root (or this user) made it, in a directory checked
    already: a link the host keeps (`/etc/alternatives` style) works, one another user planted in a sticky
    directory does not, and the walk goes on from the link's target with the same checks."""
    parts = collections.deque(p for p in directory.split("/") if p)
    fd = os.open("/", _DIR_FLAGS)
    walked, links = "/", 0
    try:
        while True:
            if not _owned_safely(os.fstat(fd), sticky_ok=True):
                raise ImageError("%s is in a directory another user can write or owns (%s): it is not trusted"
                                 % (what, walked), image=image, path=path)
            if not parts:
                return fd
            part = parts.popleft()
            try:
                next_fd = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as e:
                # O_NOFOLLOW with O_DIRECTORY fails on a link with ELOOP or ENOTDIR
                if e.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(fd, part):
                    target = _trusted_link(fd, part, os.path.join(walked, part), what, image, path)
                    links += 1
                    if links > _MAX_LINKS:
                        raise ImageError("the directory of %s has too many symbolic links on its path" % what,
                                         image=image, path=path)
                    parts.extendleft(reversed([p for p in os.path.normpath(os.path.join(walked, target)).split("/")
                                               if p]))
                    os.close(fd)
                    fd = os.open("/", _DIR_FLAGS)
                    walked = "/"
                    continue
                if missing_ok and e.errno in (errno.ENOENT, errno.ENOTDIR):
                    os.close(fd)
                    return None
                raise ImageError("cannot open the directory of %s: %s" % (what, e.strerror), image=image, path=path)
            os.close(fd)
            fd = next_fd
            walked = os.path.join(walked, part)
    except BaseException:
        os.close(fd)
        raise


def _is_link(dir_fd, name):
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _trusted_link(dir_fd, name, shown, what, image, path):
    """The target of the symbolic link name (in the trusted dir_fd), when root or this user made it."""
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if st.st_uid not in (0, os.geteuid()):
        raise ImageError("the path of %s goes through %s, a symbolic link owned by uid %d: it is not trusted"
                         % (what, shown, st.st_uid), image=image, path=path)
    return os.readlink(name, dir_fd=dir_fd)


def read_trusted(path, what, limit, image=None, missing_ok=False):
    """The bytes of the file at path (absolute), or None when it is missing and missing_ok.

    what names the file in messages ("the signature policy", "the key file").
    """
    if not isinstance(path, str) or not os.path.isabs(path):
        raise ImageError("%s must be an absolute path, not %r" % (what, path), image=image)
    directory, name = os.path.split(os.path.normpath(path))
    dir_fd = _open_trusted_dir(directory, what, image, path, missing_ok)
    if dir_fd is None:
        return None
    try:
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
    """The names in the directory at path (sorted), or [] when it is missing; the directory must be trusted,
    and so must every directory above it."""
    parent, name = os.path.split(os.path.normpath(path))
    parent_fd = _open_trusted_dir(parent, what, image, path, missing_ok=True)
    if parent_fd is None:
        return []
    try:
        fd = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=parent_fd)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return []
        if e.errno == errno.ELOOP:
            raise ImageError("%s is a symbolic link, which is not followed" % what, image=image, path=path)
        raise ImageError("cannot read %s: %s" % (what, e.strerror), image=image, path=path)
    finally:
        os.close(parent_fd)
    try:
        if not _owned_safely(os.fstat(fd)):
            raise ImageError("%s is owned or writable by another user than root: it is not trusted" % what,
                             image=image, path=path)
        return sorted(os.listdir(fd))
    finally:
        os.close(fd)
