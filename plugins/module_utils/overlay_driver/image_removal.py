# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Removing a staged image: its layers that nothing else needs go, the others stay with the reason.

Images share layers (a ChainID names a whole stack, so two images on the same
base hold the same base layers), writable layers are built on image layers,
and holders keep layers mounted. Removing an image therefore removes, from its
top layer down, each of its layers that

- no other recorded image lists,
- no holder holds,
- and no layer that stays is built on,

and lists every other one as kept, with the reason. The image's record goes
last, so a run killed half way is finished by the next one, and only once none
of its layers is kept by a holder or a layer built on it: the record is what
names those layers as the image's, so the same state=absent removes them once
what kept them is gone. Layers kept only because another image lists them are
that image's record's to name. A check run answers the same from what it
reads, and removes nothing.
"""

import dataclasses
import typing

from .image_records import ImageRecords


@dataclasses.dataclass
class ImageRemoval:
    """What removing an image did (check mode: would do). images: the records it matched, as dicts;
    removed: layer ids, top first; kept: [{id, reason}] of the image's layers still in the home;
    changed: a layer or a record went (a record stays while a holder or a layer on it keeps a layer)."""

    changed: bool
    images: typing.List[dict]
    removed: typing.List[str]
    kept: typing.List[dict]


def _by_depth(records):
    """The records' layers, top first: a ChainID's depth is the same in every image that holds it."""
    depth = {}
    for record in records:
        for index, layer_id in enumerate(record.layers):
            depth[layer_id] = max(depth.get(layer_id, 0), index)
    return sorted(depth, key=lambda layer_id: (-depth[layer_id], layer_id))


def _needed_by_others(records):
    """layer id -> the first other image (by reference) that lists it."""
    needed = {}
    for record in records:
        for layer_id in record.layers:
            needed.setdefault(layer_id, record.reference)
    return needed


def plan_removal(store, wanted):
    """(matched records, layer ids to remove top first, kept [{id, reason}], whether the records stay),
    from one reading of the home. The records stay while a layer is kept for a reason no other record
    names (a holder, a layer built on it)."""
    records = ImageRecords(store.driver.dirs).all()
    matched = [r for r in records if r.matches(wanted)]
    others = _needed_by_others([r for r in records if not r.matches(wanted)])
    going, kept, records_stay = [], [], False
    for layer_id in _by_depth(matched):
        if not store.driver.exists(layer_id):
            continue  # gone already (removed by hand, or by a run killed before the record went)
        reason = None
        if layer_id in others:
            reason = "image %s uses it" % others[layer_id]
        else:
            holders = store.state(layer_id)["holders"]
            staying = sorted(c for c in store.children_of(layer_id) if c not in going)
            if holders:
                reason = "held by %s" % ", ".join(holders)
            elif staying:
                reason = "layer %s is built on it" % ", ".join(staying)
            records_stay = records_stay or bool(reason)
        if reason:
            kept.append({"id": layer_id, "reason": reason})
        else:
            going.append(layer_id)
    return matched, going, kept, records_stay


def remove_image(store, wanted, check_mode=False):
    """Remove the image(s) recorded as wanted (a reference or a digest) from store; an ImageRemoval.

    Takes the store's lock (a check run reads without it, as a check run of staging does).
    """
    if store is None:  # check mode on a home that does not exist: no image in it
        return ImageRemoval(False, [], [], [])
    if check_mode:
        return _remove(store, wanted, True)
    with store.locked():
        return _remove(store, wanted, False)


def _remove(store, wanted, check_mode):
    matched, going, kept, records_stay = plan_removal(store, wanted)
    if not check_mode:
        for layer_id in going:
            store.ensure_absent(layer_id)
        if not records_stay:
            records = ImageRecords(store.driver.dirs)
            for record in matched:
                records.delete(record)
    images = [{"reference": r.reference, "manifest_digest": r.manifest_digest, "config_digest": r.config_digest,
               "platform": r.platform, "layers": list(r.layers)} for r in matched]
    return ImageRemoval(bool(going or (matched and not records_stay)), images, going, kept)
