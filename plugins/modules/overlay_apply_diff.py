#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: overlay_apply_diff
short_description: Apply an image-layer tarball to a layer
version_added: 0.1.0
description:
  - Creates the layer if it is missing, then applies the tarball as the home's layout's Docker driver does.
  - In the C(overlay) layout, on a parent with C(root/), the parent's tree is copied with hardlinks (file
    data is shared), the diff is applied to the copy and the result becomes the layer's C(root/). Otherwise
    the diff is applied through a mount of the layer (the naive fallback).
  - In the C(overlay2) layout the diff goes into the layer's own C(diff/), whiteouts as overlay's own,
    whatever is below it.
  - Whiteouts follow the image-layer convention, C(.wh.<name>) deletes and C(.wh..wh..opq) makes a
    directory opaque.
  - The tarball is untrusted input. No entry can write outside the layer, whatever its names,
    symlinks or hardlinks say; damaged, truncated or malformed archives are errors.
  - The diff is applied to a copy and only becomes visible once it is complete and its digest was
    checked against O(diff_id). A failure leaves the layer as it was (and removes a layer this task created).
  - On a layer this task creates, the tarball's headers (all of it but its files' contents, compressed) are
    kept beside the layer's record, C(.strata/layers/<id>.tar-split), so that M(strata.overlay.overlay_diff)
    exports the very tarball applied. No record is kept for a layer that existed before the task, for a
    tarball that writes one path twice or gives a time a record cannot hold, or past 64 MiB of record.
  - One diff per layer. The same diff again reports no change without extracting anything; with
    O(diff_id) given, without even reading O(src). A different diff is an error.
  - A diff goes into a layer before anything is built on it. While other layers have it as parent, applying
    a diff to it is an error, as it would change the tree under them (a mounted child would see its lower
    layer vanish).
  - In check mode a diff the layer does not have yet is read and verified as the real run reads it
    (format, names, whiteouts, digest) without writing anything, so the check run fails where the real
    run would and returns the real O(diff_id) and size. O(src) is sent from the controller for that.
options:
  id:
    description: The layer id.
    type: str
    required: true
  parent:
    description: The parent layer id; empty for a base layer.
    type: str
    default: ''
  src:
    description:
      - The layer tarball, plain or compressed.
      - On the controller with O(remote_src=false) (searched like M(ansible.builtin.copy) sources, a relative
        path in the role's or playbook's C(files/), then beside them), on the managed host with O(remote_src=true).
      - With O(remote_src=true) an absolute path; a relative one is refused before anything is touched, since it
        would be taken from the module's working directory on the host (the login user's home over SSH).
      - May be omitted when O(diff_id) is given and the layer already has that diff.
    type: path
  remote_src:
    description:
      - V(false) sends O(src) from the controller to a temporary file on the host, which is always removed.
      - V(true) reads O(src) on the managed host.
    type: bool
    default: false
  diff_id:
    description:
      - The expected C(sha256:<hex>) digest of the uncompressed tarball (an image's diff_id).
      - The layer only becomes visible if the digest matches.
    type: str
  compression:
    description:
      - The tarball's compression; V(auto) detects it from the first bytes.
      - V(zstd) needs the C(zstd) program or the Python C(zstandard) module on the host.
    type: str
    choices: [auto, none, gzip, bzip2, xz, zstd]
    default: auto
  max_layer_size:
    description:
      - The most bytes the uncompressed tarball may hold (default 64 GiB). A few MB of gzip can expand to
        any size; the diff is refused once it would pass this bound, before those bytes are written, and the
        layer stays as it was. Check mode refuses it the same way.
      - Before anything is written, the home's filesystem must also have at least the tarball's own size
        free.
      - Bytes as an integer, or a size such as V(10M), V(64G) or V(1.5GiB) (K, M, G, T are powers of 1024).
    type: raw
    default: 68719476736
    version_added: 0.2.0
extends_documentation_fragment: strata.overlay.common
attributes:
  action:
    description: Indicates this has a corresponding action plugin so some parts of the task can be executed on the controller.
    support: full
seealso:
  - module: strata.overlay.overlay_diff
    description: Exports a layer's changes as the tarball this module applies.
  - module: strata.overlay.overlay_layer
    description: Creates or removes a layer without a diff.
'''

EXAMPLES = r'''
- name: Stage a base layer from the controller
  strata.overlay.overlay_apply_diff:
    id: debian-base
    src: files/debian-base.tar.gz
    diff_id: sha256:2c1d3f0b7e0c6a6e43d31b8c67b1dd5a87dcdb5a9d2d0bb3a1b7e8f2d3c4b5a6

- name: Apply a child layer already on the host
  strata.overlay.overlay_apply_diff:
    id: app
    parent: debian-base
    src: /srv/layers/app.tar.zst
    remote_src: true
'''

RETURN = r'''
size:
  description: Bytes of file data the diff applied (the driver's ApplyDiff size).
  returned: success
  type: int
  sample: 104857600
diff_id:
  description: The C(sha256:) digest of the uncompressed tarball.
  returned: success
  type: str
  sample: sha256:2c1d3f0b7e0c6a6e43d31b8c67b1dd5a87dcdb5a9d2d0bb3a1b7e8f2d3c4b5a6
fallback:
  description:
    - V(true) when the diff went through the naive path (base layers, and parents without C(root/)),
      V(false) for the hardlink copy of the parent's C(root/) and always in the C(overlay2) layout; null when
      nothing was applied.
  returned: success
  type: bool
  sample: false
path:
  description:
    - The layer's C(merged/), where M(strata.overlay.overlay_mount) shows it (read-only for a layer with C(root/)).
      Never the C(root/) the diff was applied to.
  returned: success
  type: str
  sample: /var/lib/strata/overlay/app/merged
compression:
  description: The compression found in the tarball.
  returned: when a diff was applied
  type: str
  sample: gzip
entries:
  description: Number of archive entries applied.
  returned: when a diff was applied
  type: int
  sample: 10302
layer:
  description: The layer the diff went into, after the task, with the diff recorded as its C(diff_id) (in the shape
    M(strata.overlay.overlay_layer) returns).
  returned: success
  type: dict
'''

# first: a signal while the rest is imported still ends in JSON
from ansible_collections.strata.overlay.plugins.module_utils import early_signals  # noqa: F401 pylint: disable=W0611
from ansible_collections.strata.overlay.plugins.module_utils.common import (LAYER_ID, PARENT_ID, argument_spec, flag,
                                                                            one_of, run_module)
from ansible_collections.strata.overlay.plugins.module_utils.layer_module import LayerModule
from ansible_collections.strata.overlay.plugins.module_utils.managers import ApplyDiffManager
# shipped with this module (the store loads it by name, records.tar_split_module): applies keep a tar-split record
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import tar_split  # noqa: F401 pylint: disable=W0611
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.decompress import COMPRESSIONS


def main():
    module = LayerModule(argument_spec=argument_spec(
        id=LAYER_ID, parent=PARENT_ID, src=dict(type="path"), remote_src=flag(), diff_id=dict(type="str"),
        compression=one_of(*COMPRESSIONS), max_layer_size=dict(type="raw", default=64 << 30)),
        supports_check_mode=True)
    run_module(module, ApplyDiffManager)


if __name__ == "__main__":
    main()
