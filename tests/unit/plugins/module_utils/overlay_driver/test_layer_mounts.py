"""Whose mount is at merged/: the layer's own overlay or read-only bind, or a foreign one named as such."""

import os

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import mounts, syscalls
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.drivers import open_driver
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.layer_mounts import LayerMount

# LayerMount is given the seed's directories (root/, upper/) here
pytestmark = pytest.mark.layout("overlay")


@pytest.fixture
def driver(home):
    d = open_driver(home)
    d.create("base", "")
    d.create("app", "base")
    yield d
    d.close()


def layer_mount(driver, layer_id, lower=None):
    paths = driver.layout.layer(layer_id)
    return LayerMount(layer_id, paths, os.path.isdir(paths.root), lambda: lower,
                      lambda: driver.mount_records.source(layer_id))


def mount_by_paths(driver, layer_id, flags=0):
    """An overlay of the layer's own directories named by path, as earlier versions (or a hand) made it."""
    paths = driver.layout.layer(layer_id)
    data = mounts.overlay_options(driver.layout.layer("base").root, paths.upper, paths.work)
    syscalls.mount("overlay", paths.merged, "overlay", flags, data)
    return paths.merged


def test_own_overlay_is_the_one_with_the_recorded_source(driver):
    merged = driver.get("app")
    try:
        entry = mounts.mount_at(merged)
        assert entry.source.startswith("strata-")
        assert layer_mount(driver, "app").owns(entry)
        record = driver.mount_records.read("app")
        assert record["upperdir"] == driver.layout.layer("app").upper
        driver.mount_records.new("app", record)  # another token recorded: this mount is no longer provably ours
        assert not layer_mount(driver, "app").owns(entry)
    finally:
        syscalls.umount(merged)


def test_a_mount_record_not_roots_own_proves_nothing(driver):
    """The record naming the layer's own mount (its source token) is believed only as root's own file: one another
    uid put in its place could claim a mount of its making for the layer."""
    merged = driver.get("app")
    try:
        entry = mounts.mount_at(merged)
        assert layer_mount(driver, "app").owns(entry)
        path = os.path.join(driver.home, ".strata", "mounts", "app")
        os.chown(path, 100000, 100000)
        assert driver.mount_records.read("app") is None
        assert not layer_mount(driver, "app").owns(entry)
        os.chown(path, 0, 0)
        assert layer_mount(driver, "app").owns(entry)
    finally:
        syscalls.umount(merged)


def test_an_overlay_made_by_path_needs_its_own_lower(driver):
    merged = mount_by_paths(driver, "app")
    try:
        entry = mounts.mount_at(merged)
        assert layer_mount(driver, "app", driver.layout.layer("base").root).owns(entry)
        assert not layer_mount(driver, "app", None).owns(entry)  # a lower-id that cannot be read: not provably ours
        assert not layer_mount(driver, "app", driver.layout.layer("app").upper).owns(entry)
    finally:
        syscalls.umount(merged)


def test_a_read_only_overlay_of_the_layers_own_dirs_is_foreign(driver):
    """Mounted by hand: the driver never makes an overlay layer's mount read-only, so it is not the layer's."""
    merged = mount_by_paths(driver, "app", syscalls.MS_RDONLY)
    try:
        entry = mounts.mount_at(merged)
        assert not layer_mount(driver, "app", driver.layout.layer("base").root).owns(entry)
        assert not driver.is_mounted("app")
        with pytest.raises(Exception, match="a different mount"):
            driver.get("app")
    finally:
        syscalls.umount(merged)


def test_root_layer_owns_only_its_read_only_bind(driver):
    merged = driver.get("base", readonly_root=True)
    try:
        assert layer_mount(driver, "base").owns(mounts.mount_at(merged))
        syscalls.mount(None, merged, None, syscalls.MS_REMOUNT | syscalls.MS_BIND)  # now writable
        entry = mounts.mount_at(merged)
        assert not layer_mount(driver, "base").owns(entry)
        error = layer_mount(driver, "base").foreign_error(entry)
        assert "writable bind mount of this layer's own root/" in error.message and error.layer == "base"
    finally:
        syscalls.umount(merged, syscalls.MNT_DETACH)


def test_a_mount_stacked_over_the_own_one_is_named(driver):
    merged = driver.get("app")
    syscalls.mount("tmpfs", merged, "tmpfs", 0, "size=1m")
    try:
        entry = mounts.mount_at(merged)
        error = layer_mount(driver, "app", driver.layout.layer("base").root).foreign_error(entry)
        assert error.message.startswith("layer app, path %s: a different mount (tmpfs from tmpfs)" % merged)
        assert "mounted over the layer's own mount" in error.message
    finally:
        syscalls.umount(merged)
        driver.put("app")
