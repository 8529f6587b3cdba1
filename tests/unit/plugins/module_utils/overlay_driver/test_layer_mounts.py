"""Whose mount is at merged/: the layer's own overlay or read-only bind, or a foreign one named as such."""

import os

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import mounts, syscalls
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.driver import Driver
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.layer_mounts import LayerMount


@pytest.fixture
def driver(home):
    d = Driver(home)
    d.create("base", "")
    d.create("app", "base")
    yield d
    d.close()


def layer_mount(driver, layer_id, lower=None):
    paths = driver.layout.layer(layer_id)
    return LayerMount(layer_id, paths, os.path.isdir(paths.root), lambda: lower)


def test_own_overlay_needs_its_own_lower(driver):
    merged = driver.get("app")
    try:
        entry = mounts.mount_at(merged)
        assert layer_mount(driver, "app", driver.layout.layer("base").root).owns(entry)
        assert not layer_mount(driver, "app", None).owns(entry)  # a lower-id that cannot be read: not provably ours
        assert not layer_mount(driver, "app", driver.layout.layer("app").upper).owns(entry)
    finally:
        driver.put("app")


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
