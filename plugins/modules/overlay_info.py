#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: overlay_info
short_description: Report whether the host can run overlay, and the layers of a layer home
version_added: 0.1.0
description:
  - Reports whether the host can run overlay (kernel support, backing filesystem, d_type) and every
    layer in the home with its kind, parent, live mount state, holders, diff and whether it is stale.
  - With O(id) and O(changes=true), also the layer's changes against its parent and their size.
  - Never writes anything, in any mode. A home that does not exist is reported, not created;
    leftovers of killed runs are left to the next writer; the home's lock is taken shared, and only
    when its lock file exists; a read-only home can be read.
  - Returns the layer tree drawn as text (RV(tree)) for people to read, and with O(as_facts=true) the whole
    result as the fact C(overlay_info) too.
options:
  id:
    description: A layer to report on in detail.
    type: str
  changes:
    description:
      - With O(id), compute the layer's changes against its parent.
      - An overlay layer's changes are read from its C(upper/) (overlay whiteouts and opaque
        directories) and its lower C(root/), without mounting anything.
    type: bool
    default: false
  as_facts:
    description:
      - Also return the result (RV(status), RV(layers), RV(stale), RV(tree), and RV(layer), RV(changes) and
        RV(diff_size) when asked for) as the host fact C(overlay_info), so later tasks and plays read it
        without registering a variable.
    type: bool
    default: false
  verifiers:
    description:
      - Also report which signature verifiers the host has (RV(status.signature_verifiers)), which runs the
        C(gpg) and C(openssl) programs and imports the Python C(cryptography) module.
      - Off by default so that a fleet's routine runs pay nothing for it; the preflight role asks for it.
    type: bool
    default: false
extends_documentation_fragment: strata.overlay.common
attributes:
  check_mode:
    support: full
    details: Reads only; runs the same in check mode.
  diff_mode:
    support: none
    details: Reads only; there is nothing to diff.
seealso:
  - module: strata.overlay.overlay_mount
    description: Mounts a stale layer again for its holder, or releases it.
'''

EXAMPLES = r'''
- name: Read the layer store
  strata.overlay.overlay_info:
  register: store

- name: Show stale layers (holders recorded, mount gone)
  ansible.builtin.debug:
    var: store.stale

- name: Read the store as the fact overlay_info and show its tree
  strata.overlay.overlay_info:
    as_facts: true

- name: Show the layer tree
  ansible.builtin.debug:
    var: overlay_info.tree

- name: What did the app layer change?
  strata.overlay.overlay_info:
    id: app
    changes: true
  register: app
'''

RETURN = r'''
status:
  description: What the host offers.
  returned: always
  type: dict
  contains:
    overlay_supported:
      description: C(overlay) is listed in C(/proc/filesystems) (after C(modprobe overlay)).
      type: bool
      sample: true
    kernel:
      description: The running kernel release.
      type: str
      sample: 6.1.0-28-amd64
    backing_fs:
      description:
        - The filesystem under the layer home (the nearest existing directory).
        - C(ext2), C(ext3) and C(ext4) are told apart by the type of the mount holding it (they share one
          statfs magic); C(extfs) when that cannot be read.
      type: str
      sample: ext4
    d_type:
      description:
        - Whether that filesystem reports file types in directory entries, read without writing
          (the xfs geometry, or the entries of an existing directory); null when nothing tells.
      type: bool
      sample: true
    home:
      description: The layer home.
      type: str
      sample: /var/lib/strata/overlay
    home_exists:
      description: Whether the layer home exists.
      type: bool
      sample: true
    zstd:
      description:
        - Whether zstd-compressed layers can be read on this host, which needs the C(zstd) program or the
          Python C(zstandard) module (either); the other compressions need nothing.
      type: dict
      contains:
        program:
          description: The path of the C(zstd) program, empty when there is none.
          type: str
          sample: /usr/bin/zstd
        module:
          description: Whether the C(zstandard) module can be imported by the module's Python.
          type: bool
          sample: false
        supported:
          description: Either is there.
          type: bool
          sample: true
    gzip:
      description:
        - How images' gzip layers are decompressed on this host. zlib in the module always can, and needs nothing;
          when the host has the C(igzip) program (Debian's C(isal)), it does, as containerd does. When igzip's
          answer for a layer cannot be proven right, the layer is read again through zlib.
        - C(STRATA_OVERLAY_DISABLE_IGZIP=1) in the task's environment turns igzip off.
      type: dict
      contains:
        program:
          description: The path of the C(igzip) program in use, empty when there is none or it is turned off.
          type: str
          sample: /usr/bin/igzip
    signature_verifiers:
      description:
        - The signature verifiers this host has, which an O(strata.overlay.overlay_image#module:policy) can rely
          on; a policy that needs one the host lacks refuses the images it covers.
        - C(gpg) verifies C(signedBy) (GPG simple signing); C(openssl) or C(cryptography) verify C(sigstoreSigned).
        - Each is null when missing, else its C(path) and C(version) (the program's first version line), or the
          Python module's C(version).
        - Null unless O(verifiers=true).
      type: dict
      contains:
        gpg:
          description: The C(gpg) program.
          type: dict
          sample: {"path": "/usr/bin/gpg", "version": "gpg (GnuPG) 2.2.40"}
        openssl:
          description: The C(openssl) program.
          type: dict
          sample: {"path": "/usr/bin/openssl", "version": "OpenSSL 3.0.15 3 Sep 2024 (Library: OpenSSL 3.0.15 3 Sep 2024)"}
        cryptography:
          description: The Python C(cryptography) module of the module's Python.
          type: dict
          sample: {"version": "38.0.4"}
    problems:
      description: Each reason overlay cannot be used here, one message per problem.
      type: list
      elements: str
      sample: []
map_warnings:
  description:
    - One message per id map range (the home's recorded maps, or O(uid_maps)/O(gid_maps) for a home not there
      yet) that shares host ids with a range C(/etc/subuid) or C(/etc/subgid) gives to a user. That user can act
      as those ids (as the remapped root, which owns the layer directories), so give the maps a range no user
      has. The same messages are shown as warnings.
    - Also one message per (non-identity) map range that holds the uid of an account in C(/etc/passwd), or the gid
      of a group in C(/etc/group), other than root; that account owns the layer files its id is mapped from.
  returned: always
  type: list
  elements: str
  sample: ["uid_maps 0:100000:65536 shares host ids 100000-165535 with alice's range 100000:65536 in /etc/subuid: ..."]
layers:
  description:
    - Every layer in the home, each as M(strata.overlay.overlay_layer) returns it.
    - C(problem) is null for a usable layer, else what is wrong with it (see RV(damaged)).
    - C(images) lists the references of the staged images (see RV(images)) the layer belongs to, empty for a
      layer no recorded image names; C(size) is the bytes of the diff applied to it (null when none was).
    - C(inode) is the inode number of the layer's directory, and C(generation) its generation (null where the
      filesystem keeps none, as tmpfs); a layer removed and made again under the same id has another inode, or
      the same inode number with another generation (the C(strata.overlay.overlay_layers) role's prune checks both).
  returned: always
  type: list
  elements: dict
images:
  description:
    - The images M(strata.overlay.overlay_image) staged into the home, from its records, each with its
      C(reference), C(digest), C(platform), C(layers) (ChainID hex, bottom first), C(present) (every layer is
      there) and C(size) (the bytes of its layers that are there).
  returned: when the home exists
  type: list
  elements: dict
  sample: [{"reference": "docker://registry.example/debian:12", "digest": "sha256:0123...", "platform": "linux/amd64",
            "layers": ["3f2a..."], "present": true, "size": 123456789}]
images_problem:
  description: Why the image records cannot be read (null when they can); the layers are listed all the same.
  returned: when the home exists
  type: str
  sample: null
stale:
  description: Ids of layers with holders recorded but no mount.
  returned: when the home exists
  type: list
  elements: str
  sample: [web-1]
exists:
  description:
    - Whether the layer home exists. A missing home is reported, never created (a mistyped O(home) shows
      here and in RV(tree)).
  returned: always
  type: bool
  sample: true
layout:
  description:
    - The on-disk layout the home is in, V(overlay) or V(overlay2) (recorded when it was first written, else
      what its layer directories are); the one a call leaving O(layout) out uses. Null while the home does not
      exist.
  returned: always
  type: str
  sample: overlay2
damaged:
  description:
    - Ids of layers that are there but cannot be used, each listed in RV(layers) with its C(problem) (a layer
      directory with neither C(root/) nor C(upper/), an unreadable C(lower-id), a record that does not parse or
      has the wrong shape). The other layers work as before; operations that need a damaged layer fail naming
      it, and M(strata.overlay.overlay_layer) with O(strata.overlay.overlay_layer#module:state=absent) and
      O(strata.overlay.overlay_layer#module:force=true) removes it.
  returned: when the home exists
  type: list
  elements: str
  sample: []
repairs:
  description:
    - Paths of an overlay2 home's C(l/) directory and short links C(l/<LINK>) that are missing (removed, renamed
      away, or skipped by a backup that left out symlinks) and that the next task writing to the home (a mount, for
      one) makes again from the layers' own C(link) files. This module changes nothing; the layers built on them are
      reported as sound meanwhile.
    - A short link that is there but points elsewhere, an C(l) that is not a directory, or a link file naming
      another layer's link is never repaired over; the layers that need it stay damaged.
  returned: when the home exists
  type: list
  elements: str
  sample: ["/var/lib/strata/overlay/l/5IGVRPQFHZTV6XNDBQRO3T7WNM"]
layer:
  description: The layer named by O(id).
  returned: when O(id) is given
  type: dict
changes:
  description: The layer's changes against its parent, in tree order.
  returned: when O(changes=true)
  type: list
  elements: dict
  sample: [{"path": "/etc", "kind": "modify"}, {"path": "/etc/motd", "kind": "add"}]
diff_size:
  description: Bytes the added and modified files take (the driver's DiffSize).
  returned: when O(changes=true)
  type: int
  sample: 4096
tree:
  description:
    - The layers drawn as a tree, one line each, children below their parent; each line gives the id, the
      kind, the references of the images it belongs to, its size, C(mounted), the holders, C(STALE) when holders
      are recorded but the mount is gone and C(DAMAGED) with the problem of a layer that cannot be used.
    - A layer whose parent is not in the home is drawn as a root, with that parent named.
    - A home that does not exist is one line saying so, C(no layer home at /srv/layers) and that it does not exist.
  returned: always
  type: list
  elements: str
  sample:
    - "base (root)"
    - "`-- child (overlay)"
    - "    `-- app (overlay) mounted holders: demo"
ansible_facts:
  description: With O(as_facts=true), the result as a fact.
  returned: when O(as_facts=true)
  type: dict
  contains:
    overlay_info:
      description: The result of this module apart from C(changed).
      type: dict
'''

# first: a signal while the rest is imported still ends in JSON
from ansible_collections.strata.overlay.plugins.module_utils import early_signals  # noqa: F401 pylint: disable=W0611
from ansible_collections.strata.overlay.plugins.module_utils.common import argument_spec, flag, run_module
from ansible_collections.strata.overlay.plugins.module_utils.layer_module import LayerModule
from ansible_collections.strata.overlay.plugins.module_utils.managers import InfoManager


def main():
    module = LayerModule(argument_spec=argument_spec(id=dict(type="str"), changes=flag(), as_facts=flag(),
                                                     verifiers=flag()),
                         supports_check_mode=True)
    run_module(module, InfoManager)


if __name__ == "__main__":
    main()
