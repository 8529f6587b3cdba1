# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
name: released_holders
short_description: The holders that overlay_layer removals with force dropped, as the overlay_layers role reports them
version_added: 0.2.0
description:
  - Turns the loop results of M(strata.overlay.overlay_layer) removals (the loop variable C(overlay_removal)
    holding C({id, force})) into one C({id, holder}) per holder each removal dropped (its C(released)).
  - Skipped results and results without C(released) add nothing, so a check run's plan shown instead of the
    removals gives an empty list.
options:
  _input:
    description: The loop results.
    type: list
    elements: dict
    required: true
author:
  - Strata Overlay maintainers (@strata-overlay)
'''

EXAMPLES = r'''
- name: Report the holders forced away
  ansible.builtin.debug:
    msg: "{{ removed.results | strata.overlay.released_holders }}"
'''

RETURN = r'''
_value:
  description: C({id, holder}) per holder dropped, in the order of the removals.
  type: list
  elements: dict
'''

from ansible.errors import AnsibleFilterError


def released_holders(results):
    if not isinstance(results, list):
        raise AnsibleFilterError("released_holders expects the loop results of overlay_layer removals")
    out = []
    for result in results:
        if not isinstance(result, dict) or not isinstance(result.get("overlay_removal"), dict):
            continue
        for holder in result.get("released") or []:
            out.append({"id": result["overlay_removal"].get("id"), "holder": holder})
    return out


class FilterModule(object):
    def filters(self):
        return {"released_holders": released_holders}
