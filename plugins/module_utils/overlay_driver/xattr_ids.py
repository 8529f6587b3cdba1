# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""User and group ids inside xattr values, remapped with the home's uid/gid maps.

Owners are not the only ids in a layer: a file capability of revision 3 names the
uid that is root for it (its rootid), and a POSIX ACL names users and groups. Under
uid/gid maps a layer's files belong to the remapped ids, so these ids are remapped
too, as containers-storage does, or the xattr would grant what the layer never said:

- ``security.capability``: revision 3 has its rootid mapped (container -> host when
  applying, host -> container when exporting). Revisions 1 and 2 name no rootid, and
  the kernel honours them in every user namespace, the host's included: applied
  under maps they would give the layer's file its capabilities for any process on
  the host that runs it (the remapped root owns the home, and some account may act
  as that uid), not only inside the container. They are therefore applied as
  revision 3 with the container's root (0) mapped as their rootid, as the kernel
  itself stores them when the container's root sets one; exported, a revision 3
  whose rootid is the container's root becomes revision 2 again (what the kernel
  shows that root, and what containers-storage exports), so a layer applied and
  exported keeps its bytes.
- ``system.posix_acl_access`` and ``system.posix_acl_default``: every named user
  (ACL_USER) and group (ACL_GROUP) entry is mapped; the owner, group-owner, mask and
  other entries name no id.
- A value with an id outside the maps is dropped with its xattr: there is no id to
  give it that means what the layer meant. A value that is not well formed is
  dropped too, rather than written with its ids unmapped.
"""

import struct

from .errors import OverlayError
from .ids import to_container, to_host

CAPABILITY = "security.capability"
ACLS = ("system.posix_acl_access", "system.posix_acl_default")

# linux/capability.h
_CAP_REVISION_MASK = 0xFF000000
_CAP_REVISION_1 = 0x01000000
_CAP_REVISION_2 = 0x02000000
_CAP_REVISION_3 = 0x03000000
_CAP_V1_SIZE = 12  # magic, one (permitted, inheritable) pair
_CAP_V2_SIZE = 20  # magic, two pairs
_CAP_V3_SIZE = 24  # magic, two pairs, rootid

# linux/posix_acl_xattr.h: a header (le32 version 2), then entries (le16 tag, le16 perm, le32 id)
_ACL_VERSION = 2
_ACL_USER = 0x02
_ACL_GROUP = 0x08
_ACL_ENTRY = struct.Struct("<HHI")


def remap_xattrs(xattrs, uid_maps, gid_maps, to_host_side=True):
    """xattrs (name -> bytes) with the ids in their values mapped; the unmappable ones left out.

    to_host_side: True maps container ids to host ids (applying a layer), False the
    other way (exporting one). Without maps, xattrs are returned as they are.
    """
    if not uid_maps and not gid_maps:
        return xattrs
    out = {}
    for name, value in xattrs.items():
        mapped = remap_value(name, value, uid_maps, gid_maps, to_host_side)
        if mapped is not None:
            out[name] = mapped
    return out


def remap_value(name, value, uid_maps, gid_maps, to_host_side=True):
    """The value of xattr name with its ids mapped; None when it must be dropped."""
    translate = to_host if to_host_side else to_container
    try:
        if name == CAPABILITY:
            return _capability(value, lambda uid: translate(uid, uid_maps), to_host_side)
        if name in ACLS:
            return _acl(value, lambda uid: translate(uid, uid_maps), lambda gid: translate(gid, gid_maps))
    except OverlayError:
        return None  # an id outside the maps
    return value


def _capability(value, map_uid, to_host_side):
    if len(value) < 4:
        return None
    (magic,) = struct.unpack_from("<I", value)
    revision, flags = magic & _CAP_REVISION_MASK, magic & ~_CAP_REVISION_MASK
    if revision == _CAP_REVISION_3:
        if len(value) != _CAP_V3_SIZE:
            return None
        (rootid,) = struct.unpack_from("<I", value, 20)
        rootid = map_uid(rootid)
        if not to_host_side and rootid == 0:
            return struct.pack("<I", _CAP_REVISION_2 | flags) + value[4:20]
        return value[:20] + struct.pack("<I", rootid)
    if not to_host_side:
        return value  # read on the host as revision 1 or 2: the container's root holds it too
    # applied: honoured in every namespace as they are, so bound to the container's root (revision 3)
    if revision == _CAP_REVISION_2 and len(value) == _CAP_V2_SIZE:
        data = value[4:20]
    elif revision == _CAP_REVISION_1 and len(value) == _CAP_V1_SIZE:
        data = value[4:12] + bytes(8)  # the upper 32 capabilities: none
    else:
        return None
    return struct.pack("<I", _CAP_REVISION_3 | flags) + data + struct.pack("<I", map_uid(0))


def _acl(value, map_uid, map_gid):
    if len(value) < 4 or (len(value) - 4) % _ACL_ENTRY.size:
        return None
    (version,) = struct.unpack_from("<I", value)
    if version != _ACL_VERSION:
        return None
    out = bytearray(value[:4])
    for offset in range(4, len(value), _ACL_ENTRY.size):
        tag, perm, ident = _ACL_ENTRY.unpack_from(value, offset)
        if tag == _ACL_USER:
            ident = map_uid(ident)
        elif tag == _ACL_GROUP:
            ident = map_gid(ident)
        out += _ACL_ENTRY.pack(tag, perm, ident)
    return bytes(out)
