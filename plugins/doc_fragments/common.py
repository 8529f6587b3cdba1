# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


# What every strata.overlay module shares: the layer home and its id maps, the notes on root, locking and
# signals, the attributes (check and diff mode) and the authors. Modules add their own options and say
# where their check_mode and diff_mode support differs.
class ModuleDocFragment(object):

    DOCUMENTATION = r'''
options:
  home:
    description:
      - The layer home, the directory that holds every layer (the Go driver's C(home)).
      - An absolute path; a relative one is refused, since it would be taken from the module's working directory
        on the host (the login user's home over SSH).
      - Created (mode 0700, owned by the remapped root) if missing by the modules that write layers;
        M(strata.overlay.overlay_info) and check mode never create it.
      - Must be on a filesystem overlay can use as upper layer; btrfs, aufs, zfs, overlayfs and
        filesystems without d_type are refused.
      - A home on tmpfs or ramfs works, but is empty after a reboot (layers, holders and records alike); the
        task that makes such a home, and M(strata.overlay.overlay_info) reading it, return a warning saying so.
      - Opened, never trusted by path. Refused when it or any directory above it is owned by a user
        other than root (the home itself may belong to the remapped root), or is writable by such a
        user without the sticky bit, through its mode bits or through a POSIX ACL entry (within the
        ACL's mask); when a symlink on the way belongs to another user; when it is
        C(/); and when it is an existing directory holding anything but layer directories,
        C(.strata) and an C(overlay2) home's C(l/). C(.strata) and its C(layers/) and C(tmp/) must be 0700 directories owned by root
        or the remapped root, and symlinks there are refused.
      - A read-only home can be read by M(strata.overlay.overlay_info); the other modules fail with
        C(home is read-only).
    type: path
    default: /var/lib/strata/overlay
  uid_maps:
    description:
      - User id mappings (as in C(/proc/self/uid_map)). Layer directories are owned by the host
        uid of container uid 0, and owners in layer tarballs are shifted through these maps.
      - An owner outside the maps is an error. Each range must end at or below id 4294967294
        (4294967295 is not an id).
      - The maps belong to the home. They are recorded in C(<home>/.strata/maps.json) when the home is
        first written (no maps given then means the identity), and every later call uses the recorded
        ones. Leave this option out to use them; a call that passes different maps fails.
    type: list
    elements: dict
    suboptions: &id_range
      container_id:
        description: First id inside the container.
        type: int
        required: true
      host_id:
        description: First id on the host.
        type: int
        required: true
      size:
        description: Number of ids in the range.
        type: int
        required: true
  gid_maps:
    description:
      - Group id mappings, as O(uid_maps) for groups; recorded with the home the same way.
    type: list
    elements: dict
    suboptions: *id_range
  layout:
    description:
      - The on-disk layout of the layer home. C(overlay) is the layout of Docker's legacy C(overlay)
        driver, the one this collection has always written. C(overlay2) is the layout of Docker's
        C(overlay2) driver (Docker 20.10's default, and containers-storage's), where each layer keeps only
        its own changes in C(diff/), with the short links Docker keeps in C(<home>/l), and a mount stacks
        the layers below it, up to Docker's 128. A child layer then costs what its diff costs, where the
        C(overlay) layout gives every layer built by a diff a hardlink copy of its parent's whole tree.
      - The layout belongs to the home. It is recorded in C(<home>/.strata/layout.json) when the home is
        first written; a home without that record (written by an older version, or by Docker) is in the
        layout its layer directories are in. Leave this option out to use the home's layout; a call that
        names another layout fails. A new home gets C(overlay) when it is left out.
      - The layer id C(l) is reserved in every layout (Docker's C(overlay2) layout keeps its short links
        in C(<home>/l)). A home Docker wrote with C(--storage-driver overlay2) is read and written in
        place.
      - Both layouts take O(uid_maps) and O(gid_maps) that give the home to another user than root (a
        remapped root). That user owns the home, so a mount names no path in it. In C(overlay2) root reads
        the C(lower) file and the short links itself and mounts each lower C(diff/) by a descriptor it
        opened and checked; a layer directory that is not root's, or whose C(link) file names another
        link, is refused.
    type: str
    choices: [overlay, overlay2]
notes:
  - Runs as root on Linux hosts whose kernel has overlayfs. Managed hosts need nothing but Python 3.
  - Every run takes a lock on the layer home, so concurrent tasks on one host see each other's work whole
    (readers and check runs a shared one, and only when the lock file exists).
  - SIGTERM or SIGINT during a run makes it fail with a message naming the signal; what the run had half
    made (temporary files and mounts, a layer created for an interrupted apply) is removed first.
author:
  - Strata Overlay maintainers (@strata-overlay)
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
      Nothing on the host changes (no home, no C(.strata), no lock file, no probe, no cleanup of
      leftovers), and the result shows the state the real run would produce.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
'''
