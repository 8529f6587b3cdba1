"""Id maps against /etc/subuid and /etc/subgid: a range given to a user is warned about (files in a temp dir,
never the host's)."""

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.ids import parse_maps
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.subids import map_warnings, read_ranges

DEBIAN = "alice:100000:65536\nbob:165536:65536\n"


@pytest.fixture
def subids(tmp_path):
    def write(subuid, subgid=None):
        paths = []
        for name, text in (("subuid", subuid), ("subgid", subuid if subgid is None else subgid)):
            path = tmp_path / name
            path.write_text(text)
            paths.append(str(path))
        return paths
    return write


def maps(*ranges):
    return parse_maps([{"container_id": c, "host_id": h, "size": s} for c, h, s in ranges])


def test_the_debian_first_users_range_is_warned_about_on_both_sides(subids):
    subuid, subgid = subids(DEBIAN)
    found = map_warnings(maps((0, 100000, 65536)), maps((0, 100000, 65536)), subuid, subgid)
    assert len(found) == 2
    assert found[0].startswith("uid_maps 0:100000:65536 shares host ids 100000-165535 with alice's range "
                               "100000:65536 in %s" % subuid)
    assert found[1].startswith("gid_maps 0:100000:65536") and subgid in found[1]


def test_a_partial_overlap_names_the_shared_ids_and_each_user(subids):
    subuid, subgid = subids(DEBIAN, "")
    found = map_warnings(maps((0, 160000, 10000)), maps((0, 160000, 10000)), subuid, subgid)
    assert [w.split(" with ")[0] for w in found] == [
        "uid_maps 0:160000:10000 shares host ids 160000-165535",
        "uid_maps 0:160000:10000 shares host ids 165536-169999"]
    assert "alice's" in found[0] and "bob's" in found[1]


@pytest.mark.parametrize("ranges", [[(0, 1000000000, 65536)], [(0, 165536 + 65536, 10)], [(0, 99990, 10)]])
def test_a_range_no_user_has_is_not_warned_about(subids, ranges):
    subuid, subgid = subids(DEBIAN)
    assert map_warnings(maps(*ranges), maps(*ranges), subuid, subgid) == []


def test_identity_missing_files_and_bad_lines_give_no_warning(subids, tmp_path):
    subuid, subgid = subids("# comment\n\nbroken\nx:y:z\nneg:-5:10\nzero:100000:0\n")
    assert read_ranges(subuid) == []
    assert map_warnings(maps((0, 100000, 65536)), [], subuid, subgid) == []
    assert map_warnings([], [], subuid, subgid) == []
    assert map_warnings(maps((0, 100000, 10)), [], str(tmp_path / "none"), str(tmp_path / "none")) == []


def _accounts(tmp_path, passwd, group=""):
    (tmp_path / "passwd").write_text(passwd)
    (tmp_path / "group").write_text(group)
    return str(tmp_path / "passwd"), str(tmp_path / "group")


def test_an_accounts_own_id_inside_the_maps_is_warned_about_on_each_side(subids, tmp_path):
    subuid, subgid = subids("")
    passwd, group = _accounts(tmp_path, "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n"
                                        "bob:x:1001:1001::/home/bob:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
                              "root:x:0:\nstaff:x:50:\nalice:x:1000:\n")
    found = map_warnings(maps((0, 1000, 65536)), maps((0, 1000, 10)), subuid, subgid, passwd, group)
    assert found == [
        "uid_maps 0:1000:65536 holds the uids of accounts in %s: alice (uid 1000), bob (uid 1001), nobody (uid 65534); "
        "each owns the layers' files of the container uid its id maps to, and can change them; give the maps a range "
        "no account or user has" % passwd,
        "gid_maps 0:1000:10 holds the gids of accounts in %s: alice (gid 1000); each owns the layers' files of the "
        "container gid its id maps to, and can change them; give the maps a range no account or user has" % group]


def test_many_accounts_are_counted_after_the_first_ones(subids, tmp_path):
    subuid, subgid = subids("")
    passwd, group = _accounts(tmp_path, "".join("u%d:x:%d:%d::/:/bin/sh\n" % (i, 2000 + i, 2000 + i)
                                                for i in range(8)))
    [found] = map_warnings(maps((0, 2000, 100)), [], subuid, subgid, passwd, group)
    assert "u0 (uid 2000), u1 (uid 2001), u2 (uid 2002), u3 (uid 2003), u4 (uid 2004) and 3 more;" in found


@pytest.mark.parametrize("ranges", [[(0, 0, 65536)], [(1000, 1000, 1)], [(0, 1000000000, 65536)], [(0, 1002, 10)]])
def test_identity_maps_root_and_ranges_outside_every_account_are_not_warned_about(subids, tmp_path, ranges):
    subuid, subgid = subids("")
    passwd, group = _accounts(tmp_path, "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n"
                                        "# comment\nbroken\n+nis\nodd:x:none:0::/:/bin/sh\n")
    assert map_warnings(maps(*ranges), [], subuid, subgid, passwd, group) == []
