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
    record names can go; a layer or holder the role did not stage (made by hand, by a module task, by Docker or
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
    description: The layers on the host, as M(strata.overlay.overlay_info) returns them (C(id), C(parent), C(holders)).
    type: list
    elements: dict
    default: []
  record:
    description: The role's record, C({layers, mounts}), of what it staged earlier on this host for this home.
    type: dict
    default: {}
  prune:
    description: Also remove what the record names and the declaration no longer does.
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
      description: The mounts declared present, each C({id, holder}) (holder C(ansible) when not given).
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


def layer_removals(layers, mounts=None, existing=None, record=None, prune=False):
    if not isinstance(layers, list) or not isinstance(mounts or [], list):
        raise AnsibleFilterError("layer_removals expects lists of layer and mount entries")
    record = record or {}
    if not isinstance(record, dict):
        raise AnsibleFilterError("layer_removals expects the role's record as a dict, got %s" % type(record).__name__)
    on_host = {layer["id"]: layer for layer in existing or []}
    layers = [entry for entry in layers if isinstance(entry, dict)]
    mounts = [entry for entry in mounts or [] if isinstance(entry, dict)]
    present_ids = {e.get("id") for e in layers if _state(e) == "present"}
    present_mounts = {_mount_key(m) for m in mounts if _mount_state(m) == "present"}
    absent = {e.get("id"): bool(e.get("force")) for e in layers if _state(e) == "absent" and e.get("id") in on_host}

    release = {_mount_key(m) for m in mounts if _mount_state(m) == "absent"}
    if prune:
        release |= {_mount_key(m) for m in record.get("mounts") or [] if _mount_key(m) not in present_mounts}
    release = {(i, h) for i, h in release if i in on_host and h in (on_host[i].get("holders") or [])}

    candidates = set(absent)
    if prune:
        candidates |= {i for i in record.get("layers") or [] if i not in present_ids and i in on_host}
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
                 "set force: true; declare the layers built on it absent too)" % (i, r)
                 for i, r in sorted(blocked.items()) if i in absent]
    kept = [{"id": i, "reason": r + ", which this role did not stage" if r.startswith("still held") else r}
            for i, r in sorted(blocked.items()) if i not in absent]
    going = candidates - set(blocked)
    return {
        "stage": [e for e in layers if _state(e) == "present"],
        "keep_mounted": [{"id": m.get("id"), "holder": m.get("holder") or "ansible"}
                         for m in mounts if _mount_state(m) == "present"],
        "mounts": [{"id": i, "holder": h} for i, h in sorted(release)],
        "layers": [{"id": i, "force": absent.get(i, False)} for i in _leaf_first(going, children)],
        "kept": kept,
        "problems": problems,
    }


class FilterModule(object):
    def filters(self):
        return {"layer_removals": layer_removals}
