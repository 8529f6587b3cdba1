# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
name: role_record
short_description: What the overlay_layers role records it staged in a home, after a run
version_added: 0.2.0
description:
  - Used by the C(strata.overlay.overlay_layers) role after it staged and removed. The record is what
    O(strata.overlay.layer_removals#filter:prune=true) may remove later, so it names only what this role put
    there, checked against the home.
  - A layer is recorded with the inode of its directory when the role created it (it was not in the home before
    the run); a layer that was already there when it was declared is never recorded. A layer recorded earlier
    stays recorded while the home holds the same directory (same inode); one removed, or made again since, is
    dropped.
  - An image is recorded when the role's staging of it changed the home (it staged a layer or recorded the
    image); one that was staged already, by something else, is not.
options:
  _input:
    description: The role's previous record, C({layers, mounts, images}); C({}) when there is none.
    type: dict
    required: true
  home:
    description: The layer home.
    type: str
    required: true
  before:
    description: The layers before the run, as M(strata.overlay.overlay_info) returns them.
    type: list
    elements: dict
    required: true
  after:
    description: The layers after the run, as M(strata.overlay.overlay_info) returns them (with C(inode) and C(generation)).
    type: list
    elements: dict
    required: true
  plan:
    description: The run's plan, from the C(strata.overlay.layer_removals) filter.
    type: dict
    required: true
  images:
    description: The image entries staged by this run, each C({id, image, platform, changed}).
    type: list
    elements: dict
    default: []
author:
  - Strata Overlay maintainers (@strata-overlay)
'''

EXAMPLES = r'''
- name: The new record
  ansible.builtin.set_fact:
    record: "{{ previous | strata.overlay.role_record(home=overlay_home, before=before.layers, after=after.layers,
                                                      plan=plan, images=staged_images) }}"
'''

RETURN = r'''
_value:
  description: The record, C({home, layers, mounts, images}); C(layers) as C({id, inode, generation}).
  type: dict
'''

from ansible_collections.strata.overlay.plugins.filter.layer_removals import check_record, made_again


def _mount_key(mount):
    return (mount.get("id"), mount.get("holder") or "ansible")


def role_record(previous, home, before, after, plan, images=None):
    previous = check_record(previous)
    before_ids = {layer["id"] for layer in before or []}
    now = {layer["id"]: layer for layer in after or []}
    removed = {entry["id"] for entry in plan.get("layers") or []}
    layers = []
    for entry in previous.get("layers") or []:
        if isinstance(entry, str):
            continue  # an earlier release's entry cannot be checked against the home; it is not carried over
        if entry["id"] in now and entry["id"] not in removed and not made_again(now[entry["id"]], entry):
            layers.append({"id": entry["id"], "inode": entry["inode"], "generation": entry.get("generation")})
    recorded = {entry["id"] for entry in layers}
    for entry in plan.get("stage") or []:
        layer_id = entry.get("id")
        if layer_id in before_ids or layer_id in recorded or layer_id not in now or now[layer_id].get("inode") is None:
            continue
        layers.append({"id": layer_id, "inode": now[layer_id]["inode"], "generation": now[layer_id].get("generation")})
        recorded.add(layer_id)

    released = {_mount_key(m) for m in plan.get("mounts") or []}
    mounts = []
    for mount in (previous.get("mounts") or []) + (plan.get("keep_mounted") or []):
        key = _mount_key(mount)
        if key in released or key[0] in removed or key[0] not in now:
            continue
        entry = {"id": key[0], "holder": key[1]}
        if entry not in mounts:
            mounts.append(entry)

    gone = {(i.get("image"), i.get("platform") or "") for i in plan.get("images") or []}
    kept_images = []
    for entry in (previous.get("images") or []) + [i for i in images or [] if i.get("changed")]:
        key = (entry.get("image"), entry.get("platform") or "")
        if key in gone or any((k.get("image"), k.get("platform") or "") == key for k in kept_images):
            continue
        kept_images.append({"id": entry.get("id"), "image": key[0], "platform": key[1]})
    return {"home": home, "layers": layers, "mounts": mounts, "images": kept_images}


class FilterModule(object):
    def filters(self):
        return {"role_record": role_record}
