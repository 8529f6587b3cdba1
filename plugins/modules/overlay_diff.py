#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: overlay_diff
short_description: Export a layer's changes as an image-layer tarball
version_added: 0.1.0
description:
  - Compares the layer with its parent and writes the changes to O(dest) as an uncompressed layer
    tarball; deletions become C(.wh.<name>) whiteouts.
  - A layer made by applying a tarball (M(strata.overlay.overlay_apply_diff) on a layer it creates, and every
    image layer of M(strata.overlay.overlay_image)) is exported as that very tarball, uncompressed, byte for
    byte, as Docker and containers-storage export an applied layer, so C(diff_id) is the diff_id it was applied
    with. The home keeps the tarball's headers for it (C(.strata/layers/<id>.tar-split), root's own; see
    M(strata.overlay.overlay_apply_diff) for when none is kept) and the export reads each file's contents from
    the layer, each opened beneath it without following a symlink. A file that is no longer a regular file of
    the size and mtime applied, a file reached through a symlink in the layer, bytes that do not hash to the
    diff_id applied, or a record that is missing, damaged, not root's own or of another diff makes the export
    fall back to the change walk below. Changes to an applied layer's metadata made behind the collection's
    back (modes, owners, files added; it is mounted read-only) are not seen in such an export.
  - Any other layer is archived from the change walk; the output is reproducible (whole-second times,
    whiteouts dated by their directory). Either way, exporting the same layer again gives the same
    diff_id and reports no change, and C(changes) and C(size) come from the change walk.
  - O(dest) is written to an unnamed file in its directory (C(O_TMPFILE); where the filesystem has
    none, a temporary file with a random name created exclusively, never through a symlink), then
    given a temporary name and renamed over O(dest). A O(dest) that is a symlink is replaced, never
    written through. An interrupted run leaves no temporary file behind, and a run removes the
    C(.strata-diff-*) files of killed runs in the directory of O(dest) (root's regular files that
    no live run holds); check mode removes nothing.
  - After the rename O(dest) must be the file written, in the directory that is still at its path;
    when another user who can write there swapped either in between, the task fails instead of
    reporting success.
  - O(dest) may not be a directory, C(/), the layer home or inside it (compared with every symlink
    resolved, and by device and inode, so a bind-mount alias of the home is refused too).
  - Neither layer is mounted. An overlay layer's changes are read from its own directory, C(upper/) in the
    C(overlay) layout and C(diff/) in C(overlay2).
  - In check mode the tarball is built and hashed without being written; C(changed) says whether
    O(dest) would change and C(diff_id) is the real digest.
options:
  id:
    description: The layer id.
    type: str
    required: true
  dest:
    description: The tarball to write on the managed host, an absolute path (a relative one is refused).
    type: path
    required: true
extends_documentation_fragment: strata.overlay.common
seealso:
  - module: strata.overlay.overlay_apply_diff
    description: Applies the exported tarball to a layer, on this host or another.
'''

EXAMPLES = r'''
- name: Export what the app layer changed
  strata.overlay.overlay_diff:
    id: app
    dest: /srv/export/app.tar
  register: exported

- name: Stage it elsewhere
  strata.overlay.overlay_apply_diff:
    id: app-copy
    parent: debian-base
    src: /srv/export/app.tar
    remote_src: true
    diff_id: "{{ exported.diff_id }}"
'''

RETURN = r'''
diff_id:
  description: The C(sha256:) digest of the tarball.
  returned: success
  type: str
  sample: sha256:2c1d3f0b7e0c6a6e43d31b8c67b1dd5a87dcdb5a9d2d0bb3a1b7e8f2d3c4b5a6
size:
  description: Bytes the added and modified files take, from the change walk (the driver's DiffSize).
  returned: success
  type: int
  sample: 4096
tar_size:
  description: Bytes of the tarball.
  returned: success
  type: int
  sample: 10240
changes:
  description: The changes the change walk finds against the parent, in tree order.
  returned: success
  type: list
  elements: dict
  sample: [{"path": "/etc", "kind": "modify"}, {"path": "/etc/old.conf", "kind": "delete"}]
parent:
  description: The parent the layer was compared with; null for a base layer.
  returned: success
  type: str
  sample: debian-base
dest:
  description: The tarball's absolute path.
  returned: success
  type: str
  sample: /srv/export/app.tar
'''

# first: a signal while the rest is imported still ends in JSON
from ansible_collections.strata.overlay.plugins.module_utils import early_signals  # noqa: F401 pylint: disable=W0611
from ansible_collections.strata.overlay.plugins.module_utils.common import LAYER_ID, argument_spec, run_module
from ansible_collections.strata.overlay.plugins.module_utils.layer_module import LayerModule
from ansible_collections.strata.overlay.plugins.module_utils.managers import DiffManager
# shipped with this module (the store loads it by name, records.tar_split_module): exports replay applied tarballs
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import tar_split  # noqa: F401 pylint: disable=W0611
# and so is the exporter (graph_driver.exporter): no other module exports
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import tar_export  # noqa: F401 pylint: disable=W0611


def main():
    module = LayerModule(argument_spec=argument_spec(id=LAYER_ID, dest=dict(type="path", required=True)),
                         supports_check_mode=True)
    run_module(module, DiffManager)


if __name__ == "__main__":
    main()
