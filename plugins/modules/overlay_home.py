#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: overlay_home
short_description: Make a layer home, or remove a whole one
version_added: 0.2.0
description:
  - O(state=absent) removes a layer home entirely once nothing in it is in use (every layer, the
    collection's bookkeeping in C(.strata) (holders, records, image records, maps, the lock) and the home's
    directory itself). Nothing of C(.strata) stays.
  - It is refused, before anything is removed, while a layer has holders or is mounted, or anything else is
    mounted inside the home; release the holders first (M(strata.overlay.overlay_mount) O(state=unmounted)).
    A mount the collection did not make (at a layer's C(merged/) or anywhere inside) is named with the
    C(umount) that removes it, since overlay_mount never unmounts a mount that is not its own.
  - The home is checked as every module checks it, so a directory that holds anything not shaped like a
    layer (a mistyped O(home)) is refused and left as it is.
  - A home that does not exist is V(ok) and unchanged, and nothing is created.
  - O(state=present) makes the home as the first module that writes a layer would (recording its id maps).
options:
  state:
    description:
      - V(absent) removes the home and everything in it; V(present) makes it when it is missing.
      - Required, with no default, so that a task naming only O(home) (meant to make sure the home is
        there) never removes every layer that is not held.
    type: str
    choices: [absent, present]
    required: true
extends_documentation_fragment: strata.overlay.common
attributes:
  check_mode:
    support: full
    details: Reports whether the home would be removed (or made), and fails where the real run would.
  diff_mode:
    support: full
    details: Shows whether the home exists before and after.
seealso:
  - module: strata.overlay.overlay_layer
    description: Removes one layer.
  - module: strata.overlay.overlay_image
    description: Removes one image's layers (O(strata.overlay.overlay_image#module:state=absent)).
'''

EXAMPLES = r'''
- name: Release the last holder
  strata.overlay.overlay_mount:
    home: /srv/layers
    id: site
    holder: nginx
    state: unmounted

- name: Remove the whole layer home
  strata.overlay.overlay_home:
    home: /srv/layers
    state: absent
  register: gone

- name: Show which layers went with it
  ansible.builtin.debug:
    var: gone.removed
'''

RETURN = r'''
home:
  description: The layer home.
  returned: always
  type: str
  sample: /srv/layers
exists:
  description: Whether the home exists after the task (in check mode, would exist).
  returned: always
  type: bool
  sample: false
removed:
  description: The ids of the layers removed with the home (in check mode, that would be).
  returned: always
  type: list
  elements: str
  sample: [base, app]
'''

from ansible_collections.strata.overlay.plugins.module_utils.common import argument_spec, run_module
from ansible_collections.strata.overlay.plugins.module_utils.home_manager import HomeManager
from ansible_collections.strata.overlay.plugins.module_utils.layer_module import LayerModule


def main():
    module = LayerModule(argument_spec=argument_spec(state=dict(type="str", choices=["absent", "present"], required=True)), supports_check_mode=True)
    run_module(module, HomeManager)


if __name__ == "__main__":
    main()
