#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: overlay_layer
short_description: Create or remove a layer in an overlay layer store
version_added: 0.1.0
description:
  - Creates a layer the way Docker's overlay driver does. A layer without parent is a plain C(root/)
    directory. A child of a layer with C(root/) gets C(upper/), C(work/), C(merged/) and a C(lower-id)
    naming its parent. A child of an overlay layer inherits its C(lower-id) and starts from a copy of
    its C(upper/).
  - Removal refuses a layer that holders still use (unless O(force)) and a layer other layers are built on.
  - Layers with C(root/) are image layers and read-only, because their files are hardlinks shared with the layers
    built on them, so writing into one would change its parent and children too. Anything that writes gets a
    writable overlay layer of its own on top (O(parent) an image layer) and mounts that with
    M(strata.overlay.overlay_mount). The RV(layer.path) returned here is never a C(root/).
  - A layer home that Docker 20.10 wrote can be read and used; see C(docs/docker.md) in the collection.
options:
  id:
    description:
      - The layer id, a single path component matching C(^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$).
    type: str
    required: true
  parent:
    description:
      - The parent layer id; empty for a base layer.
      - An existing layer with a different parent is an error naming both.
    type: str
    default: ''
  state:
    description:
      - V(present) creates the layer if it is missing.
      - V(absent) unmounts and removes it.
    type: str
    choices: [present, absent]
    default: present
  force:
    description:
      - With O(state=absent), remove the layer even while holders are recorded (it is unmounted first).
      - A damaged layer (see RV(layer.problem)) is removed only with O(force=true), since its holders may be unknown.
    type: bool
    default: false
extends_documentation_fragment: strata.overlay.common
seealso:
  - module: strata.overlay.overlay_apply_diff
    description: Fills a new layer from a layer tarball, creating it with its parent first.
  - module: strata.overlay.overlay_mount
    description: Mounts the layer at C(merged/) for a named holder; a writable layer is written there.
'''

EXAMPLES = r'''
- name: Create a base layer
  strata.overlay.overlay_layer:
    id: debian-base
    home: /var/lib/strata/overlay

- name: Create a container layer on top of it
  strata.overlay.overlay_layer:
    id: web-1
    parent: debian-base

- name: Remove the container layer even if something still holds it
  strata.overlay.overlay_layer:
    id: web-1
    state: absent
    force: true
'''

RETURN = r'''
released:
  description: The holders a removal with O(force=true) dropped (in check mode, would drop); empty otherwise.
  returned: always
  type: list
  elements: str
  sample: [web]
layer:
  description: The layer after the task (in check mode, as it would be).
  returned: always
  type: dict
  contains:
    id:
      description: The layer id.
      type: str
      sample: web-1
    exists:
      description: Whether the layer exists.
      type: bool
      sample: true
    parent:
      description:
        - The recorded parent, else (a layer another tool made, such as Docker) the layer its C(lower-id) names.
        - Null for a base layer, and for a C(root/) layer whose parent only Docker's own layer database knows.
      type: str
      sample: debian-base
    kind:
      description: V(root) for a plain directory layer, V(overlay) for an upper/work/merged layer.
      type: str
      sample: overlay
    metadata:
      description:
        - The driver's metadata as Docker's driver reports it (C(UpperDir), C(WorkDir), C(MergedDir)), without
          the paths into an image layer's C(root/) (C(RootDir), C(LowerDir)), whose files are shared with the
          layers built on it and are never handed out. C(LowerId) names the layer whose C(root/) is the lower
          directory; a C(root) layer has only C(MergedDir), where it is mounted read-only. Use RV(layer.path).
      type: dict
      sample: {"LowerId": "debian-base", "UpperDir": "/var/lib/strata/overlay/web-1/upper",
               "WorkDir": "/var/lib/strata/overlay/web-1/work", "MergedDir": "/var/lib/strata/overlay/web-1/merged"}
    mounted:
      description:
        - Whether the layer's own mount is at C(merged/) now (read from C(/proc/self/mountinfo)), its overlay
          or for a C(root/) layer the read-only bind mount of C(root/).
      type: bool
      sample: false
    readonly:
      description:
        - Whether that mount is read-only. A C(root/) layer, a layer holding an applied diff and a layer with
          children are mounted read-only (a writable layer is a child on top); false while not mounted.
      type: bool
      sample: false
    holders:
      description: The named holders recorded for the layer.
      type: list
      elements: str
      sample: [web]
    stale:
      description: Holders are recorded but the mount is gone (after a reboot), for both kinds of layer.
      type: bool
      sample: false
    diff_id:
      description: The C(sha256:) digest of the diff applied to the layer, if any.
      type: str
      sample: sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945
    path:
      description:
        - Where the layer's tree is seen while it is mounted, C(merged/), for both kinds of layer. Writable
          for an overlay layer without an applied diff and without children, read-only for the others (see
          RV(layer.readonly)) and for a C(root/) layer (a read-only bind mount of C(root/)).
        - While the layer is not mounted this is where it will be seen once mounted; the directory may not
          exist (a C(root/) layer has none, and Docker 20.10 removes it when it unmounts).
      type: str
      sample: /var/lib/strata/overlay/web-1/merged
    problem:
      description:
        - Null for a usable layer. Otherwise what is wrong with it (a layer directory with neither C(root/) nor
          C(upper/), an unreadable C(lower-id), a record that does not parse or has the wrong shape); every
          operation that needs the layer fails naming it, and O(state=absent) with O(force=true) removes it.
      type: str
      sample: null
'''

# first: a signal while the rest is imported still ends in JSON
from ansible_collections.strata.overlay.plugins.module_utils import early_signals  # noqa: F401 pylint: disable=W0611
from ansible_collections.strata.overlay.plugins.module_utils.common import (LAYER_ID, PARENT_ID, argument_spec, flag,
                                                                            one_of, run_module)
from ansible_collections.strata.overlay.plugins.module_utils.layer_module import LayerModule
from ansible_collections.strata.overlay.plugins.module_utils.managers import LayerManager


def main():
    module = LayerModule(argument_spec=argument_spec(
        id=LAYER_ID, parent=PARENT_ID, state=one_of("present", "absent"), force=flag()), supports_check_mode=True)
    run_module(module, LayerManager)


if __name__ == "__main__":
    main()
