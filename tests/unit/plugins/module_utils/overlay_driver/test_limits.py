"""Id maps belong to the home; a read-only home is readable; a foreign read-only overlay is not ours;
boot restore mounts every layer it can."""

import json
import os

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import restore, syscalls
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.ids import IDMap
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

from layertools import content_dir

MS_RDONLY, MS_REMOUNT = 1, 32
REMAP = [{"container_id": 0, "host_id": 100000, "size": 65536}]


@pytest.mark.parametrize("container_id, host_id, size", [
    (0, 4294967295, 1),          # (uid_t)-1 is "unchanged" to chown, never an id
    (0, 4294967294, 2),          # ends past the largest id
    (4294967290, 0, 10),         # the container side too
])
def test_maps_are_validated_at_both_ends(container_id, host_id, size):
    with pytest.raises(OverlayError, match="beyond the largest id 4294967294"):
        IDMap(container_id, host_id, size)


def test_largest_id_is_accepted():
    assert IDMap(0, 4294967294, 1).host_id == 4294967294


def test_maps_are_recorded_with_the_home_and_used_when_none_are_given(home):
    LayerStore(home, REMAP, REMAP).close()
    with open(os.path.join(home, ".strata", "maps.json")) as f:
        assert json.load(f) == {"uid_maps": REMAP, "gid_maps": REMAP}
    assert os.stat(home).st_uid == 100000
    store = LayerStore(home)  # no maps given: the recorded ones
    assert (store.driver.root_uid, store.driver.root_gid) == (100000, 100000)
    with store.locked():
        store.ensure_present("base")
    assert os.stat(content_dir(home, "base")).st_uid == 100000
    with pytest.raises(OverlayError, match="the home was set up with uid_maps"):
        LayerStore(home, [], [])
    with pytest.raises(OverlayError, match="the home was set up with gid_maps"):
        LayerStore(home, REMAP, [{"container_id": 0, "host_id": 200000, "size": 65536}])


def test_read_only_home_is_readable_and_refuses_writers(scratch):
    fs = os.path.join(scratch, "ro")
    os.mkdir(fs)
    syscalls.mount("tmpfs", fs, "tmpfs", 0, "size=16m")
    try:
        home = os.path.join(fs, "home")
        store = LayerStore(home)
        with store.locked():
            store.ensure_present("base")
        store.close()
        syscalls.mount("tmpfs", fs, "tmpfs", MS_REMOUNT | MS_RDONLY, "size=16m")
        with pytest.raises(OverlayError, match="home is read-only"):
            LayerStore(home)
        with pytest.raises(OverlayError, match="home is read-only"):
            LayerStore(os.path.join(fs, "other-home"))
        reader = LayerStore(home, read_only=True)
        with reader.locked():
            assert [s["id"] for s in reader.layers()] == ["base"]
            assert reader.ensure_present("app", "base", check_mode=True).changed is True
    finally:
        syscalls.umount(fs, syscalls.MNT_DETACH)


@pytest.mark.layout("overlay")  # the seed's lifetime of merged/: made by create (overlay2 makes it in get)
def test_a_read_only_overlay_of_other_dirs_at_merged_is_not_the_layers_own(home, scratch):
    store = LayerStore(home)
    with store.locked():
        store.ensure_present("base")
        store.ensure_present("app", "base")
    lower_a, lower_b = os.path.join(scratch, "a"), os.path.join(scratch, "b")
    os.mkdir(lower_a)
    os.mkdir(lower_b)
    merged = store.layout.layer("app").merged
    os.makedirs(merged, exist_ok=True)  # overlay2 makes it only to mount, as Docker does
    syscalls.mount("overlay", merged, "overlay", 0, "lowerdir=%s:%s" % (lower_a, lower_b))
    try:
        with store.locked():
            state = store.state("app")
            assert state["mounted"] is False and state["foreign_mount"] is True
            with pytest.raises(OverlayError, match="a different mount"):
                store.ensure_mounted("app", "web")
            with pytest.raises(OverlayError, match="a different mount"):
                store.driver.put("app")
        assert store.driver.mount_entry("app") is not None  # still there: never unmounted as ours
    finally:
        syscalls.umount(merged)


def test_restore_mounts_every_layer_it_can_then_fails_listing_the_others(home, capsys):
    store = LayerStore(home)
    with store.locked():
        store.ensure_present("base")
        for layer_id in ("one", "broken", "two"):
            store.ensure_present(layer_id, "base")
            store.ensure_mounted(layer_id, "web")
    for layer_id in ("one", "broken", "two"):
        syscalls.umount(store.layout.layer(layer_id).merged)
    broken = store.layout.layer("broken").merged
    syscalls.mount("tmpfs", broken, "tmpfs", 0, "size=1m")  # something else took its mount point
    capsys.readouterr()
    try:
        assert restore.main(["--home", home]) == 1
        out, err = capsys.readouterr()
        assert out == "mounted one\nmounted two\n"
        assert "cannot mount broken" in err and "1 layer(s) not mounted: broken" in err
        assert store.state("one")["mounted"] and store.state("two")["mounted"]
    finally:
        for layer_id in ("one", "two"):
            store.driver.put(layer_id)
        syscalls.umount(broken)
