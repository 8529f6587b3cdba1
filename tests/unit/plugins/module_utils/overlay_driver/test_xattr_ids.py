"""Ids inside capabilities and POSIX ACLs follow the uid/gid maps, or their xattr is dropped."""

import struct

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.ids import IDMap
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.xattr_ids import (
    remap_value, remap_xattrs)

UIDS = [IDMap(0, 100000, 65536)]
GIDS = [IDMap(0, 200000, 65536)]
CAP_NET_RAW = 1 << 13


def cap_v2(permitted=CAP_NET_RAW):
    return struct.pack("<IIIII", 0x02000001, permitted, 0, 0, 0)


def cap_v3(rootid, permitted=CAP_NET_RAW):
    return struct.pack("<IIIIII", 0x03000001, permitted, 0, 0, 0, rootid)


def acl(*entries):
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", tag, perm, ident) for tag, perm, ident in entries)


USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
UNDEFINED = 0xFFFFFFFF


def test_capability_v3_has_its_rootid_mapped_both_ways():
    assert remap_value("security.capability", cap_v3(0), UIDS, GIDS) == cap_v3(100000)
    assert remap_value("security.capability", cap_v3(1000), UIDS, GIDS) == cap_v3(101000)
    assert remap_value("security.capability", cap_v3(101000), UIDS, GIDS, to_host_side=False) == cap_v3(1000)


def test_capability_v2_and_v1_applied_under_maps_are_bound_to_the_containers_root():
    """v1 and v2 name no rootid: the kernel honours them in every namespace, the host's too. Applied under
    maps they become v3 with the mapped root as rootid (what the kernel stores when the container's root
    sets one), effective flag and capability sets kept."""
    v1 = struct.pack("<III", 0x01000001, CAP_NET_RAW, 0)
    assert remap_value("security.capability", cap_v2(), UIDS, GIDS) == cap_v3(100000)
    assert remap_value("security.capability", v1, UIDS, GIDS) == cap_v3(100000)
    not_effective = struct.pack("<IIIII", 0x02000000, CAP_NET_RAW, 0, 1, 0)
    assert remap_value("security.capability", not_effective, UIDS, GIDS) == struct.pack(
        "<IIIIII", 0x03000000, CAP_NET_RAW, 0, 1, 0, 100000)


def test_capability_of_the_containers_root_exports_as_v2_and_a_round_trip_keeps_the_bytes():
    """Exported, a v3 whose rootid is the container's root is v2 (as containers-storage writes it): a v2 layer
    applied under maps and exported again is byte for byte what it was. A v2 found on the host stays v2."""
    assert remap_value("security.capability", cap_v3(100000), UIDS, GIDS, to_host_side=False) == cap_v2()
    applied = remap_value("security.capability", cap_v2(), UIDS, GIDS)
    assert remap_value("security.capability", applied, UIDS, GIDS, to_host_side=False) == cap_v2()
    assert remap_value("security.capability", cap_v2(), UIDS, GIDS, to_host_side=False) == cap_v2()


def test_capability_v2_without_a_mapped_root_or_of_the_wrong_size_is_dropped():
    no_root = [IDMap(1, 100001, 65535)]
    assert remap_value("security.capability", cap_v2(), no_root, GIDS) is None
    assert remap_value("security.capability", cap_v2() + b"\x00", UIDS, GIDS) is None
    assert remap_value("security.capability", struct.pack("<II", 0x01000000, 0), UIDS, GIDS) is None


@pytest.mark.parametrize("value", [cap_v3(70000), cap_v3(0)[:-1], b"\x00\x00", b""])
def test_a_capability_outside_the_map_or_malformed_is_dropped(value):
    assert remap_value("security.capability", value, UIDS, GIDS) is None


@pytest.mark.parametrize("name", ["system.posix_acl_access", "system.posix_acl_default"])
def test_acl_user_and_group_entries_are_mapped_the_rest_kept(name):
    given = acl((USER_OBJ, 7, UNDEFINED), (USER, 5, 1000), (GROUP_OBJ, 5, UNDEFINED), (GROUP, 4, 50),
                (MASK, 7, UNDEFINED), (OTHER, 0, UNDEFINED))
    mapped = acl((USER_OBJ, 7, UNDEFINED), (USER, 5, 101000), (GROUP_OBJ, 5, UNDEFINED), (GROUP, 4, 200050),
                 (MASK, 7, UNDEFINED), (OTHER, 0, UNDEFINED))
    assert remap_value(name, given, UIDS, GIDS) == mapped
    assert remap_value(name, mapped, UIDS, GIDS, to_host_side=False) == given


@pytest.mark.parametrize("value", [
    acl((USER_OBJ, 7, UNDEFINED), (USER, 5, 70000), (GROUP_OBJ, 5, UNDEFINED), (MASK, 7, UNDEFINED),
        (OTHER, 0, UNDEFINED)),
    acl((USER_OBJ, 7, UNDEFINED), (GROUP_OBJ, 5, UNDEFINED), (GROUP, 4, 65536), (MASK, 7, UNDEFINED),
        (OTHER, 0, UNDEFINED)),
    acl((USER_OBJ, 7, UNDEFINED))[:-2], struct.pack("<I", 1) + struct.pack("<HHI", USER_OBJ, 7, UNDEFINED), b"",
])
def test_an_acl_with_an_id_outside_the_maps_or_malformed_is_dropped(value):
    assert remap_value("system.posix_acl_access", value, UIDS, GIDS) is None


def test_other_xattrs_and_no_maps_are_left_alone():
    xattrs = {"user.x": b"\x02\x00\x00\x00", "security.capability": cap_v3(70000), "trusted.t": b"t"}
    assert remap_xattrs(xattrs, [], []) == xattrs
    assert remap_xattrs(xattrs, UIDS, GIDS) == {"user.x": b"\x02\x00\x00\x00", "trusted.t": b"t"}
