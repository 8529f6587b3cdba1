# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
name: mount_entry
short_description: Turn an overlay_mount loop result into the mount the overlay_layers role reports
version_added: 0.1.0
description:
  - Turns one loop result of M(strata.overlay.overlay_mount) (the loop variable C(overlay_mount) holding
    C({id, holder})) into C({id, holder, path, mounted}).
  - In check mode a layer that a real run would create first has no path yet; its path is then where the real
    run mounts it, C(<home>/<id>/merged), and C(mounted) is what the run would leave, so no value is null.
options:
  _input:
    description: The loop result.
    type: dict
    required: true
  home:
    description: The layer home.
    type: str
    required: true
author:
  - Strata Overlay maintainers (@strata-overlay)
'''

EXAMPLES = r'''
- name: Report the mounts
  ansible.builtin.debug:
    msg: "{{ mounted.results | map('strata.overlay.mount_entry', overlay_home) | list }}"
'''

RETURN = r'''
_value:
  description: C({id, holder, path, mounted}).
  type: dict
'''

import posixpath

from ansible.errors import AnsibleFilterError


def mount_entry(result, home):
    if not isinstance(result, dict) or not isinstance(result.get("overlay_mount"), dict):
        raise AnsibleFilterError("mount_entry expects an overlay_mount loop result with the loop variable overlay_mount")
    declared = result["overlay_mount"]
    layer_id = declared.get("id")
    layer = result.get("layer") or {}
    exists = bool(layer.get("exists"))
    path = result.get("path") or posixpath.join(home, layer_id, "merged")
    mounted = bool(result.get("mounted")) if exists or not result.get("changed") else True
    return {"id": layer_id, "holder": declared.get("holder") or "ansible", "path": path, "mounted": mounted}


class FilterModule(object):
    def filters(self):
        return {"mount_entry": mount_entry}
