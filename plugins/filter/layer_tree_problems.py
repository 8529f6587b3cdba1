# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
name: layer_tree_problems
short_description: Check a declared layer tree before staging it
version_added: 0.1.0
description:
  - Returns one message per problem in a list of layers to stage, in order, so a play can refuse a
    tree before changing anything. An empty list means the tree can be staged.
  - Problems are invalid or duplicate ids, a parent declared after its child, a parent that is
    neither declared earlier nor already on the host, and a layer that is its own parent.
  - An image entry (C({id, image})) is a writable layer on the image's top layer; it takes no C(parent) and
    no C(src), and it may be the parent of later entries.
  - An entry with C(state=absent) only needs a valid id; it cannot be the parent of an entry declared present.
options:
  _input:
    description:
      - The layers, each a dict with at least C(id) and optionally C(parent), C(src), C(image) and C(state)
        (C(present) or C(absent)).
    type: list
    elements: dict
    required: true
  existing:
    description: Ids of layers already on the host, which may be parents without being declared.
    type: list
    elements: str
    default: []
author:
  - Strata Overlay maintainers (@strata-overlay)
'''

EXAMPLES = r'''
- name: Refuse a tree whose parents come after their children
  ansible.builtin.assert:
    that: problems | length == 0
    fail_msg: "{{ problems }}"
  vars:
    problems: "{{ overlay_layers | strata.overlay.layer_tree_problems(existing=['debian-base']) }}"
'''

RETURN = r'''
_value:
  description: One message per problem; empty when the tree is fine.
  type: list
  elements: str
'''

import re

from ansible.errors import AnsibleFilterError

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def layer_tree_problems(layers, existing=None):
    if not isinstance(layers, list):
        raise AnsibleFilterError("layer_tree_problems expects a list of layers, got %s" % type(layers).__name__)
    existing = set(existing or [])
    problems = []
    ids = [layer.get("id") if isinstance(layer, dict) else None for layer in layers]
    seen = set()
    absent = set()
    declared_absent = {layer.get("id") for layer in layers
                       if isinstance(layer, dict) and (layer.get("state") or "present") == "absent"}
    for index, layer in enumerate(layers):
        where = "overlay_layers[%d]" % index
        if not isinstance(layer, dict):
            problems.append("%s is not a dict with an id" % where)
            continue
        layer_id = layer.get("id")
        parent = layer.get("parent") or ""
        state = layer.get("state") or "present"
        if not isinstance(layer_id, str) or not _ID.match(layer_id):
            problems.append("%s: invalid layer id %r" % (where, layer_id))
            continue
        if layer_id in seen or layer_id in absent:
            problems.append("%s: layer %s is declared twice" % (where, layer_id))
        if state not in ("present", "absent"):
            problems.append("%s: layer %s has state %r (present or absent)" % (where, layer_id, state))
            continue
        if state == "absent":
            absent.add(layer_id)
            continue
        if layer.get("image"):
            if not isinstance(layer["image"], str):
                problems.append("%s: layer %s: image must be a string such as oci:PATH or docker://HOST/REPO:TAG"
                                % (where, layer_id))
            for key in ("parent", "src"):
                if layer.get(key):
                    problems.append("%s: layer %s is an image entry: %s cannot be given (the layer is made "
                                    "on the image's top layer)" % (where, layer_id, key))
            seen.add(layer_id)
            continue
        if parent and parent in declared_absent:
            problems.append("%s: parent %s of layer %s is declared absent" % (where, parent, layer_id))
        elif parent:
            if not isinstance(parent, str) or not _ID.match(parent):
                problems.append("%s: layer %s has an invalid parent id %r" % (where, layer_id, parent))
            elif parent == layer_id:
                problems.append("%s: layer %s is its own parent" % (where, layer_id))
            elif parent not in seen:
                if parent in ids[index + 1:]:
                    problems.append("%s: layer %s comes before its parent %s" % (where, layer_id, parent))
                elif parent not in existing:
                    problems.append("%s: parent %s of layer %s is neither declared before it nor on the host"
                                    % (where, parent, layer_id))
        seen.add(layer_id)
    return problems


class FilterModule(object):
    def filters(self):
        return {"layer_tree_problems": layer_tree_problems}
