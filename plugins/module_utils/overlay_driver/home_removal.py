# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Removing a whole layer home: every layer, the .strata bookkeeping and the directory itself.

Tearing a host down to nothing needs one step that takes the home away, not a
list of layers built by hand. It is refused while anything in the home is in
use: a layer with holders, a layer mounted (also without holders), or any other
mount inside the home. The home is opened as every writer opens it, so the
"is this the right home?" guard (only layer directories and .strata in it)
refuses a mistyped path such as /etc before anything is removed. Everything is
removed by directory fd, never crossing a mount; the home's own directory is
removed from its parent after checking that the name still is that directory.
"""

import os
import stat

from . import mounts
from .errors import OverlayError
from .layout import LINK_DIR, STATE_DIR
from .removal import remove_tree_at
from .walk import DIR_FLAGS


def in_use(store, entries):
    """What keeps the home: one string per held or mounted layer, and per other mount inside it."""
    held, foreign = _in_use(store, entries)
    return held + foreign


def _in_use(store, entries):
    """(held or mounted by strata, mounts strata did not make): the first go with overlay_mount
    state=unmounted, the others only by unmounting them, which strata never does for a mount not its own."""
    held, foreign = [], []
    for state in store.layers():
        if state["holders"]:
            held.append("layer %s is held by %s" % (state["id"], ", ".join(state["holders"])))
        elif state["mounted"]:
            held.append("layer %s is mounted" % state["id"])
        elif state.get("foreign_mount"):
            error = store.driver.foreign_mount_error(state["id"], store.driver.mount_entry(state["id"], entries),
                                                     entries)
            merged = store.driver.layout.layer(state["id"]).merged
            text = error.cause
            if "umount %s" % merged not in text:
                text += ", which strata did not mount and does not unmount; unmount it (umount %s)" % merged
            foreign.append("layer %s: %s" % (state["id"], text))
    if not held and not foreign:
        for entry in mounts.mounts_below(store.home, entries):
            foreign.append("%s is mounted inside it, which strata did not mount and does not unmount; unmount it "
                           "(umount %s)" % (entry.mount_point, entry.mount_point))
    return held, foreign


def refuse_in_use(store, entries):
    held, foreign = _in_use(store, entries)
    if held:
        raise OverlayError("the layer home is still in use: %s; release the holders first (overlay_mount "
                           "state=unmounted, or the unmount playbook with overlay_force)" % "; ".join(held + foreign),
                           path=store.home)
    if foreign:
        raise OverlayError("the layer home is still in use: %s" % "; ".join(foreign), path=store.home)


def remove_home(store):
    """Remove every layer, .strata and the home itself; the layer ids removed.

    The caller holds the store's lock (its file goes with .strata; a run waiting for it then finds
    the home gone) and closes the store afterwards.
    """
    entries = mounts.read_mountinfo()
    refuse_in_use(store, entries)
    dirs = store.driver.dirs
    removed = []
    for layer_id in store.driver.layer_ids():
        remove_tree_at(dirs.fd, layer_id, layer=layer_id, entries=entries)
        removed.append(layer_id)
    for name in [LINK_DIR] + list(dirs.link_dirs):  # the overlay2 layout's short links (l/, l/ renamed)
        if _is_real_dir_at(dirs.fd, name):
            remove_tree_at(dirs.fd, name, entries=entries)
    remove_tree_at(dirs.fd, STATE_DIR, entries=entries)
    leftovers = sorted(os.listdir(dirs.fd))
    if leftovers:  # written by something else since the home was checked: not ours to remove
        raise OverlayError("the layer home holds %s, which appeared while it was removed; left in place"
                           % ", ".join(leftovers), path=store.home)
    _remove_directory(dirs.fd, store.home)
    return removed


def _is_real_dir_at(dir_fd, name):
    try:
        return stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return False


def _remove_directory(fd, path):
    """rmdir path, once its parent's entry is checked to be the directory fd is (not one put in its place)."""
    parent, name = os.path.split(path.rstrip("/"))
    pfd = os.open(parent or "/", DIR_FLAGS)
    try:
        st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        mine = os.fstat(fd)
        if not stat.S_ISDIR(st.st_mode) or (st.st_dev, st.st_ino) != (mine.st_dev, mine.st_ino):
            raise OverlayError("the layer home was replaced while it was removed; left in place", path=path)
        os.rmdir(name, dir_fd=pfd)
    finally:
        os.close(pfd)
