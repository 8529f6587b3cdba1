# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r'''
options:
  home:
    description:
      - The layer home, the directory that holds every layer (the Go driver's C(home)).
      - Created (mode 0700, owned by the remapped root) if missing by the modules that write layers;
        M(strata.overlay.overlay_info) and check mode never create it.
      - Must be on a filesystem overlay can use as upper layer; btrfs, aufs, zfs, overlayfs and
        filesystems without d_type are refused.
    type: path
    default: /var/lib/strata/overlay
  uid_maps:
    description:
      - User id mappings (as in C(/proc/self/uid_map)). Layer directories are owned by the host
        uid of container uid 0, and owners in layer tarballs are shifted through these maps.
      - An owner outside the maps is an error.
    type: list
    elements: dict
    default: []
    suboptions:
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
      - Group id mappings, as O(uid_maps) for groups.
    type: list
    elements: dict
    default: []
    suboptions:
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
notes:
  - Runs as root on Linux hosts whose kernel has overlayfs. Managed hosts need nothing but Python 3.
  - Every run takes a lock on the layer home, so concurrent tasks on one host see each other's work whole.
'''

    ATTRIBUTES = r'''
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
'''
