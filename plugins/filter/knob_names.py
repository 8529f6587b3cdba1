# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
name: knob_names
short_description: Say a module's failure in the words of the role or playbook variables that set its options
version_added: 0.2.0
description:
  - "The modules name their own options in a failure (C(force: true), C(lazy: true)); a user of the overlay_layers
    role or of the playbooks sets C(overlay_force) and C(overlay_lazy) instead. This turns a failed task's
    result (or a loop's, one line per failed item, each with its C(label)) into its message with those names."
options:
  _input:
    description: The failed task's result, C(ansible_failed_result) in a C(rescue).
    type: dict
    required: true
  knobs:
    description: Module option to the variable that sets it.
    type: dict
    default: {force: overlay_force, lazy: overlay_lazy}
author:
  - Strata Overlay maintainers (@strata-overlay)
'''

EXAMPLES = r'''
- name: Release a layer, saying failures in the playbook's words
  block:
    - name: Release
      strata.overlay.overlay_mount:
        id: app
        state: unmounted
        lazy: "{{ overlay_lazy | bool }}"
  rescue:
    - name: Fail naming the variables
      ansible.builtin.fail:
        msg: "{{ ansible_failed_result | strata.overlay.knob_names }}"
'''

RETURN = r'''
_value:
  description: "The failure's message, each C(OPTION: true) written C(VARIABLE: true)."
  type: str
'''

import re

from ansible.errors import AnsibleFilterError

DEFAULT_KNOBS = {"force": "overlay_force", "lazy": "overlay_lazy"}


def _renamed(message, knobs):
    for option, variable in knobs.items():
        # a module that already names the role's variable beside its option: once renamed, once is enough
        message = re.sub(r", %s: (true|false) with the overlay_layers role\b" % re.escape(variable), "", message)
        message = re.sub(r"(?<![\w.])%s: (true|false)\b" % re.escape(option), variable + r": \1", message)
    return message


def knob_names(result, knobs=None):
    if not isinstance(result, dict):
        raise AnsibleFilterError("knob_names expects a task result, as ansible_failed_result holds it")
    knobs = DEFAULT_KNOBS if knobs is None else knobs
    lines = []
    for item in result.get("results") or []:
        if isinstance(item, dict) and item.get("failed"):
            label = item.get("_ansible_item_label")
            text = _renamed(str(item.get("msg", "failed")), knobs)
            lines.append("%s: %s" % (label, text) if isinstance(label, str) and label else text)
    if lines:
        return "; ".join(lines)
    return _renamed(str(result.get("msg", "failed")), knobs)


class FilterModule(object):
    def filters(self):
        return {"knob_names": knob_names}
