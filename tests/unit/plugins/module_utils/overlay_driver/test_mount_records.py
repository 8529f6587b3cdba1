"""The record of a layer's own overlay: believed for that layer only."""

import json
import os

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import mounts, syscalls
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.drivers import open_driver


def _swap(a, b):
    os.rename(a, a + ".swap")
    os.rename(b, a)
    os.rename(a + ".swap", b)


def _as_written_before_records_named_their_layer(path):
    with open(path) as f:
        record = json.load(f)
    record.pop("layer", None)
    with open(path, "w") as f:
        json.dump(record, f)


@pytest.mark.parametrize("legacy", [False, True], ids=["records", "records written before they named a layer"])
def test_records_swapped_between_two_layers_make_neither_mount_the_others(home, legacy):
    """In a .strata an earlier version gave the remapped root, that user can swap two layers' records (root's
    own files), then the two layer directories: unmounting one layer must not take the other's overlay, now at
    its merged/, for its own."""
    driver = open_driver(home)
    merged = {}
    try:
        driver.create("base", "")
        for layer_id in ("app", "app2"):
            driver.create(layer_id, "base")
            merged[layer_id] = driver.get(layer_id)
        records = os.path.join(home, ".strata", "mounts")
        if legacy:
            for layer_id in ("app", "app2"):
                _as_written_before_records_named_their_layer(os.path.join(records, layer_id))
        for layer_id in ("app", "app2"):
            assert driver.mount_records.read(layer_id)["source"] == mounts.mount_at(merged[layer_id]).source
            assert driver.is_mounted(layer_id)
        _swap(os.path.join(records, "app"), os.path.join(records, "app2"))
        assert driver.mount_records.read("app") is None and driver.mount_records.read("app2") is None
        _swap(driver.layout.layer("app").dir, driver.layout.layer("app2").dir)
        merged = {"app": merged["app2"], "app2": merged["app"]}
        assert not driver.is_mounted("app") and not driver.is_mounted("app2")
    finally:
        for path in merged.values():
            if mounts.mount_at(path) is not None:
                syscalls.umount(path)
        driver.close()
