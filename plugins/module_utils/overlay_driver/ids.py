# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Layer ids and uid/gid maps (the seed's idtools.IDMap).

Ids become path components under the layer home, so they are checked before
anything touches the disk; maps decide who owns what the store writes.
"""

import re

from .errors import OverlayError

LAYER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
_LAYER_ID = re.compile(LAYER_ID_PATTERN)

# Names the pattern allows that a layout keeps for itself under the home: the overlay2 layout
# (Docker's) holds its short links in <home>/l/, so no layer may be called that in either layout,
# or a home could not change hands between them.
RESERVED_IDS = {"l": "the overlay2 layout keeps its short links in <home>/l"}


def validate_layer_id(layer_id, what="layer id"):
    """Reject anything that is not a single, plain path component, or that a layout reserves."""
    if not isinstance(layer_id, str) or not _LAYER_ID.match(layer_id) or layer_id.endswith("\n"):
        raise OverlayError("invalid %s %r: it must match %s" % (what, layer_id, LAYER_ID_PATTERN))
    if layer_id in RESERVED_IDS:
        raise OverlayError("invalid %s %r: the name is reserved (%s)" % (what, layer_id, RESERVED_IDS[layer_id]))
    return layer_id


def validate_diff_id(diff_id, layer_id=None):
    """A diff_id is sha256:<64 lowercase hex digits>, the digest of the uncompressed tarball."""
    if (not isinstance(diff_id, str) or not diff_id.startswith("sha256:") or len(diff_id) != 71
            or any(c not in "0123456789abcdef" for c in diff_id[7:])):
        raise OverlayError("diff_id must be sha256:<64 hex digits>, got %r" % (diff_id,), layer=layer_id)
    return diff_id


MAX_HOLDER_LENGTH = 256


def validate_holder(holder, layer_id=None):
    """A holder names who keeps a layer mounted; it is printed in lists, trees and messages.

    Printable only (no newline, tab or other control character that could forge a line
    of the layer tree or of a log), not blank, at most MAX_HOLDER_LENGTH characters.
    """
    if not isinstance(holder, str) or not holder.strip():
        raise OverlayError("holder must be a non-empty string, got %r" % (holder,), layer=layer_id)
    if len(holder) > MAX_HOLDER_LENGTH:
        raise OverlayError("holder %r... is %d characters long; at most %d are allowed"
                           % (holder[:32], len(holder), MAX_HOLDER_LENGTH), layer=layer_id)
    if not holder.isprintable():
        raise OverlayError("holder %r contains a control or non-printable character" % (holder,), layer=layer_id)
    return holder


# uid_t is 32 bits and (uid_t)-1 = 4294967295 means "leave unchanged" to chown.
MAX_ID = 4294967294


class IDMap:
    """One contiguous range: container ids [container_id, container_id+size) map to host ids."""

    __slots__ = ("container_id", "host_id", "size")

    def __init__(self, container_id, host_id, size):
        for name, value in (("container_id", container_id), ("host_id", host_id), ("size", size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise OverlayError("id map %s must be a non-negative integer, got %r" % (name, value))
        if size == 0:
            raise OverlayError("id map size must be at least 1")
        for name, first in (("container_id", container_id), ("host_id", host_id)):
            if first + size - 1 > MAX_ID:
                raise OverlayError("id map %d:%d:%d: %s + size - 1 is %d, beyond the largest id %d "
                                   "(%d is no id: it means 'unchanged' to chown)"
                                   % (container_id, host_id, size, name, first + size - 1, MAX_ID, MAX_ID + 1))
        self.container_id = container_id
        self.host_id = host_id
        self.size = size

    def __repr__(self):
        return "IDMap(%d, %d, %d)" % (self.container_id, self.host_id, self.size)

    def as_dict(self):
        return {"container_id": self.container_id, "host_id": self.host_id, "size": self.size}


def parse_maps(entries, what="uid_maps"):
    """Build IDMaps from dicts (module options) or IDMaps; None or [] means identity."""
    maps = []
    for entry in entries or ():
        if isinstance(entry, IDMap):
            maps.append(entry)
            continue
        if not isinstance(entry, dict):
            raise OverlayError("%s entries need container_id, host_id and size, got %r" % (what, entry))
        missing = [k for k in ("container_id", "host_id", "size") if k not in entry]
        if missing:
            raise OverlayError("%s entry %r lacks %s" % (what, entry, ", ".join(missing)))
        try:
            maps.append(IDMap(int(entry["container_id"]), int(entry["host_id"]), int(entry["size"])))
        except (TypeError, ValueError):
            raise OverlayError("%s entry %r: values must be integers" % (what, entry))
    _refuse_overlaps(maps, what)
    return maps


def _refuse_overlaps(maps, what):
    """Ranges that share ids on either side give an id two owners (the kernel refuses such a uid_map)."""
    for side in ("container", "host"):
        ranges = sorted(((getattr(m, side + "_id"), m) for m in maps), key=lambda r: r[0])
        for (first, a), (second, b) in zip(ranges, ranges[1:]):
            if second < first + a.size:
                raise OverlayError("%s ranges %d:%d:%d and %d:%d:%d overlap on the %s side"
                                   % (what, a.container_id, a.host_id, a.size, b.container_id, b.host_id, b.size,
                                      side))


def maps_as_dicts(maps):
    return [m.as_dict() for m in maps]


def _translate(value, maps, side, other):
    """value on the side ("container" or "host") of maps, seen from the other side."""
    if not maps:
        return value
    for m in maps:
        first = getattr(m, side + "_id")
        if first <= value < first + m.size:
            return getattr(m, other + "_id") + value - first
    raise OverlayError("%s id %d is not mapped by %r" % (side, value, maps))


def to_host(container_id, maps):
    """Map a container id to the host; identity without maps; outside the maps is an error."""
    return _translate(container_id, maps, "container", "host")


def to_container(host_id, maps):
    """The inverse of to_host, used when exporting a diff from remapped files."""
    return _translate(host_id, maps, "host", "container")


def root_pair(uid_maps, gid_maps):
    """The host uid and gid of the container's root (seed: idtools.GetRootUIDGID)."""
    return to_host(0, uid_maps), to_host(0, gid_maps)
