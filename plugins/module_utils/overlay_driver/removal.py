# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""rm -rf that stays on the tree it was given.

Removal runs as root on directories other users may have touched, so it
works on directory fds opened O_NOFOLLOW, never follows a symlink, and never
descends into another filesystem or a mount point: a bind mount inside a
layer would otherwise have its source emptied. It is iterative because deep
trees overflow a recursive walk (shutil.rmtree on 3.11), and keeps a bounded
number of directories open (walk.DirStack) because they run a module out of
descriptors: whatever depth the applier accepts, removal removes.
"""

import os
import stat

from .errors import OverlayError
from .mounts import mounts_below
from .walk import DIR_FLAGS, DirStack


def fd_path(fd):
    """The path the kernel has for an open directory fd."""
    return os.readlink("/proc/self/fd/%d" % fd)


def refuse_mounts_below(path, layer=None, what="remove", entries=None):
    """Raise naming the first mount found at or below path (entries: mountinfo as the caller read it).

    One on path itself counts: opening path enters it, so the walk below would empty what is mounted there.
    """
    below = mounts_below(path, entries, including_path=True)
    if below:
        raise OverlayError("%s is mounted inside (%s from %s); refusing to %s it"
                           % (below[0].mount_point, below[0].fstype, below[0].source, what),
                           layer=layer, path=path)


def remove_tree_at(dir_fd, name, layer=None, entries=None):
    """Remove dir_fd/name and everything below it; a missing name is no error.

    entries: mountinfo as the caller read it (an applier removing many directories reads it once).
    """
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=dir_fd)
        return
    top = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    try:
        path = fd_path(top)
        refuse_mounts_below(path, layer, entries=entries)
        _empty(top, os.fstat(top).st_dev, path, layer)
    finally:
        os.close(top)
    os.rmdir(name, dir_fd=dir_fd)


def remove_tree(path, layer=None):
    """remove_tree_at for a path whose parent is trusted (under the layer home)."""
    parent, name = os.path.split(os.path.abspath(path))
    pfd = os.open(parent or "/", DIR_FLAGS)
    try:
        remove_tree_at(pfd, name, layer)
    finally:
        os.close(pfd)


def _empty(top, dev, path, layer):
    """Remove everything below the directory top, depth first, with a bounded number of fds open."""
    dirs = DirStack(top)
    try:
        while True:
            subdir = _unlink_until_a_directory(dirs.top)
            if subdir is not None:
                if dirs.push(subdir).st_dev != dev:
                    raise OverlayError("%s is on another filesystem; refusing to remove across it"
                                       % subdir, layer=layer, path=path)
                continue
            if not dirs.depth:
                return
            name = dirs.pop()
            os.rmdir(name, dir_fd=dirs.top)
    finally:
        dirs.close()


def _unlink_until_a_directory(fd):
    """Unlink the non-directories of fd until its first directory, whose name is returned (None: it
    is empty now)."""
    with os.scandir(fd) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                return entry.name
            os.unlink(entry.name, dir_fd=fd)
    return None
