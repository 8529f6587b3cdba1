"""overlay_image's state option through the module: stage, then remove by the same src."""

import os
import shutil

import pytest

from ansible_collections.strata.overlay.plugins.modules import overlay_image

from imagebuild import Image, write_oci_layout
from layertools import TarBuilder, layer_names


def test_stage_then_absent_by_the_same_src_leaves_no_layer(run_module, home, scratch):
    layout = os.path.join(scratch, "layout")
    os.mkdir(layout)
    write_oci_layout(layout, {"v1": Image([TarBuilder().file("a", "a\n").bytes(), TarBuilder().file("b", "b\n").bytes()])})
    src = "oci:%s:v1" % layout
    staged = run_module(overlay_image, {"home": home, "src": src, "remote_src": True, "platform": "linux/amd64"})
    assert staged["changed"] and "failed" not in staged
    check = run_module(overlay_image, {"home": home, "src": src, "state": "absent"}, check_mode=True, diff=True)
    assert check["changed"] and len(check["removed"]) == 2 and check["diff"]["after"]["layers"] == []
    gone = run_module(overlay_image, {"home": home, "src": src, "state": "absent"})
    assert gone["removed"] == check["removed"] and gone["kept"] == [] and gone["images"][0]["reference"] == src
    assert layer_names(home) == []
    again = run_module(overlay_image, {"home": home, "src": src, "state": "absent"})
    assert again["changed"] is False


@pytest.mark.layout("overlay2")  # overlay2's l/ of short links
def test_staging_again_makes_lost_short_links_again_and_says_so(run_module, home, scratch):
    layout = os.path.join(scratch, "layout")
    os.mkdir(layout)
    write_oci_layout(layout, {"v1": Image([TarBuilder().file("a", "a\n").bytes(), TarBuilder().file("b", "b\n").bytes()])})
    args = {"home": home, "src": "oci:%s:v1" % layout, "remote_src": True, "platform": "linux/amd64"}
    run_module(overlay_image, args)
    links = os.path.join(home, "l")
    wanted = sorted(os.listdir(links))
    shutil.rmtree(links)
    again = run_module(overlay_image, args)
    assert again["changed"] and "made again" in again["warnings"][-1]
    assert sorted(os.listdir(links)) == wanted
    assert run_module(overlay_image, args)["changed"] is False


def test_a_pull_that_cannot_reach_its_registry_leaves_no_home(run_module, scratch):
    """The home is made once the image's manifest is read: a registry that cannot be reached (a mistyped
    host or port) fails the task and leaves no new directory behind, as check mode does."""
    home = os.path.join(scratch, "new-home")
    failed = run_module(overlay_image, {"home": home, "src": "docker://127.0.0.1:1/team/app:1", "retries": 0})
    assert failed.get("failed") and "127.0.0.1:1" in failed["msg"]
    assert not os.path.lexists(home)
