# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Free space on the home's filesystem, checked before a layer is written.

A layer needs at least the bytes of its (compressed) tarball once applied,
and a registry blob needs them again while it waits in tmp. Refusing up
front, with both numbers, beats an ENOSPC half-way through a large layer
that also starves everything else on that filesystem while it lasts.
"""

import os
import re

from .errors import OverlayError

# Size limits for the modules' max_layer_size / max_image_size options: uncompressed bytes.
DEFAULT_MAX_LAYER_SIZE = 64 << 30
DEFAULT_MAX_IMAGE_SIZE = 256 << 30


def free_bytes(path):
    """Bytes an unprivileged writer could still use on path's filesystem; None when path cannot be read."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def require_free(path, needed, what, layer=None):
    """Refuse when path's filesystem has fewer than `needed` bytes available (a missing path is not checked:
    the writer that creates it fails clearly if it cannot)."""
    free = free_bytes(path)
    if needed and free is not None and needed > free:
        raise OverlayError("not enough free space: %s needs at least %d bytes, the home's filesystem has %d free"
                           % (what, needed, free), layer=layer, path=path)


# A human size as Ansible's human_to_bytes reads it (K, M, G... are powers of 1024, "B" optional), plus the
# IEC spelling (KiB, MiB, GiB...) people also write: "10M", "64G", "1.5GiB", "512 KB". A bare number is bytes.
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:([KMGTPEZY])(?:i?B)?|(B))?\s*$", re.IGNORECASE)
_POWERS = "KMGTPEZY"


def parse_size(value, name):
    """A size option's value in bytes: an int, a digit string, or a human size ("10M", "1.5GiB"); a fraction
    of a byte rounds down. Anything else is refused naming the option, before anything is touched."""
    if isinstance(value, bool):
        value = None
    if isinstance(value, int):
        return value
    match = _SIZE.match(value) if isinstance(value, str) else None
    # imported here: only a size given as text needs it, and decimal is a noticeable part of a short run's start
    from decimal import Decimal, InvalidOperation  # pylint: disable=import-outside-toplevel

    if match is None:
        raise OverlayError("%s must be a number of bytes or a size such as 10M, 64G or 1.5GiB, not %r" % (name, value))
    try:
        number = Decimal(match.group(1))
    except InvalidOperation:
        raise OverlayError("%s must be a number of bytes or a size such as 10M, 64G or 1.5GiB, not %r" % (name, value))
    unit = (match.group(2) or "").upper()
    return int(number * (1024 ** (_POWERS.index(unit) + 1) if unit else 1))


def check_size_limit(value, name):
    """A size limit option as given: a positive number of bytes, or a human size that comes to one."""
    size = parse_size(value, name)
    if size <= 0:
        raise OverlayError("%s must be a positive number of bytes, not %r" % (name, value))
    return size


def no_space_advice(limits):
    """What to do when a layer filled the filesystem while it was applied. The free-space check before the
    apply sees only the (compressed) tarball, so a layer that unpacks far past it is bounded only by the
    size limit option that set limits.max_bytes (max_layer_size, or max_image_size for an image): name it."""
    name = getattr(limits, "max_bytes_name", None) or "max_layer_size"
    now = getattr(limits, "max_bytes", None)
    return ("; the layer unpacks to more than the filesystem has free (the free-space check before the apply sees "
            "only the compressed tarball): free space, or set %s%s below the free space so such a layer is refused "
            "before it fills the filesystem" % (name, " (now %d bytes uncompressed)" % now if now else ""))
