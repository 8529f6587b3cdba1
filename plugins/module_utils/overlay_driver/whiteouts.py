# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The two conventions for a deleted or hidden name: the image layer's and overlay's.

A layer tarball says '.wh.<name>' for a deleted name and '.wh..wh..opq' for
a directory whose lower contents are hidden (the aufs convention the image
spec kept); overlay says the same on disk with a 0/0 character device and
trusted.overlay.opaque=y. The applier reads the first, the exporter writes
it, the overlay view reads the second: they must agree on every spelling.
"""

import stat

PREFIX = ".wh."
META_PREFIX = ".wh..wh."
OPAQUE = ".wh..wh..opq"

OPAQUE_XATTR = "trusted.overlay.opaque"

# Overlay's own metadata never comes from an archive and never goes into one:
# a forged redirect or metacopy xattr would change what the mount shows.
OVERLAY_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")


def whiteout_name(base):
    """The tarball entry name that deletes base."""
    return PREFIX + base


def is_overlay_whiteout(st):
    """Overlay's whiteout on disk: a character device 0/0."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
