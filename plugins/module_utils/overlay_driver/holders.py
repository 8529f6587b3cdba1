# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-layer records: named holders (the seed's reference counts, moved out of
the driver and made persistent), the recorded parent and the applied diff.

A record is JSON written to a temp file, fsynced, renamed over the old one and
the directory fsynced: a reader sees the old record or the new, never a torn one.
"""

import json
import os

from . import faults
from .errors import OverlayError
from .layout import open_temp_file

FORMAT_VERSION = 1


class LayerRecord:
    __slots__ = ("layer_id", "parent", "diff_id", "size", "holders", "exists_on_disk")

    def __init__(self, layer_id, parent=None, diff_id=None, size=None, holders=(), exists_on_disk=False):
        self.layer_id = layer_id
        self.parent = parent
        self.diff_id = diff_id
        self.size = size
        self.holders = set(holders)
        self.exists_on_disk = exists_on_disk

    def as_json(self):
        return {"version": FORMAT_VERSION, "id": self.layer_id, "parent": self.parent,
                "diff_id": self.diff_id, "size": self.size, "holders": sorted(self.holders)}

    def is_empty(self):
        return not (self.parent or self.diff_id or self.holders or self.size is not None)


def load_record(path, layer_id):
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return LayerRecord(layer_id)
    except (OSError, ValueError) as e:
        raise OverlayError("the layer's record cannot be read: %s" % e, layer=layer_id, path=path)
    if not isinstance(data, dict) or not isinstance(data.get("holders", []), list):
        raise OverlayError("the layer's record is not in the expected format", layer=layer_id, path=path)
    return LayerRecord(layer_id, data.get("parent"), data.get("diff_id"), data.get("size"),
                       [str(h) for h in data.get("holders", [])], exists_on_disk=True)


def write_atomic(path, payload, mode=0o600):
    directory = os.path.dirname(path)
    tmp, fd = open_temp_file(directory, ".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        faults.point("record.written")
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def save_record(path, record):
    if record.is_empty():
        delete_record(path)
        return
    payload = json.dumps(record.as_json(), sort_keys=True, indent=1).encode() + b"\n"
    write_atomic(path, payload)


def delete_record(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
