"""overlay_home through the module: a home removed whole, then ok and unchanged."""

import os

import pytest

from ansible_collections.strata.overlay.plugins.modules import overlay_home, overlay_layer, overlay_mount


def test_absent_removes_the_home_after_its_last_holder_is_released(run_module, home):
    run_module(overlay_layer, {"id": "base", "home": home})
    run_module(overlay_mount, {"id": "base", "home": home, "holder": "web"})
    refused = run_module(overlay_home, {"home": home, "state": "absent"})
    assert refused["failed"] and "layer base is held by web" in refused["msg"] and os.path.isdir(home)
    run_module(overlay_mount, {"id": "base", "home": home, "holder": "web", "state": "unmounted"})
    gone = run_module(overlay_home, {"home": home, "state": "absent"}, diff=True)
    assert gone["changed"] and gone["removed"] == ["base"] and not os.path.lexists(home)
    assert run_module(overlay_home, {"home": home, "state": "absent"})["changed"] is False


def test_without_state_it_is_refused_and_removes_nothing(run_module, home):
    """A task naming only home, as one written to make sure the home is there, must not remove its layers."""
    run_module(overlay_layer, {"id": "base", "home": home})
    res = run_module(overlay_home, {"home": home})
    assert res["failed"] and "state" in res["msg"]
    assert os.path.isdir(os.path.join(home, "base"))


@pytest.mark.layout("overlay2")  # overlay2's l/ of short links
def test_present_makes_lost_short_links_again_and_says_so(run_module, home):
    run_module(overlay_layer, {"id": "base", "home": home})
    links = os.path.join(home, "l")
    [link] = os.listdir(links)
    os.unlink(os.path.join(links, link))
    check = run_module(overlay_home, {"home": home, "state": "present"}, check_mode=True)
    assert check["changed"] and "would be made again" in check["warnings"][-1] and os.listdir(links) == []
    res = run_module(overlay_home, {"home": home, "state": "present"})
    assert res["changed"] and res["warnings"][-1].endswith(os.path.join(links, link))
    assert os.readlink(os.path.join(links, link)) == "../base/diff"
    assert run_module(overlay_home, {"home": home, "state": "present"})["changed"] is False
