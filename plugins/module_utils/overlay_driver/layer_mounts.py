# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whose mount is at a layer's merged/: the layer's own, or a foreign one.

A layer's own mount is what Driver.get makes there: the overlay of its upper/
on its lower layer's root/, or for a root layer the read-only bind of its
root/. Anything else (a tmpfs, a writable bind of root/, a mount stacked over
the own one) is foreign: never unmounted as the layer's, and named in the
error so that the operator sees what it is.

An overlay the driver made is recognised by its source, the token recorded
in root's .strata (mount_records.py): its options name /proc/self/fd paths.
One made before overlays were mounted by fd is recognised by its upperdir and
lowerdir, as then, and only while it is writable: a read-only overlay of the
layer's own directories is something mounted by hand.
"""

import os
import stat

from . import mounts
from .mount_records import is_token
from .errors import OverlayError


class LayerMount:
    """One layer's merged/. root_layer: the layer has root/; own_lower: returns the overlay's own
    lowerdir (None when it cannot be read), asked only when an overlay's upperdir is the layer's."""

    def __init__(self, layer_id, paths, root_layer, own_lower, own_source=lambda: None):
        """own_source: returns the source token recorded for the layer's mount (None when none)."""
        self.layer_id = layer_id
        self.paths = paths
        self.root_layer = root_layer
        self.own_lower = own_lower
        self.own_source = own_source

    def owns(self, entry, entries=None, covered=False):
        """Whether a mount at merged/ is this layer's own (not something mounted over it).

        A writable bind of root/ is not: it is what the read-only one prevents.
        covered: entry is below another mount at merged/, so its inode cannot be seen there.
        """
        if self.root_layer:
            return (entry.fstype != "overlay" and mounts.mount_flags(entry).get("ro") is True
                    and mounts.is_bind_of(entry, self.paths.root, entries, covered))
        if entry.fstype != "overlay":
            return False
        if is_token(entry.source):
            recorded = self.own_source()
            return recorded is not None and entry.source == recorded
        if mounts.mount_flags(entry).get("ro") is True:
            return False
        options = entry.options_dict()
        upper, lower = options.get("upperdir"), options.get("lowerdir")
        if not (isinstance(lower, str) and isinstance(upper, str) and _same_path(upper, self.paths.upper)):
            return False
        own_lower = self.own_lower()
        return own_lower is not None and _same_path(lower, own_lower)

    def foreign_error(self, entry, entries=None):
        """The error for a mount at merged/ that is not the layer's own, saying what it is when that is known.

        A writable bind of the layer's own root/ (its read-only bind remounted
        read-write, or one planted there) exposes files shared, as hardlinks,
        with the layers built on it: the operator must see that, not only "tmpfs".
        """
        merged = self.paths.merged
        cause = "a different mount (%s from %s) is at merged/" % (entry.fstype, entry.source)
        entries = mounts.read_mountinfo() if entries is None else entries
        below = [e for e in mounts.mounts_at(merged, entries) if e.mount_id != entry.mount_id]
        if any(self.owns(e, entries, covered=True) for e in below):
            return OverlayError(cause + ", mounted over the layer's own mount and hiding it; unmount it (umount %s) "
                                "and strata sees its own mount again" % merged, layer=self.layer_id, path=merged)
        if (self.root_layer and entry.fstype != "overlay" and mounts.mount_flags(entry).get("ro") is not True
                and mounts.is_bind_of(entry, self.paths.root, entries)):
            cause += (": a writable bind mount of this layer's own root/ (remounted read-write, or mounted there "
                      "by hand). Writes through it change this image layer and the layers built on it; unmount it "
                      "(umount %s) and mount the layer again, which makes it read-only" % merged)
        return OverlayError(cause, layer=self.layer_id, path=merged)


def _same_path(a, b):
    """Whether two paths name one directory: by device and inode, so that the layer's directories
    named through a bind-mount alias of the home are its own, and never by following a symlink
    planted at the last name."""
    try:
        sa, sb = os.stat(a, follow_symlinks=False), os.stat(b, follow_symlinks=False)
    except OSError:
        return False
    return stat.S_ISDIR(sa.st_mode) and (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)
