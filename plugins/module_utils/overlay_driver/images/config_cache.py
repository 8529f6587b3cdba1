# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an image config said, remembered in the home: config digest -> (diff_ids, config object).

Staging an image that is already there should cost one manifest request. The
manifest names the config by digest, and the config is only needed for the
diff_ids (the layers' ids) and its `config` object; both are kept here from
the run that staged the image, in <home>/.strata/images/<hex>.json.

An entry is a hint, never a proof: it is used only when every layer its
diff_ids name (by ChainID) exists with that diff_id in its record, which is
what staging would have checked after reading the config anyway. That check
cannot tell one image's layers from another's with as many layers, so only
root's own entry (root's file, writable by root only) is read at all: in a
.strata an earlier version gave the remapped root, that user could write the
entry of an image root is about to stage, naming the layers of another image
already in the home and a config of its choosing. Anything else (missing,
unreadable, not root's own, malformed, another digest inside, a layer gone) is
ignored, the config is read from the image as usual, and the entry rewritten.
Entries are written like the layer records: temp file with O_EXCL|O_NOFOLLOW
in the directory, fsync, rename.
"""

import json
import os

from ..errors import OverlayError
from ..layout import CONFIG_CACHE_DIR as CACHE_DIR, STATE_DIR
from ..state_files import read_roots_own, write_atomic
from .digests import parse_digest
from .errors import ImageError
from .manifests import MAX_CONFIG, MAX_LAYERS

FORMAT_VERSION = 1
MAX_ENTRY = MAX_CONFIG + (MAX_LAYERS + 1) * 80


def _dirs(store):
    dirs = getattr(getattr(store, "driver", None), "dirs", None)
    if dirs is None or getattr(dirs, "state_fd", None) is None:
        return None
    return dirs


def _open_dir(dirs, create):
    where = os.path.join(dirs.path, STATE_DIR)
    try:
        return dirs.open_private(dirs.state_fd, CACHE_DIR, create, where)
    except (OSError, OverlayError):
        # A symlink or a foreign owner in its place: the entries are an optimisation, so a run
        # without them reads the config as if nothing were remembered, and writes none there.
        return None


def _read_bounded(dir_fd, name):
    data = read_roots_own(dir_fd, name, MAX_ENTRY)
    return data if data is not None and len(data) <= MAX_ENTRY else None


def _parse(data, config_digest, layer_count):
    """(diff_ids, config object) of a well-formed entry for config_digest, else None."""
    try:
        entry = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(entry, dict) or entry.get("version") != FORMAT_VERSION:
        return None
    if entry.get("config_digest") != config_digest:
        return None
    diff_ids, run_config = entry.get("diff_ids"), entry.get("config")
    if not isinstance(diff_ids, list) or len(diff_ids) != layer_count or not diff_ids:
        return None
    if not isinstance(run_config, dict):
        return None
    try:
        for diff_id in diff_ids:
            parse_digest(diff_id)
    except ImageError:
        return None
    return diff_ids, run_config


def lookup(store, config_digest, layer_count):
    """(diff_ids, config object) remembered for config_digest, or None (then read the config)."""
    return lookup_in(_dirs(store), config_digest, layer_count)


def lookup_in(dirs, config_digest, layer_count):
    """lookup() in an opened home's HomeDirs (a reader without a store: image_presence.py)."""
    if dirs is None or getattr(dirs, "state_fd", None) is None or not config_digest:
        return None
    dir_fd = _open_dir(dirs, create=False)
    if dir_fd is None:
        return None
    try:
        data = _read_bounded(dir_fd, config_digest.split(":", 1)[1] + ".json")
    finally:
        os.close(dir_fd)
    return None if data is None else _parse(data, config_digest, layer_count)


def remember(store, config_digest, diff_ids, run_config):
    """Write the entry for config_digest (a writer, under the home's lock, after the layers are staged)."""
    dirs = _dirs(store)
    if dirs is None or not config_digest:
        return
    dir_fd = _open_dir(dirs, create=True)
    if dir_fd is None:
        return
    payload = json.dumps({"version": FORMAT_VERSION, "config_digest": config_digest, "diff_ids": list(diff_ids),
                          "config": run_config}, sort_keys=True).encode("utf-8") + b"\n"
    try:
        write_atomic(dir_fd, config_digest.split(":", 1)[1] + ".json", payload, 0o600)
    except OSError:
        pass  # a full disk costs the next run one config request, nothing more
    finally:
        os.close(dir_fd)
