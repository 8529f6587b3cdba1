"""Layer ids and uid/gid maps."""

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.ids import (
    IDMap, parse_maps, root_pair, to_container, to_host, validate_holder, validate_layer_id)


@pytest.mark.parametrize("good", ["a", "A0", "sha256.abc-def_1", "x" * 128, "0"])
def test_valid_ids(good):
    assert validate_layer_id(good) == good


@pytest.mark.parametrize("bad", ["", ".", "..", "-a", "_a", "a/b", "a b", "x" * 129, "é", None, 5, "a\n"])
def test_invalid_ids(bad):
    with pytest.raises(OverlayError, match="invalid layer id"):
        validate_layer_id(bad)


@pytest.mark.parametrize("what", ["layer id", "parent id"])
def test_l_is_reserved_for_the_overlay2_short_links(what):
    """<home>/l/ holds overlay2's short links: a layer called l would collide with them."""
    with pytest.raises(OverlayError, match="invalid %s 'l': the name is reserved .*<home>/l" % what):
        validate_layer_id("l", what)
    assert validate_layer_id("L") == "L" and validate_layer_id("l1") == "l1"


def test_maps():
    maps = parse_maps([{"container_id": 0, "host_id": 100000, "size": 1000},
                       {"container_id": 1000, "host_id": 5000, "size": 1}])
    assert to_host(0, maps) == 100000 and to_host(999, maps) == 100999 and to_host(1000, maps) == 5000
    assert to_container(100999, maps) == 999 and to_container(5000, maps) == 1000
    with pytest.raises(OverlayError, match="not mapped"):
        to_host(1001, maps)
    with pytest.raises(OverlayError, match="not mapped"):
        to_container(0, maps)
    assert to_host(42, []) == 42
    assert root_pair(maps, []) == (100000, 0)
    with pytest.raises(OverlayError, match="not mapped"):
        root_pair([IDMap(1, 100, 10)], [])


@pytest.mark.parametrize("bad", [[{"container_id": 0, "host_id": 1}], [{"container_id": -1, "host_id": 0, "size": 1}],
                                 [{"container_id": 0, "host_id": 0, "size": 0}], ["0:0:1"],
                                 [{"container_id": "x", "host_id": 0, "size": 1}]])
def test_bad_maps(bad):
    with pytest.raises(OverlayError):
        parse_maps(bad)


@pytest.mark.parametrize("maps, side", [
    ([(0, 100000, 65536), (0, 200000, 10)], "container"),        # container 0 mapped twice
    ([(0, 100000, 65536), (100, 300000, 10)], "container"),      # 100..109 inside the first range
    ([(0, 100000, 10), (10, 100005, 10)], "host"),               # host 100005..100009 twice
])
def test_overlapping_ranges_are_refused(maps, side):
    """An id both ranges map has two owners on one side, and files applied under one map would be
    read back under the other. The kernel refuses such a uid_map; so do the maps of a home."""
    with pytest.raises(OverlayError, match="overlap on the %s side" % side):
        parse_maps([{"container_id": c, "host_id": h, "size": s} for c, h, s in maps])


def test_adjacent_ranges_are_fine():
    maps = parse_maps([{"container_id": 0, "host_id": 100000, "size": 10},
                       {"container_id": 10, "host_id": 100010, "size": 10}])
    assert to_host(10, maps) == 100010


@pytest.mark.parametrize("good", ["ansible", "web-1", "svc:db@host", "名前", "a b", "x" * 256])
def test_valid_holders(good):
    assert validate_holder(good) == good


@pytest.mark.parametrize("bad,says", [
    ("web\nbase  (held by root)", "control"), ("a\rb", "control"), ("a\tb", "control"), ("\x1b[2Jx", "control"),
    ("a\x00b", "control"), ("a\u2028b", "control"), ("a\x85b", "control"), ("x" * 257, "257 characters"),
    ("", "non-empty"), ("   ", "non-empty"), (None, "non-empty"), (3, "non-empty")])
def test_holders_that_could_forge_output_are_refused(bad, says):
    with pytest.raises(OverlayError, match=says):
        validate_holder(bad, "app")
