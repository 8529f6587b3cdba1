# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options a layer is mounted with (nosuid, nodev, noexec), and their careful default.

A writable layer on an image puts the image's files, setuid binaries and device
nodes among them, in a directory of the host. An image is untrusted input, so such
a layer is mounted nosuid,nodev unless the task says otherwise; a layer built from
local tarballs only is the operator's own and is mounted without them. The options
are recorded with the layer's holders, so the boot unit mounts it the same way.
"""

from . import syscalls
from .errors import OverlayError

FLAGS = {"nosuid": syscalls.MS_NOSUID, "nodev": syscalls.MS_NODEV, "noexec": syscalls.MS_NOEXEC}
UNTRUSTED_DEFAULT = ("nodev", "nosuid")


def validate(options, layer_id=None, what="mount_options"):
    """options as a sorted list without repeats; None stays None (the default is wanted)."""
    if options is None:
        return None
    if not isinstance(options, (list, tuple)) or not all(isinstance(o, str) for o in options):
        raise OverlayError("%s must be a list of %s" % (what, ", ".join(sorted(FLAGS))), layer=layer_id)
    unknown = sorted(set(options) - set(FLAGS))
    if unknown:
        raise OverlayError("%s: unknown option %s; the choices are %s"
                           % (what, ", ".join(unknown), ", ".join(sorted(FLAGS))), layer=layer_id)
    return sorted(set(options))


def flags(options):
    """The mount(2) flags of options."""
    value = 0
    for option in options or ():
        value |= FLAGS[option]
    return value


def live(entry):
    """The options of FLAGS a mount (a mountinfo entry) has, sorted."""
    present = set(entry.mount_options.split(","))
    return sorted(o for o in FLAGS if o in present)


def default(writable, from_image):
    """nosuid,nodev for a writable layer whose chain comes from an image; none otherwise."""
    return list(UNTRUSTED_DEFAULT) if writable and from_image else []
