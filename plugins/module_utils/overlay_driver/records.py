# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-layer records: named holders (the seed's reference counts, moved out of
the driver and made persistent), the recorded parent and the applied diff.

A record is JSON replaced whole (state_files.write_atomic): a reader sees the
old record or the new, never a torn one.
"""

import importlib
import json
import os

from . import mount_options
from .errors import OverlayError
from .ids import validate_diff_id, validate_holder, validate_layer_id
from .state_files import read_json, remove_entry, require_roots_own, write_atomic

TAR_SPLIT_SUFFIX = ".tar-split"  # tar_split.SUFFIX, spelled here so that every run need not load it


def tar_split_module():
    """tar_split.py if the running module ships it (only those that apply or export import it), else None."""
    try:
        return importlib.import_module(".tar_split", __package__)
    except ImportError:
        return None


FORMAT_VERSION = 1


class LayerRecord:
    __slots__ = ("layer_id", "parent", "diff_id", "size", "holders", "exists_on_disk", "mount_options")

    def __init__(self, layer_id, parent=None, diff_id=None, size=None, holders=(), exists_on_disk=False,
                 mount_options=None):
        self.layer_id = layer_id
        self.mount_options = mount_options  # as the layer was mounted for its holders (None: not said)
        self.parent = parent
        self.diff_id = diff_id
        self.size = size
        self.holders = set(holders)
        self.exists_on_disk = exists_on_disk

    def as_json(self):
        data = {"version": FORMAT_VERSION, "id": self.layer_id, "parent": self.parent,
                "diff_id": self.diff_id, "size": self.size, "holders": sorted(self.holders)}
        if self.mount_options is not None:
            data["mount_options"] = list(self.mount_options)
        return data

    def is_empty(self):
        return not (self.parent or self.diff_id or self.holders or self.size is not None)


def load_record(dir_fd, layer_id, where=""):
    """The layer's record from the records directory fd (None: the home has no records yet)."""
    path = os.path.join(where, layer_id + ".json")
    if dir_fd is None:
        return LayerRecord(layer_id)
    try:
        # root's own only: a .strata an earlier version gave the remapped root is read as it is until a writer
        # takes it back, and that user could have put a record of its own there (holders, diff_id, parent)
        data = read_json(dir_fd, layer_id + ".json", check=require_roots_own)
    except (OSError, ValueError) as e:
        raise OverlayError("the layer's record cannot be read: %s" % e, layer=layer_id, path=path)
    if data is None:
        return LayerRecord(layer_id)
    fields = _checked_fields(data, layer_id, path)
    return LayerRecord(layer_id, fields["parent"], fields["diff_id"], fields["size"], fields["holders"],
                       exists_on_disk=True, mount_options=fields["mount_options"])


def _checked_fields(data, layer_id, path):
    """The record's fields, each of the type and shape this module writes.

    A record is a file in the home, so it may have been edited or damaged: a field of
    another type (a dict for a parent, a string for the holders) would otherwise reach
    path joins, comparisons and output as something no caller expects.
    """
    def bad(what):
        return OverlayError("the layer's record is not in the expected format: %s" % what, layer=layer_id, path=path)

    if not isinstance(data, dict):
        raise bad("a JSON object is expected, found %s" % type(data).__name__)
    version = data.get("version", FORMAT_VERSION)
    if type(version) is not int or version != FORMAT_VERSION:  # pylint: disable=unidiomatic-typecheck
        raise bad("version %r is not %d" % (version, FORMAT_VERSION))
    if data.get("id", layer_id) != layer_id:
        raise bad("it names layer %r" % (data["id"],))
    parent = data.get("parent")
    if parent is not None and parent != "":  # "" as None: a base layer
        try:
            validate_layer_id(parent, "parent id")
        except OverlayError as e:
            raise bad("parent: %s" % e.cause)
    diff_id = data.get("diff_id")
    if diff_id is not None:
        try:
            validate_diff_id(diff_id)
        except OverlayError as e:
            raise bad(e.cause)
    size = data.get("size")
    if size is not None and (type(size) is not int or size < 0):  # pylint: disable=unidiomatic-typecheck
        raise bad("size must be a non-negative integer, found %r" % (size,))
    holders = data.get("holders", [])
    if not isinstance(holders, list):
        raise bad("holders must be a list, found %s" % type(holders).__name__)
    for holder in holders:
        try:
            validate_holder(holder)
        except OverlayError as e:
            raise bad(e.cause)
    try:
        options = mount_options.validate(data.get("mount_options"), what="mount_options")
    except OverlayError as e:
        raise bad(e.cause)
    return {"parent": parent, "diff_id": diff_id, "size": size, "holders": holders, "mount_options": options}


def save_record(dir_fd, record):
    if record.is_empty():
        delete_record(dir_fd, record.layer_id)
        return
    payload = json.dumps(record.as_json(), sort_keys=True, indent=1).encode() + b"\n"
    write_atomic(dir_fd, record.layer_id + ".json", payload)


def delete_record(dir_fd, layer_id):
    """The record and the tar-split record kept beside it (tar_split.py)."""
    if dir_fd is None:
        return
    remove_entry(dir_fd, layer_id + ".json")  # a directory the remapped root put there too (set aside)
    remove_entry(dir_fd, layer_id + TAR_SPLIT_SUFFIX)


def recorded_ids(dir_fd, suffix):
    """The layers a record (".json") or a tar-split record (TAR_SPLIT_SUFFIX) is kept for."""
    if dir_fd is None:
        return []
    return sorted(n[:-len(suffix)] for n in os.listdir(dir_fd) if n.endswith(suffix))
