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
