# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
name: layer_removals
short_description: Plan what a declaration removes from a layer home, leaf first
version_added: 0.1.0
description:
  - Used by the C(strata.overlay.overlay_layers) role before it changes anything. From the declared layers and
    mounts (entries with C(state=absent) included), the layers on the host and the role's record of what it
    staged before, returns the holders to release, the layers to remove (children before parents), the layers
    that pruning leaves in place with the reason, and the problems that make the declaration impossible.
  - A layer or mount entry with C(state=absent) is removed or released. A declared absent layer still held by
    a holder that is not released in the same run, or with a layer built on it that stays, is a problem,
    unless the entry has C(force=true) (every holder is then dropped).
  - With O(prune=true), what the record names and the declaration no longer does goes too. Only what the
    record names can go, and a layer only while the home holds the very directory the role made (the inode
    the record names; a layer of the same name made since stays); a layer or holder the role did not stage (made by hand, by a module task, by Docker or
    another tool) is never touched. A pruned layer stays, without failing the run, while a holder the role did
    not record holds it or a layer that stays is built on it.
options:
  _input:
    description: The declared layers, each C({id, state, force, ...}); C(state) defaults to C(present).
    type: list
    elements: dict
    required: true
  mounts:
    description:
      - The declared mounts, each C({id, holder, state}); C(state) is V(present) or V(absent), or as
        M(strata.overlay.overlay_mount) says it, V(mounted) or V(unmounted).
    type: list
    elements: dict
    default: []
  existing:
    description: The layers on the host, as M(strata.overlay.overlay_info) returns them (C(id), C(parent), C(holders),
      C(inode), C(generation)).
    type: list
    elements: dict
    default: []
  record:
    description:
      - The role's record, C({layers, mounts, images}), of what it staged earlier on this host for this home
        (C(layers) as C({id, inode, generation})).
      - A record of another shape is refused, never iterated.
    type: dict
    default: {}
  prune:
    description: Also remove what the record names and the declaration no longer does.
    type: bool
    default: false
  force:
    description: The C(force) of an absent layer entry that gives none (the role's C(overlay_force)).
    type: bool
    default: false
author:
  - Strata Overlay maintainers (@strata-overlay)
'''

EXAMPLES = r'''
- name: Plan the removals before changing anything
  ansible.builtin.set_fact:
    plan: >-
      {{ overlay_layers | strata.overlay.layer_removals(mounts=overlay_mounts, existing=info.layers,
                                                        record=record, prune=true) }}
'''

RETURN = r'''
_value:
  description: The plan.
  type: dict
  contains:
    stage:
      description: The layer entries declared present, in their declared order.
      type: list
      elements: dict
    keep_mounted:
      description: The mounts declared present, each C({id, holder}) (holder C(ansible) when not given), with
        C(mount_options) when the entry gives them.
      type: list
      elements: dict
    mounts:
      description: The holders to release, each C({id, holder}).
      type: list
      elements: dict
    layers:
      description: The layers to remove, children before their parents, each C({id, force}).
      type: list
      elements: dict
    images:
      description:
        - The images to remove once the layers are gone, each C({image, platform}), by
          M(strata.overlay.overlay_image) with C(state=absent) (which keeps the layers other images, holders or
          layers need) - those of image entries declared absent and, with O(prune=true), those the record names
          that no entry declares any more.
      type: list
      elements: dict
    kept:
      description: Layers pruning leaves in place, each C({id, reason}).
      type: list
      elements: dict
    problems:
      description: Why the declared removals cannot be done; empty when they can.
      type: list
      elements: str
'''

from ansible.errors import AnsibleFilterError


def _kept_mount(mount):
    """A mount declared present as overlay_mount takes it; mount_options only when declared (else the default)."""
    kept = {"id": mount.get("id"), "holder": mount.get("holder") or "ansible"}
    if mount.get("mount_options") is not None:
        kept["mount_options"] = mount["mount_options"]
    return kept


def _state(entry):
    return entry.get("state") or "present"


# overlay_mount's words for a mount entry's state, accepted beside present/absent
_MOUNT_STATES = {"mounted": "present", "unmounted": "absent"}


def _mount_state(entry):
    state = _state(entry)
    return _MOUNT_STATES.get(state, state)


def _mount_key(mount):
    return (mount.get("id"), mount.get("holder") or "ansible")


def _leaf_first(going, children):
    order, seen = [], set()

    def visit(layer_id):
        if layer_id in seen:  # once, also in a cycle of bad records
            return
        seen.add(layer_id)
        for child in sorted(children.get(layer_id, [])):
            if child in going:
                visit(child)
        order.append(layer_id)

    for layer_id in sorted(going):
        visit(layer_id)
    return order


def _record_problem(record):
    """Why the role's record cannot be believed (None when it has the expected shape)."""
    if not isinstance(record, dict):
        return "it is a %s, not a mapping" % type(record).__name__
    for key in ("layers", "mounts", "images"):
        if not isinstance(record.get(key, []), list):
            return "%s is not a list" % key
    for entry in record.get("layers", []):
        if isinstance(entry, str):
            continue  # written by an earlier release, without the layer's inode
        if not (isinstance(entry, dict) and isinstance(entry.get("id"), str) and _is_int(entry.get("inode"))
                and (entry.get("generation") is None or _is_int(entry["generation"]))):
            return "a layers entry is not {id, inode, generation}: %r" % (entry,)
    for entry in record.get("mounts", []):
        if not (isinstance(entry, dict) and isinstance(entry.get("id"), str)):
            return "a mounts entry is not {id, holder}: %r" % (entry,)
    for entry in record.get("images", []):
        if not (isinstance(entry, dict) and isinstance(entry.get("image"), str) and entry["image"]):
            return "an images entry is not {id, image, platform}: %r" % (entry,)
    return None


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def made_again(layer, entry):
    """Whether the home's layer is another directory than the one the role recorded: another inode, or the
    same inode number given out again (ext4 does so at once) with another generation."""
    if layer.get("inode") != entry["inode"]:
        return True
    return entry.get("generation") is not None and layer.get("generation") != entry["generation"]


def check_record(record):
    """The role's record, refused whole (never iterated) when it is not of the shape the role writes."""
    record = record or {}
    problem = _record_problem(record)
    if problem:
        raise AnsibleFilterError("the overlay_layers role's record of this home is not in the expected format (%s); "
                                 "refusing to prune from it: check it, or remove it to start a new record" % problem)
    return record


def _image_key(entry):
    return (entry.get("image"), entry.get("platform") or "")


def _own_layers(record, on_host, present_ids):
    """(the recorded layers the role may prune, kept [{id, reason}] of the others it recorded).

    A layer goes only when the home still holds the very directory the role made: the same inode it
    recorded. A layer of the same name made since (by hand, or by another tool) stays.
    """
    going, kept = set(), []
    for entry in record.get("layers") or []:
        layer_id = entry if isinstance(entry, str) else entry["id"]
        if layer_id in present_ids or layer_id not in on_host:
            continue
        if isinstance(entry, str):
            kept.append({"id": layer_id, "reason": "recorded without its inode by an earlier release of this role, so "
                                                   "it cannot be told from a layer made since; declare it absent"})
        elif made_again(on_host[layer_id], entry):
            kept.append({"id": layer_id, "reason": "made again since this role staged it (another inode), so not "
                                                   "this role's to remove"})
        else:
            going.add(layer_id)
    return going, kept


def layer_removals(layers, mounts=None, existing=None, record=None, prune=False, force=False):
    if not isinstance(layers, list) or not isinstance(mounts or [], list):
        raise AnsibleFilterError("layer_removals expects lists of layer and mount entries")
    if record is not None and not isinstance(record, dict):
        raise AnsibleFilterError("layer_removals expects the role's record as a dict, got %s" % type(record).__name__)
    record = check_record(record)
    on_host = {layer["id"]: layer for layer in existing or []}
    layers = [entry for entry in layers if isinstance(entry, dict)]
    mounts = [entry for entry in mounts or [] if isinstance(entry, dict)]
    present_ids = {e.get("id") for e in layers if _state(e) == "present"}
    present_mounts = {_mount_key(m) for m in mounts if _mount_state(m) == "present"}
    absent = {e.get("id"): bool(e.get("force", force)) for e in layers
              if _state(e) == "absent" and e.get("id") in on_host}

    release = {_mount_key(m) for m in mounts if _mount_state(m) == "absent"}
    if prune:
        release |= {_mount_key(m) for m in record.get("mounts") or [] if _mount_key(m) not in present_mounts}
    release = {(i, h) for i, h in release if i in on_host and h in (on_host[i].get("holders") or [])}

    candidates = set(absent)
    not_ours = []
    if prune:
        own, not_ours = _own_layers(record, on_host, present_ids)
        candidates |= own
    children = {}
    for layer in on_host.values():
        if layer.get("parent"):
            children.setdefault(layer["parent"], []).append(layer["id"])

    blocked = {}
    for layer_id in sorted(candidates):
        others = [h for h in on_host[layer_id].get("holders") or [] if (layer_id, h) not in release]
        if others and not absent.get(layer_id):
            blocked[layer_id] = "still held by %s" % ", ".join(others)
    changed = True
    while changed:  # a layer stays while anything built on it stays
        changed = False
        for layer_id in sorted(candidates - set(blocked)):
            staying = [c for c in children.get(layer_id, []) if c not in candidates or c in blocked]
            if staying:
                blocked[layer_id] = "layer %s is built on it" % ", ".join(sorted(staying))
                changed = True

    problems = ["overlay_mounts[%d]: state %r (present or mounted, absent or unmounted)" % (n, _state(m))
                for n, m in enumerate(mounts) if _mount_state(m) not in ("present", "absent")]
    problems += ["layer %s is declared absent but %s (release its holders with state: absent mount entries or "
                 "set force: true on the entry or overlay_force: true; declare the layers built on it absent too)"
                 % (i, r) for i, r in sorted(blocked.items()) if i in absent]
    kept = [{"id": i, "reason": r + ", which this role did not stage" if r.startswith("still held") else r}
            for i, r in sorted(blocked.items()) if i not in absent]
    kept = sorted(kept + not_ours, key=lambda k: k["id"])
    going = candidates - set(blocked)
    return {
        "stage": [e for e in layers if _state(e) == "present"],
        "keep_mounted": [_kept_mount(m) for m in mounts if _mount_state(m) == "present"],
        "mounts": [{"id": i, "holder": h} for i, h in sorted(release)],
        "layers": [{"id": i, "force": absent.get(i, False)} for i in _leaf_first(going, children)],
        "images": _image_removals(layers, record, prune),
        "kept": kept,
        "problems": problems,
    }


def _image_removals(layers, record, prune):
    """The images to remove after the layers, each {image, platform}: those of image entries declared absent, and
    with prune those the role staged whose entries are no longer declared (overlay_image keeps what others need)."""
    present = {_image_key(e) for e in layers if _state(e) == "present" and e.get("image")}
    going = [_image_key(e) for e in layers if _state(e) == "absent" and e.get("image")]
    if prune:
        going += [_image_key(e) for e in record.get("images") or []]
    out = []
    for key in going:
        if key not in present and key not in out:
            out.append(key)
    return [{"image": image, "platform": platform} for image, platform in out]


class FilterModule(object):
    def filters(self):
        return {"layer_removals": layer_removals}
