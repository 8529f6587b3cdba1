# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What is wrong with one layer directory, said in a sentence, so that the damage stays that layer's problem.

A layer whose root/ and upper/ are both gone (a half-finished hand clean-up,
a disk error), or an overlay whose lower-id cannot be read or names no root
layer (itself, a missing layer, another overlay), cannot be
mounted, applied to or built on. Reporting it as a `problem` of that layer,
instead of raising while listing the home, keeps every other layer usable
and lets `state=absent force=true` remove it.
"""

import os
import stat

from .errors import OverlayError
from .layout import LAYER_ENTRIES, LOWER_ID, MERGED, ROOT, UPPER, WORK
from .walk import DIR_FLAGS


def _is_dir(path):
    """A real directory, not a symlink to one."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


_DIRS = (ROOT, UPPER, WORK, MERGED)


def entries_problem(dirs_fd, layer_id):
    """None when the layer's directory holds only a layer's names, each of its type, else what is off.

    Under id maps the remapped root owns the layer directory, and what runs in
    the layer acts as it: a name it adds or an entry it swaps for a symlink is
    this layer's damage. Read by fd, never following a link.
    """
    try:
        fd = os.open(layer_id, DIR_FLAGS, dir_fd=dirs_fd)
    except OSError:
        return None  # gone, or swapped itself: the home's checks and is_layer_dir say it
    try:
        for name in sorted(os.listdir(fd)):
            if name not in LAYER_ENTRIES:
                return "the layer directory holds %r, which is not part of a layer" % name
            try:
                mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
            except FileNotFoundError:
                continue
            if name in _DIRS and not stat.S_ISDIR(mode):
                return "its %s is a symlink or not a directory" % name
            if name == LOWER_ID and not stat.S_ISREG(mode):
                return "its %s is a symlink or not a regular file" % name
    finally:
        os.close(fd)
    return None


def structural_problem(driver, layer_id):
    """None for a layer the driver can use, else why it cannot (an entry not a layer's or of the wrong type,
    root/ and upper/ missing, lower-id unreadable or naming no root layer)."""
    paths = driver.layout.layer(layer_id)
    problem = entries_problem(driver.dirs.fd, layer_id)
    if problem:
        return problem
    if _is_dir(paths.root):
        return None
    if not _is_dir(paths.upper):
        return "the layer directory has neither %s/ nor %s/ (damaged or half removed)" % (ROOT, UPPER)
    try:
        lower = driver.lower_id(layer_id)
    except OverlayError as e:
        return "an overlay layer whose %s is unusable: %s" % (LOWER_ID, e.cause)
    problem = lower_problem(driver, layer_id, lower)
    if problem:
        return "an overlay layer whose %s is unusable: %s" % (LOWER_ID, problem)
    return None


def lower_problem(driver, layer_id, lower):
    """None when lower (what layer_id's lower-id says) can be below an overlay of this layout, else why not.

    An overlay of the seed's layout is one root layer's root/ with the layer's
    upper/ above it: a lower-id naming the layer itself, a layer that is not
    there, or another overlay (two overlays naming each other among them) is
    damage of this layer, never a child of the layer it names, so that layer
    stays removable and this one is refused with the way out.
    """
    if lower == layer_id:
        return "it names the layer itself"
    if not driver.exists(lower):
        return "it names %s, which is not a layer of this home" % lower
    if not _is_dir(driver.layout.layer(lower).root):
        return "it names %s, which is not a root layer (an overlay's lower must be one)" % lower
    return None
