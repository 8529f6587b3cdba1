# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry of drivers, one per on-disk layout, and which one a home is in.

As moby's graphdriver registry: every driver registers under the name of its
layout, and a home is opened with the driver its layout names. The layout is
a property of the home, like its id maps: recorded in root's .strata when the
home is first written; for a home without that record (older versions, or
written by Docker) it is read from the layer directories; only a new home
takes the layout a call names. A call naming another layout than the home's
is refused before anything is written.
"""

import os
import stat

from .errors import OverlayError
from .home import HomeDirs, home_entries, is_layer_name
from .layout import DEFAULT_LAYOUT, LAYOUTS, STATE_DIR
from .walk import DIR_FLAGS


def _seed_driver():
    from .driver import Driver  # pylint: disable=import-outside-toplevel
    return Driver


def _overlay2_driver():
    from .overlay2_driver import Overlay2Driver  # pylint: disable=import-outside-toplevel
    return Overlay2Driver


# The layouts this version reads and writes, each with what imports its driver: a run loads the driver of
# the home it opens only (a module run under Ansible compiles every module it imports).
_DRIVERS = {"overlay": _seed_driver, "overlay2": _overlay2_driver}


def available_layouts():
    return sorted(_DRIVERS)


def register(driver_class):
    """A driver for its class's LAYOUT."""
    if driver_class.LAYOUT not in LAYOUTS:
        raise ValueError("unknown layout %r" % driver_class.LAYOUT)
    _DRIVERS[driver_class.LAYOUT] = lambda: driver_class


# What a layer directory of each layout holds that the other's never does: overlay2 keeps diff/ and
# its short link name (link); the seed's layout root/ (a base or applied layer), or upper/ and lower-id.
def _layout_of_entries(inside):
    if {"diff", "link"} <= inside:
        return "overlay2"
    if "root" in inside or {"upper", "lower-id"} <= inside:
        return "overlay"
    return None


def layout_on_disk(dirs):
    """The layout the home's directories are in (<home>/l/ or a layer's entries), None when they say nothing.

    Everything is opened by the home's fd without following a link; the first
    directory that tells decides (the driver refuses layer directories not
    shaped as its own).
    """
    if dirs.fd is None:
        return None
    for name, st in home_entries(dirs.fd):
        if not stat.S_ISDIR(st.st_mode):
            continue
        if name == "l":
            return "overlay2"
        if not is_layer_name(name):
            continue
        try:
            fd = os.open(name, DIR_FLAGS, dir_fd=dirs.fd)
        except OSError:
            continue
        try:
            found = _layout_of_entries(set(os.listdir(fd)))
        finally:
            os.close(fd)
        if found:
            return found
    return None


def choose_layout(dirs, given=None):
    """The home's layout: the recorded one, else what its directories are, else given (a new home).

    given is the caller's layout option, None when left out. A home whose
    layout differs from the given one is refused, as are layouts this version
    has no driver for.
    """
    if given is not None and given not in LAYOUTS:
        raise OverlayError("unknown layout %r: it must be one of %s" % (given, ", ".join(LAYOUTS)), path=dirs.path)
    recorded = dirs.recorded_layout()
    if recorded is not None:
        if recorded not in LAYOUTS:
            raise OverlayError("the home's recorded layout %r is not one of %s" % (recorded, ", ".join(LAYOUTS)),
                               path=os.path.join(dirs.path, STATE_DIR))
        found, how = recorded, "was set up with"
    else:
        found, how = layout_on_disk(dirs), "holds layers in"
    if found is not None and given is not None and found != given:
        raise OverlayError("the home %s the %s layout; this call passes layout %s. A home keeps the layout it "
                           "was first written in: leave layout out to use it" % (how, found, given), path=dirs.path)
    name = found or given or DEFAULT_LAYOUT
    if name not in _DRIVERS:
        raise OverlayError("the %s layout cannot be read or written by this version of strata.overlay (it "
                           "handles %s)" % (name, ", ".join(available_layouts())), path=dirs.path)
    return name


def open_driver(home, layout=None, uid_maps=None, gid_maps=None, **options):
    """The driver of the home's layout (choose_layout), opened on the home; options as Driver takes them."""
    dirs = HomeDirs(home)
    try:
        driver_class = _DRIVERS[choose_layout(dirs, layout)]()
    except BaseException:
        dirs.close()
        raise
    return driver_class(home, uid_maps, gid_maps, dirs=dirs, **options)


__all__ = ["DEFAULT_LAYOUT", "LAYOUTS", "available_layouts", "choose_layout", "layout_on_disk", "open_driver",
           "register"]
