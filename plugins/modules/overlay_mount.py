#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: overlay_mount
short_description: Mount or unmount a layer for a named holder
version_added: 0.1.0
description:
  - Reference counts for layers, kept as a set of named holders per layer and persisted under the
    layer home, so they survive between tasks and reboots. The same holder taking a layer twice counts once.
  - O(state=mounted) adds the holder and mounts the layer at C(merged/) if it is not mounted, an overlay
    layer's overlay, or for a C(root/) layer (an image layer) a read-only bind mount of its C(root/).
    A layer with holders recorded but no mount (after a reboot) is C(stale) and is mounted again.
    A missing C(merged/) is created (0700, owned by the remapped root), as Docker 20.10 does.
  - Image layers are read-only because their files are hardlinks shared with the layers built on them.
    Whatever writes (a service, a build step) gets a writable overlay layer of its own on top of the image
    layers (M(strata.overlay.overlay_layer) with O(strata.overlay.overlay_layer#module:parent)) and mounts that.
  - The same holds for every layer that holds an applied diff (one M(strata.overlay.overlay_apply_diff) or
    M(strata.overlay.overlay_image) wrote, and its C(diff_id) says what is in it) and for every layer that has
    children (they are built on its files); its overlay is mounted read-only, and RV(readonly) says so.
    A writable layer is one without either, a child on top. A layer that gets a child while it is mounted
    keeps its mount as it is until it is mounted again.
  - O(state=unmounted) drops the holder and unmounts when no holder is left (or with O(force)). A C(merged/)
    that the mount created is removed again, so a layer home Docker 20.10 wrote is left as Docker left it.
  - Whether a layer is mounted is always read from C(/proc/self/mountinfo); a different mount at
    C(merged/) is an error.
  - An unmount that the kernel refuses because the mount is busy fails with a message naming each
    process that holds it (pid, command line, and whether through its working directory, root,
    executable, an open file descriptor or a mapped file), as C(fuser -m) would list them.
options:
  id:
    description: The layer id.
    type: str
    required: true
  state:
    description:
      - Whether the holder holds the layer mounted.
      - V(present) is the same as V(mounted) and V(absent) the same as V(unmounted), the words the
        C(overlay_mounts) entries of the overlay_layers role take; both spellings are accepted in both places.
    type: str
    choices: [mounted, unmounted, present, absent]
    default: mounted
  holder:
    description:
      - The name this hold is recorded under, for example the service using the layer.
      - Printable characters only (no newline, tab or other control character), at most 256 of them;
        any other name is refused before the home is touched.
    type: str
    default: ansible
  mount_options:
    description:
      - Mount flags for the layer's mount, out of V(nosuid), V(nodev) and V(noexec); V([]) mounts without any.
      - Left out, the options recorded with the layer hold (those it was last mounted with), and for a layer
        mounted the first time the careful default applies. A writable layer (an overlay layer without an applied
        diff and without children, see RV(readonly)) whose chain comes from
        an image, that is a layer staged by M(strata.overlay.overlay_image) is one of its parents, is mounted
        V(nosuid,nodev), because an image is untrusted input and its setuid binaries and device nodes would
        otherwise work on the host. Every other layer is mounted without them.
      - The options are recorded with the layer, so that the boot unit and O(state=mounted) after a reboot
        mount it the same way. A layer already mounted with other options fails; unmount it (every holder)
        to change them.
    type: list
    elements: str
    choices: [nosuid, nodev, noexec]
  mount_label:
    description:
      - An SELinux context for the mount (the C(context=) option), used when SELinux is enabled on the host.
    type: str
    default: ''
  force:
    description: With O(state=unmounted), drop every holder and unmount.
    type: bool
    default: false
  lazy:
    description:
      - With O(state=unmounted), detach the mount even while processes use it (C(umount -l), C(MNT_DETACH)).
        The path disappears at once; the kernel releases the overlay when the last process lets go.
      - Processes that still use it keep seeing the layer's files and may go on writing to its upper directory.
    type: bool
    default: false
extends_documentation_fragment: strata.overlay.common
seealso:
  - module: strata.overlay.overlay_layer
    description: Creates the writable overlay layer to mount on top of image layers.
  - module: strata.overlay.overlay_info
    description: Lists every layer with its holders and mount, and which are stale after a reboot.
'''

EXAMPLES = r'''
- name: Mount the web layer for the web service
  strata.overlay.overlay_mount:
    id: web-1
    holder: web

- name: Release it; the mount stays while other holders remain
  strata.overlay.overlay_mount:
    id: web-1
    holder: web
    state: unmounted

- name: Look at an image layer, read-only
  strata.overlay.overlay_mount:
    id: debian-base
    holder: audit

- name: Unmount whatever holds it
  strata.overlay.overlay_mount:
    id: web-1
    state: unmounted
    force: true

- name: Detach it although a process still works inside it
  strata.overlay.overlay_mount:
    id: web-1
    state: unmounted
    force: true
    lazy: true
'''

RETURN = r'''
path:
  description:
    - Where the layer's tree is seen, C(merged/), for both kinds of layer. Writable for an overlay layer without an
      applied diff and without children, read-only for one with either (see RV(readonly)); for a C(root/) layer a
      read-only bind mount of C(root/), so that nothing can change the layers that share its files.
    - After O(state=unmounted) the same path, which no longer shows the layer (and may not exist).
  returned: when the layer exists
  type: str
  sample: /var/lib/strata/overlay/web-1/merged
mounted:
  description: Whether the layer's own mount is at C(merged/) after the task.
  returned: always
  type: bool
  sample: true
holders:
  description: The holders recorded after the task.
  returned: always
  type: list
  elements: str
  sample: [web, backup]
released:
  description:
    - The holders this task dropped (in check mode, would drop) - with O(force=true) every holder that was recorded,
      otherwise O(holder) when it held the layer. Empty with O(state=mounted).
  returned: always
  type: list
  elements: str
  sample: [web, backup]
options:
  description:
    - The live mount's options from C(/proc/self/mountinfo), empty when not mounted. For an overlay, its superblock
      options (lowerdir, upperdir, workdir, ...); for a C(root/) layer's bind mount, the mount's own flags
      (C(ro), C(relatime), ...).
    - The directories are named as they are in the home, not by the C(/proc/self/fd/N) paths the mount is made with.
    - In the seed's layout (O(layout=overlay)) an overlay layer's C(lowerdir) is the C(root/) of the layer its
      C(lower-id) names, and C(upperdir) and C(workdir) are its own C(upper/) and C(work/) (the sample).
    - In the overlay2 layout C(lowerdir) is the C(diff/) of every layer below, nearest first, joined by C(:), and
      C(upperdir) the layer's own C(diff/); for C(web-1) on C(mid) on C(base) that is C(lowerdir) =
      C(/var/lib/strata/overlay/mid/diff:/var/lib/strata/overlay/base/diff), C(upperdir) =
      C(/var/lib/strata/overlay/web-1/diff), C(workdir) = C(/var/lib/strata/overlay/web-1/work).
      A read-only layer (one with an applied diff or with children) has its own C(diff/) first in C(lowerdir) and
      no C(upperdir) nor C(workdir). Docker's own mount data names the lower layers by their C(l/) short links
      (C(l/<LINK>)); returned here are the C(diff/) directories those links point to.
  returned: always
  type: dict
  sample: {"lowerdir": "/var/lib/strata/overlay/base/root", "upperdir": "/var/lib/strata/overlay/web-1/upper",
           "workdir": "/var/lib/strata/overlay/web-1/work"}
mount_options:
  description: The mount flags out of V(nosuid), V(nodev) and V(noexec) the live mount has, empty when not mounted.
  returned: always
  type: list
  elements: str
  sample: [nodev, nosuid]
readonly:
  description:
    - Whether the live mount at RV(path) is read-only, false when not mounted (in check mode, whether the mount the
      task would make is). A C(root/) layer, a layer holding an applied diff and a layer with children are mounted
      read-only; write into a child layer on top of them instead.
  returned: always
  type: bool
  sample: false
layer:
  description: The rest of what is known of the layer after the task (its kind, parent, diff_id, metadata and
    whether it is stale), in the shape M(strata.overlay.overlay_layer) returns it.
  returned: always
  type: dict
'''

# first: a signal while the rest is imported still ends in JSON
from ansible_collections.strata.overlay.plugins.module_utils import early_signals  # noqa: F401 pylint: disable=W0611
from ansible_collections.strata.overlay.plugins.module_utils.common import (LAYER_ID, argument_spec, flag, one_of,
                                                                            run_module)
from ansible_collections.strata.overlay.plugins.module_utils.layer_module import LayerModule
from ansible_collections.strata.overlay.plugins.module_utils.managers import MountManager


def main():
    module = LayerModule(argument_spec=argument_spec(
        id=LAYER_ID, state=one_of("mounted", "unmounted", "present", "absent"), holder=dict(type="str", default="ansible"),
        mount_label=dict(type="str", default=""), force=flag(), lazy=flag(),
        mount_options=dict(type="list", elements="str", choices=["nosuid", "nodev", "noexec"])),
        supports_check_mode=True)
    run_module(module, MountManager)


if __name__ == "__main__":
    main()
