# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A layer's state as the store reports it: one dict shape, whether the layer is there or not.

The store gathers the facts (record, kind, the mount at merged/) and these
functions shape them; a check run predicts the state after an operation with
new() and changed() from the same shape, so real and check runs report alike.
"""

from . import mount_options, mounts
from .layout import KIND_OVERLAY, KIND_ROOT


def absent(layer_id):
    return {"id": layer_id, "exists": False, "parent": None, "kind": None, "mounted": False,
            "foreign_mount": False, "holders": [], "stale": False, "unheld_mount": False, "diff_id": None,
            "size": None, "path": None, "metadata": {}, "public_metadata": {}, "options": {}, "mount_options": [],
            "readonly": False, "problem": None}


def present(layer_id, kind, parent, metadata, record, mount, mounted, merged, overlay_options=None,
            public_metadata=None):
    """A layer that is there. mount: the entry at merged/ (or None); mounted: it is the layer's own.

    overlay_options: the overlay's options with the directories it was made of (the driver's
    mount_options), instead of the /proc/self/fd paths mountinfo shows. public_metadata: the
    metadata modules hand out (the driver's public_metadata: no path into an image layer).
    """
    holders = sorted(record.holders)
    if not mounted:
        options = {}
    elif kind == KIND_ROOT:
        options = mounts.mount_flags(mount)  # a bind: its own flags (ro) say what matters, not the superblock's
    else:
        options = overlay_options if overlay_options is not None else mount.options_dict()
    return {
        "id": layer_id,
        "exists": True,
        "parent": parent or None,
        "kind": kind,
        "metadata": metadata,
        "public_metadata": public_metadata if public_metadata is not None else {},
        "mounted": mounted,
        "foreign_mount": mount is not None and not mounted,
        "holders": holders,
        "stale": bool(holders) and not mounted,
        "unheld_mount": mounted and not holders,
        "diff_id": record.diff_id,
        "size": record.size,
        # merged/ for both kinds, never root/: a root layer is seen there read-only while mounted
        "path": merged,
        "options": options,
        "mount_options": mount_options.live(mount) if mounted else [],  # nosuid, nodev, noexec: per mount
        # the live mount's own flag: a layer with a diff or children (and a root layer's bind) is mounted ro
        "readonly": mounted and mounts.mount_flags(mount).get("ro") is True,
        "problem": None,
    }


def damaged(layer_id, problem, parent, record, mount, merged):
    """A layer that is there but cannot be used (see damage.py); record is None when it cannot be read.

    What can still be known is reported (its parent, holders, a mount at
    merged/); kind is None: a layer without root/ or upper/ is neither.
    """
    state = absent(layer_id)
    holders = sorted(record.holders) if record is not None else []
    state.update(exists=True, parent=parent or None, holders=holders, foreign_mount=mount is not None,
                 diff_id=record.diff_id if record is not None else None,
                 size=record.size if record is not None else None, path=merged, problem=problem)
    return state


def new(layer_id, parent, merged, **changes):
    """The state a layer created now would have (check mode's answer)."""
    state = absent(layer_id)
    state.update(exists=True, parent=parent or None, kind=KIND_OVERLAY if parent else KIND_ROOT, path=merged)
    state.update(changes)
    return state


def changed(before, **changes):
    after = dict(before)
    after.update(changes)
    return after


def held(before, holders, readonly=None):
    """The state after a holder took the layer (check mode's answer): mounted, and held; readonly: whether a
    new mount would be read-only (None: the layer is mounted already, as it is)."""
    after = changed(before, holders=sorted(holders), mounted=True, stale=False, unheld_mount=False)
    if readonly is not None:
        after["readonly"] = readonly
    return after


def released(before, holders, will_unmount):
    """The state after holders let go (check mode's answer): mounted until the last one goes."""
    mounted = before["mounted"] and not will_unmount
    return changed(before, holders=sorted(holders), mounted=mounted, options=before["options"] if mounted else {},
                   mount_options=before.get("mount_options", []) if mounted else [],
                   readonly=before.get("readonly", False) if mounted else False,
                   stale=bool(holders) and not mounted)
