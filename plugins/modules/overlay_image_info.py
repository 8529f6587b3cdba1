#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: overlay_image_info
short_description: What a registry image is now, and which of its layers a layer home holds
version_added: 0.2.0
description:
  - Reads an image's manifest from its registry, as M(strata.overlay.overlay_image) would pull it (the same
    credentials, certs.d, registries.conf, proxies, retries and deadlines), and reports its digests, its layers
    (their ids are ChainIDs, as staging names them) and which of them the layer home holds, with their diff on
    their parent.
  - RV(image.staged) says whether staging the image would fetch nothing, and RV(image.recorded) whether the home
    also records the image under O(src) with this manifest, so that a tag that moved since it was staged shows
    as not recorded.
  - Changes nothing, on the host or in the home; no lock is taken and nothing is cleaned or repaired. The
    config is read from what the home remembers of it when every layer it names is there, else fetched.
  - M(strata.overlay.overlay_image) asks this module first when a task may find its image already staged, so
    that a run that changes nothing ships and runs only this reader.
options:
  src:
    description:
      - The image, as C(docker://[HOST[:PORT]/]REPOSITORY[:TAG|@DIGEST]) (a short name is resolved by
        registries.conf as for M(strata.overlay.overlay_image)).
    type: str
    required: true
    aliases: [name]
  only_recorded:
    description:
      - Ask the registry only when the home records an image staged from O(src) for the platform; when it records
        none (or the home is missing), return at once with RV(registry_read=false), RV(image.recorded=false) and
        no digests or layers.
      - What M(strata.overlay.overlay_image) asks, so that a first staging costs the registry no second manifest
        request (some registries count manifest requests against a pull limit).
    type: bool
    default: false
extends_documentation_fragment:
  - strata.overlay.common
  - strata.overlay.registry
attributes:
  check_mode:
    support: full
    details: Reads only; runs the same in check mode.
  diff_mode:
    support: none
    details: Reads only; there is nothing to diff.
seealso:
  - module: strata.overlay.overlay_image
    description: Stages the image.
  - module: strata.overlay.overlay_info
    description: Reads the layers of a home and whether each is sound.
'''

EXAMPLES = r'''
- name: Is the tag the hosts run still the one staged?
  strata.overlay.overlay_image_info:
    src: docker://registry.example.com:5000/base/debian:12
    registry_auth:
      username: puller
      password: "{{ vault_registry_password }}"
  register: debian

- name: Report hosts whose image moved on in the registry
  ansible.builtin.debug:
    msg: "{{ inventory_hostname }} holds {{ debian.image.layers | selectattr('present') | length }} of
      {{ debian.image.layers | length }} layers of {{ debian.image.manifest_digest }}"
  when: not debian.image.recorded
'''

RETURN = r'''
image:
  description: The image as the registry has it now, and what the home holds of it.
  returned: success
  type: dict
  contains:
    reference:
      description: O(src) as written.
      type: str
      sample: docker://registry.example.com:5000/base/debian:12
    manifest_digest:
      description: The digest of the platform's manifest.
      type: str
      sample: sha256:3f1a0c8b6b6c4e8f0a4b7d2f1e9c8b7a6d5c4b3a29180706f5e4d3c2b1a09f8e
    config_digest:
      description: The digest of the image's config.
      type: str
      sample: sha256:9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b
    top:
      description: The id of the image's last layer.
      type: str
      sample: 6f5cab0baaf199b9d876f5edcb27880aed80ead0f9698033be47189680842809
    layers:
      description: The image's layers, bottom first; each C(id) (its ChainID's hex), C(diff_id), C(digest) (the
        blob's), C(size) (the blob's) and C(present) (the home holds it, with that diff on the layer below).
      type: list
      elements: dict
    config:
      description: The config's C(config) object (Env, Cmd, Entrypoint, WorkingDir, ...).
      type: dict
    staged:
      description: Every layer is present, so staging the image would fetch nothing.
      type: bool
    recorded:
      description: The image is staged and the home records it under O(src) with this manifest, config, platform and
        these layers.
      type: bool
    seconds:
      description: Seconds the module took to read the registry and the home.
      type: float
home:
  description: The layer home as read (C(path), C(exists), C(layout) as recorded with it, C(read_only)), and
    C(upkeep_due), null, or what a run that writes would find to do in it beside staging (take back or seal
    a bookkeeping directory, clear what a killed run left, prune a record of a layer that is gone, make
    overlay2's lost short links again).
  returned: success
  type: dict
  sample: {"path": "/var/lib/strata/overlay", "exists": true, "layout": "overlay2", "read_only": false,
           "upkeep_due": null}
registry_read:
  description: Whether the registry was asked; V(false) only with O(only_recorded) when the home records no image
    under O(src).
  returned: success
  type: bool
  sample: true
failed_at:
  description: On failure, where it failed; V(registry) (the options, registries.conf, the registry or its
    answers) or V(home) (the layer home could not be read).
  returned: failure
  type: str
  sample: registry
'''

from ansible_collections.strata.overlay.plugins.module_utils import early_signals  # noqa: F401 pylint: disable=W0611
from ansible_collections.strata.overlay.plugins.module_utils.common import argument_spec, run_module
from ansible_collections.strata.overlay.plugins.module_utils.image_info import ImageInfo
from ansible_collections.strata.overlay.plugins.module_utils.image_request import REGISTRY_ARGS
from ansible_collections.strata.overlay.plugins.module_utils.layer_module import LayerModule


def main():
    module = LayerModule(argument_spec=argument_spec(src=dict(type="str", required=True, aliases=["name"]),
                                                     only_recorded=dict(type="bool", default=False),
                                                     **REGISTRY_ARGS),
                         supports_check_mode=True)
    run_module(module, ImageInfo)


if __name__ == "__main__":
    main()
