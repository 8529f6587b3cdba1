"""overlay_info warns about id maps that overlap a user's subordinate ids (temp files, never the host's)."""

import os

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.managers import InfoManager
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import subids as subids_mod
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.ids import parse_maps
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore
from ansible_collections.strata.overlay.plugins.modules import overlay_info

DEBIAN = "alice:100000:65536\nbob:165536:65536\n"
PASSWD = "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\n"
GROUP = "root:x:0:\nalice:x:1000:\n"


@pytest.fixture
def subids(tmp_path, monkeypatch):
    """/etc/subuid and /etc/subgid as temp files holding Debian's first two users, and /etc/passwd and
    /etc/group holding root and one user whose ids are outside them."""
    for name, attr, text in (("subuid", "SUBUID", DEBIAN), ("subgid", "SUBGID", DEBIAN),
                             ("passwd", "PASSWD", PASSWD), ("group", "GROUP", GROUP)):
        path = tmp_path / name
        path.write_text(text)
        monkeypatch.setattr(subids_mod, attr, str(path))
    return tmp_path


def test_overlay_info_returns_and_warns_the_overlaps(home, subids, run_module):
    given = [{"container_id": 0, "host_id": 100000, "size": 65536}]
    missing = run_module(overlay_info, {"home": home, "uid_maps": given, "gid_maps": given})
    assert len(missing["map_warnings"]) == 2 and missing["warnings"] == missing["map_warnings"]
    store = LayerStore(home, given, given)
    with store.locked():
        store.ensure_present("base")
    store.close()
    recorded = run_module(overlay_info, {"home": home})  # the home's recorded maps, not given again
    assert recorded["map_warnings"] == missing["map_warnings"]
    assert os.path.isdir(os.path.join(home, "base"))


def test_overlay_info_without_maps_warns_nothing(home, subids, run_module):
    result = run_module(overlay_info, {"home": home})
    assert result["map_warnings"] == [] and "warnings" not in result


def test_overlay_info_warns_about_a_map_holding_an_accounts_own_id(home, subids, run_module):
    (subids / "passwd").write_text(PASSWD + "svc:x:1000000005:1000000005::/srv:/usr/sbin/nologin\n")
    given = [{"container_id": 0, "host_id": 1000000000, "size": 65536}]
    result = run_module(overlay_info, {"home": home, "uid_maps": given, "gid_maps": given})
    assert result["map_warnings"] == [
        "uid_maps 0:1000000000:65536 holds the uids of accounts in %s: svc (uid 1000000005); each owns the layers' "
        "files of the container uid its id maps to, and can change them; give the maps a range no account or user "
        "has" % (subids / "passwd")]
    assert result["warnings"] == result["map_warnings"]


def test_the_map_warnings_join_the_warnings_already_given(subids):
    """A warning the run gave before the maps were looked at (as _read may, in a later change) is kept."""
    given = parse_maps([{"container_id": 0, "host_id": 100000, "size": 65536}], "uid_maps")
    result = {"warnings": ["said before"]}
    InfoManager._warn_maps(result, given, given)  # pylint: disable=protected-access
    assert len(result["map_warnings"]) == 2 and result["warnings"] == ["said before"] + result["map_warnings"]
