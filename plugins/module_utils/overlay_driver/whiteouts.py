# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The two conventions for a deleted or hidden name: the image layer's and overlay's.

A layer tarball says '.wh.<name>' for a deleted name and '.wh..wh..opq' for
a directory whose lower contents are hidden (the aufs convention the image
spec kept); overlay says the same on disk with a 0/0 character device and
trusted.overlay.opaque=y. The applier reads the first, the exporter writes
it, the overlay view reads the second: they must agree on every spelling.

The applier writes a tarball's whiteouts in one of two formats (moby's
archive.WhiteoutFormat): DELETE applies them to a whole tree (the seed's
layout, where a layer holds its parent's files too), OVERLAY writes them in
overlay's form into a layer's own directory (Docker's overlay2 diff/), where
overlay hides the lower layers' names at mount time.
"""

import os
import stat

PREFIX = ".wh."
META_PREFIX = ".wh..wh."
OPAQUE = ".wh..wh..opq"

OPAQUE_XATTR = "trusted.overlay.opaque"

# the applier's whiteout formats
DELETE = "delete"
OVERLAY = "overlay"
FORMATS = (DELETE, OVERLAY)

# Overlay's own metadata never comes from an archive and never goes into one:
# a forged redirect or metacopy xattr would change what the mount shows.
OVERLAY_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")


def whiteout_name(base):
    """The tarball entry name that deletes base."""
    return PREFIX + base


def is_overlay_whiteout(st):
    """Overlay's whiteout on disk: a character device 0/0."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def make_overlay_whiteout(dir_fd, name, uid, gid):
    """name in dir_fd made overlay's whiteout: a character device 0/0 with no permission bits, as
    Docker's overlay converter makes it (mknod S_IFCHR 0), owned by uid:gid. dir_fd may be O_PATH."""
    os.mknod(name, stat.S_IFCHR, os.makedev(0, 0), dir_fd=dir_fd)
    os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)


def mark_opaque(dir_fd):
    """The directory open as dir_fd (O_PATH is enough) made opaque: overlay shows none of the lower
    layers' entries in it. setxattr has no dir_fd form; the fd's /proc path names that directory."""
    os.setxattr("/proc/self/fd/%d" % dir_fd, OPAQUE_XATTR, b"y")
