"""A whole home goes once nothing in it is used; nothing of .strata stays; a wrong home is refused whole."""

import os

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.home_manager import HomeManager
from ansible_collections.strata.overlay.plugins.module_utils.image_manager import ImageManager
from ansible_collections.strata.overlay.plugins.module_utils.managers import LayerManager, MountManager
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import mounts, syscalls

from imagebuild import Image, write_oci_layout
from layertools import TarBuilder, content_dir, home_names


def layer(home, layer_id, parent=""):
    LayerManager({"home": home, "id": layer_id, "parent": parent, "state": "present", "force": False}).run()


def mount(home, layer_id, state="mounted", force=False):
    return MountManager({"home": home, "id": layer_id, "holder": "web", "mount_label": "", "force": force,
                         "lazy": False, "state": state}).run()


def home_state(home, state="absent", check_mode=False, diff=False):
    return HomeManager({"home": home, "state": state}, check_mode=check_mode, diff=diff).run()


@pytest.fixture
def full_home(home, scratch):
    """A home with an image (records, config cache), a writable layer on it, maps, lock and records."""
    layout = os.path.join(scratch, "layout")
    os.mkdir(layout)
    write_oci_layout(layout, {"v1": Image([TarBuilder().file("a", "a\n").bytes()])})
    top = ImageManager({"home": home, "src": "oci:%s:v1" % layout, "remote_src": True,
                        "platform": "linux/amd64"}).run()["top"]
    layer(home, "app", top)
    mount(home, "app")
    mount(home, "app", "unmounted")
    return home


def test_absent_removes_every_layer_and_all_of_strata_and_the_home(full_home, scratch):
    assert sorted(os.listdir(os.path.join(full_home, ".strata"))) != []
    check = home_state(full_home, check_mode=True, diff=True)
    assert check["changed"] and os.path.isdir(os.path.join(full_home, ".strata"))
    result = home_state(full_home, diff=True)
    assert result["changed"] is True and result["exists"] is False and "app" in result["removed"]
    assert sorted(result["removed"]) == sorted(check["removed"])
    assert result["diff"] == {"before": {"home": full_home, "exists": True}, "after": {"home": full_home, "exists": False}}
    assert not os.path.lexists(full_home) and os.listdir(scratch) == ["layout"]
    assert home_state(full_home) == {"changed": False, "home": full_home, "exists": False, "removed": []}
    assert not os.path.lexists(full_home)


def test_absent_is_refused_while_a_layer_is_held_and_removes_nothing(home):
    layer(home, "base")
    layer(home, "app", "base")
    mount(home, "app")
    try:
        for check_mode in (True, False):
            with pytest.raises(OverlayError, match="layer app is held by web") as error:
                home_state(home, check_mode=check_mode)
            assert error.value.path == home
        assert home_names(home) == [".strata", "app", "base"]
        assert mounts.mounts_below(home)
    finally:
        mount(home, "app", "unmounted", force=True)
    assert home_state(home)["removed"] == ["app", "base"]


def test_absent_is_refused_while_something_else_is_mounted_inside(home, scratch):
    layer(home, "base")
    target = content_dir(home, "base")
    syscalls.mount("tmpfs", target, "tmpfs", 0, "size=1m")
    try:
        with pytest.raises(OverlayError, match="mounted"):
            home_state(home)
        assert os.path.isdir(os.path.join(home, ".strata"))
    finally:
        syscalls.umount(target, syscalls.MNT_DETACH)


def test_a_foreign_mount_on_merged_is_named_with_its_unmount_not_as_a_holder_to_release(home):
    """overlay_mount cannot release a mount strata did not make: the refusal says what it is and how it goes."""
    layer(home, "base")
    merged = os.path.join(home, "base", "merged")
    os.mkdir(merged)
    syscalls.mount("tmpfs", merged, "tmpfs", 0, "size=1m")
    try:
        for check_mode in (True, False):
            with pytest.raises(OverlayError) as error:
                home_state(home, check_mode=check_mode)
            message = str(error.value)
            assert "a different mount (tmpfs from tmpfs) is at merged/" in message
            assert "umount %s" % merged in message
            assert "release the holders" not in message and "overlay_mount" not in message
        assert mounts.mounts_below(home)
    finally:
        syscalls.umount(merged, syscalls.MNT_DETACH)
    assert home_state(home)["removed"] == ["base"]


def test_a_directory_that_is_not_a_layer_home_is_refused_and_left_whole(scratch):
    wrong = os.path.join(scratch, "etc")
    os.makedirs(os.path.join(wrong, "ssh"))
    with open(os.path.join(wrong, "passwd"), "w", encoding="utf-8") as f:
        f.write("root:x:0:0::/root:/bin/sh\n")
    with pytest.raises(OverlayError, match="is this the right home"):
        home_state(wrong)
    assert sorted(os.listdir(wrong)) == ["passwd", "ssh"]


def test_absent_on_a_missing_home_is_ok_and_creates_nothing(scratch):
    home = os.path.join(scratch, "typo", "home")
    for check_mode in (True, False):
        assert home_state(home, check_mode=check_mode)["changed"] is False
    assert not os.path.lexists(os.path.join(scratch, "typo"))


def test_present_makes_the_home_once(home):
    assert home_state(home, "present", check_mode=True)["changed"] and not os.path.lexists(home)
    assert home_state(home, "present")["changed"] is True and os.path.isdir(os.path.join(home, ".strata"))
    assert home_state(home, "present")["changed"] is False


@pytest.mark.layout("overlay2")  # about that layout's l/
def test_absent_removes_an_overlay2_home_with_its_short_links(home):
    """The overlay2 layout's <home>/l/ holds a link per layer: it goes with them, and then the home."""
    LayerManager({"home": home, "id": "base", "parent": "", "state": "present", "force": False,
                  "layout": "overlay2"}).run()
    layer(home, "app", "base")
    assert len(os.listdir(os.path.join(home, "l"))) == 2
    result = home_state(home)
    assert result["changed"] is True and sorted(result["removed"]) == ["app", "base"]
    assert not os.path.lexists(home)
