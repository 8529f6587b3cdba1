"""A layer home on tmpfs or ramfs is said to lose its layers at reboot, when it is made and when it is read.

Overlay works on tmpfs, so nothing refuses such a home, and nothing showed that a reboot would empty it
(the boot unit then has nothing to restore). Each filesystem here is a real mount in the test's
scratch directory: the scratch tmpfs itself, a ramfs, and ext4, xfs and btrfs loop filesystems.
"""

import os
import subprocess

import pytest

from ansible_collections.strata.overlay.plugins.modules import (
    overlay_home, overlay_image, overlay_info, overlay_layer)

from imagebuild import Image, write_oci_layout
from layertools import TarBuilder

REBOOT = "which keeps nothing across a reboot"


def _volatile(res):
    return [w for w in res.get("warnings", []) if REBOOT in w]


@pytest.fixture
def ramfs(scratch):
    path = os.path.join(scratch, "ramfs")
    os.mkdir(path)
    subprocess.run(["mount", "-t", "ramfs", "ramfs", path], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", path], check=False)


def test_a_home_made_on_tmpfs_is_warned_about_once_and_by_overlay_info(run_module, home, layout):
    res = run_module(overlay_layer, {"id": "base", "home": home, "layout": layout})
    assert res["changed"] and not res.get("failed"), res
    [warning] = _volatile(res)
    assert warning.startswith("the layer home %s is on tmpfs, %s" % (home, REBOOT))
    assert "disk-backed filesystem (ext4, xfs)" in warning and "or accept that they are staged again" in warning
    again = run_module(overlay_layer, {"id": "child", "parent": "base", "home": home})
    assert again["changed"] and _volatile(again) == [], again  # the home was there already
    info = run_module(overlay_info, {"home": home})
    assert _volatile(info) == [warning], info


def test_a_check_run_that_would_make_the_home_on_tmpfs_warns_and_makes_nothing(run_module, home, layout):
    res = run_module(overlay_layer, {"id": "base", "home": home, "layout": layout}, check_mode=True)
    assert res["changed"] and len(_volatile(res)) == 1, res
    assert not os.path.exists(home)
    assert _volatile(run_module(overlay_info, {"home": home})) == []  # no home: nothing to lose yet


def test_a_home_made_by_overlay_home_or_an_image_on_tmpfs_is_warned_about(run_module, scratch, home, layout):
    res = run_module(overlay_home, {"state": "present", "home": home, "layout": layout})
    assert res["changed"] and len(_volatile(res)) == 1, res
    images = os.path.join(scratch, "images")
    os.mkdir(images)
    write_oci_layout(images, {"v1": Image([TarBuilder().file("a", "a\n").bytes()])})
    other = os.path.join(scratch, "other-home")
    res = run_module(overlay_image, {"src": "oci:%s:v1" % images, "remote_src": True, "home": other,
                                     "layout": layout})
    assert res["changed"] and not res.get("failed"), res
    assert _volatile(res) == ["the layer home %s is on tmpfs, %s" % (other, _volatile(res)[0].split(", ", 1)[1])]


def test_a_home_on_ramfs_is_warned_about(run_module, ramfs, layout):
    home = os.path.join(ramfs, "home")
    res = run_module(overlay_layer, {"id": "base", "home": home, "layout": layout})
    assert res["changed"] and not res.get("failed"), res
    assert [w.split(",")[0] for w in _volatile(res)] == ["the layer home %s is on ramfs" % home]
    assert len(_volatile(run_module(overlay_info, {"home": home}))) == 1


@pytest.mark.parametrize("fstype, mkfs_args", [("ext4", ()), ("xfs", ("-n", "ftype=1"))])
def test_a_home_on_a_disk_filesystem_is_not_warned_about(run_module, loopfs, layout, fstype, mkfs_args):
    home = os.path.join(loopfs(fstype, mkfs_args=mkfs_args), "home")
    res = run_module(overlay_layer, {"id": "base", "home": home, "layout": layout})
    assert res["changed"] and not res.get("failed"), res
    assert _volatile(res) == [], res
    info = run_module(overlay_info, {"home": home})
    assert info["status"]["backing_fs"] == fstype and _volatile(info) == [], info


def test_a_btrfs_home_is_refused_for_what_it_is_not_warned_about(run_module, loopfs):
    home = os.path.join(loopfs("btrfs", size_mb=200), "home")
    res = run_module(overlay_layer, {"id": "base", "home": home})
    assert res.get("failed") and "btrfs" in res["msg"] and _volatile(res) == [], res
    info = run_module(overlay_info, {"home": home})
    assert info["status"]["backing_fs"] == "btrfs" and _volatile(info) == [], info
