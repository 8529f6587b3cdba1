# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which overlay at a layer's merged/ the driver made: a token as the mount's source, recorded by root.

The driver mounts directories it opened and checked, by /proc/self/fd/N (a
path would be resolved again by the kernel, after the layer's owner could
have swapped it for a symlink), so mountinfo shows fd paths, not the layer's
directories. The mount's source is therefore a fresh token, "strata-<hex>",
written first to <home>/.strata/mounts/<id> (root's, 0700): the mount at
merged/ whose source is the token recorded for the layer is its own, and a
mount made by hand with the layer's directories is not. The record also
keeps the real lowerdir/upperdir/workdir, which the modules report, and the
layer it is for.
"""

import json
import os

from .errors import OverlayError
from .layout import MOUNTS_DIR
from .state_files import read_json, remove_entry, require_roots_own, write_atomic

TOKEN_PREFIX = "strata-"


class MountRecords:
    """The records of one home: dirs is its HomeDirs, state its .strata path (for messages), own_dir(id) the
    directory a layer's own overlay shows as its upper (or, read-only, its top lower): <home>/<id>/upper in the
    seed layout, <home>/<id>/diff in overlay2."""

    def __init__(self, dirs, state, own_dir):
        self.dirs = dirs
        self.state = state
        self.own_dir = own_dir

    def _dir(self, create):
        if self.dirs.state_fd is None:
            return None
        return self.dirs.open_private(self.dirs.state_fd, MOUNTS_DIR, create, self.state)

    def new(self, layer_id, options):
        """A fresh source token for the mount about to be made, recorded with its options first."""
        token = TOKEN_PREFIX + os.urandom(12).hex()
        record = dict(options, source=token, layer=layer_id, home=self._home_id())
        fd = self._dir(True)
        try:
            write_atomic(fd, layer_id, json.dumps(record, sort_keys=True).encode() + b"\n", 0o600)
        except OSError as e:
            raise OverlayError("cannot write the mount record %s/%s: %s" % (MOUNTS_DIR, layer_id, e.strerror),
                               layer=layer_id)
        finally:
            os.close(fd)
        return token

    def read(self, layer_id):
        """The layer's record ({"source", "lowerdir", "upperdir", "workdir"}), None if none or unreadable."""
        fd = self._dir(False)
        if fd is None:
            return None
        try:
            data = read_json(fd, layer_id, check=require_roots_own)  # as records.load_record
        except (OSError, ValueError):
            return None
        finally:
            os.close(fd)
        if not isinstance(data, dict) or not isinstance(data.get("source"), str):
            return None
        return data if self._is_this_layers(data, layer_id) else None

    def _home_id(self):
        st = os.fstat(self.dirs.fd)
        return [st.st_dev, st.st_ino]

    def _is_this_layers(self, record, layer_id):
        """The record is this layer's of this home, not another's moved under its name. In a mounts/ an earlier
        version gave the remapped root, that user could swap two layers' records (root's own files, so
        believed), also with a home of its own holding a layer of the same id, then the layer directories:
        unmounting one layer would take the other's overlay for its own. So a record names its layer and its
        home (the home directory's device and inode: the same when the home is moved or reached by another
        path). One written before records named their home must show, as the overlay's upper (read-only: its
        top lower), that layer's directory in this home: by the same path, or through one to the same home
        directory."""
        if "home" in record:
            return record.get("layer") == layer_id and record.get("home") == self._home_id()
        if "layer" in record and record["layer"] != layer_id:
            return False
        own = self.own_dir(layer_id)
        tail = "/%s/%s" % (layer_id, os.path.basename(own))
        shown = record.get("upperdir")
        if "upperdir" in record:
            if not isinstance(shown, str):
                return False
            if shown == own:
                return True
        else:
            lowers = record.get("lowerdir")
            if not isinstance(lowers, str):
                return False
            if lowers == own or lowers.startswith(own + ":"):
                return True
            # the top lower ends at the first ":" after the layer's own directory (a home's path may hold ":")
            end = lowers.find(tail + ":")
            shown = lowers[:end + len(tail)] if end >= 0 else lowers
        return shown.endswith(tail) and self._is_home(shown[:-len(tail)])

    def _is_home(self, path):
        try:
            there = os.stat(path)
        except (OSError, ValueError):  # ValueError: a NUL in the path
            return False
        return [there.st_dev, there.st_ino] == self._home_id()

    def source(self, layer_id):
        record = self.read(layer_id)
        return record["source"] if record else None

    def forget(self, layer_id):
        fd = self._dir(False)
        if fd is None:
            return
        try:
            remove_entry(fd, layer_id)
        except OSError as e:
            raise OverlayError("cannot remove the mount record %s/%s: %s" % (MOUNTS_DIR, layer_id, e.strerror),
                               layer=layer_id)
        finally:
            os.close(fd)


def is_token(source):
    return source.startswith(TOKEN_PREFIX)
