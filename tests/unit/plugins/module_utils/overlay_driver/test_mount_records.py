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


EARLIER = {False: (), True: ("layer", "home"), "layer only": ("home",)}  # what records of earlier versions lack


def _as_written_before_records_named_their_layer(path, lacking=("layer", "home")):
    with open(path) as f:
        record = json.load(f)
    for key in lacking:
        record.pop(key, None)
    with open(path, "w") as f:
        json.dump(record, f)


@pytest.mark.parametrize("legacy", [False, True, "layer only"],
                         ids=["records", "records written before they named a layer", "records naming no home"])
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
                _as_written_before_records_named_their_layer(os.path.join(records, layer_id), EARLIER[legacy])
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


def _mount_two(home, names=("app",)):
    driver = open_driver(home)
    driver.create("base", "")
    merged = {}
    for layer_id in names:
        driver.create(layer_id, "base")
        merged[layer_id] = driver.get(layer_id)
    return driver, merged


def _unmount_all(merged):
    for path in merged:
        if mounts.mount_at(path) is not None:
            syscalls.umount(path)


@pytest.mark.parametrize("legacy", [False, True, "layer only"],
                         ids=["records", "records written before they named a layer", "records naming no home"])
def test_records_and_layers_swapped_between_two_homes_prove_nothing(scratch, layout, legacy):
    """Layer ids repeat from home to home (an image's layers are its ChainIDs): a record moved in from another
    home, with that home's layer directory, names the right layer and still is not this home's."""
    del layout
    homes = [os.path.join(scratch, name, "home") for name in ("one", "two")]
    drivers, merged = [], []
    try:
        for home in homes:
            driver, made = _mount_two(home)
            drivers.append(driver)
            merged.append(made["app"])
            if legacy:
                _as_written_before_records_named_their_layer(os.path.join(home, ".strata", "mounts", "app"),
                                                             EARLIER[legacy])
            assert driver.is_mounted("app")
        _swap(*[os.path.join(home, ".strata", "mounts", "app") for home in homes])
        _swap(*[driver.layout.layer("app").dir for driver in drivers])
        merged.reverse()
        assert not drivers[0].is_mounted("app") and not drivers[1].is_mounted("app")
    finally:
        _unmount_all(merged)
        for driver in drivers:
            driver.close()


@pytest.mark.layout("overlay2")
def test_a_read_only_layer_recorded_before_records_named_their_layer_is_still_its_own(scratch, layout):
    """overlay2 mounts a layer read-only (an image's layers are) as lowers only: its record shows its own diff/ as
    the top lower. A home's path may hold ":" (overlay2 mounts by descriptor), so the top lower is not cut at the
    first one."""
    del layout
    home = os.path.join(scratch, "co:lon", "home")
    driver = open_driver(home)
    merged = []
    try:
        driver.create("base", "")
        driver.create("mid", "base")
        driver.create("top", "mid")
        merged.append(driver.get("mid", flags=syscalls.MS_RDONLY))
        record = os.path.join(home, ".strata", "mounts", "mid")
        with open(record) as f:
            assert "upperdir" not in json.load(f)
        _as_written_before_records_named_their_layer(record)
        assert driver.is_mounted("mid")
        driver.put("mid")
        assert not driver.is_mounted("mid")
    finally:
        _unmount_all(merged)
        driver.close()


def test_the_home_reached_by_another_path_keeps_its_records(scratch, home):
    """A bind mount of the home is the same home: its records, written by the other path, stay believed."""
    alias = os.path.join(scratch, "alias")
    driver, merged = _mount_two(home)
    other = None
    os.mkdir(alias)
    syscalls.mount(home, alias, None, syscalls.MS_BIND)
    try:
        _as_written_before_records_named_their_layer(os.path.join(home, ".strata", "mounts", "app"))
        other = open_driver(alias)
        assert other.is_mounted("app")
    finally:
        if other is not None:
            other.close()
        syscalls.umount(alias)
        _unmount_all(merged.values())
        driver.close()


@pytest.mark.parametrize("legacy", [False, True, "layer only"],
                         ids=["records", "records written before they named a layer", "records naming no home"])
def test_a_home_moved_with_its_layers_mounted_keeps_its_records(scratch, layout, legacy):
    """A record names its home by the directory itself, not by a path: a home moved (or a mount namespace
    where its path is another) still knows its own overlays. A record of an earlier version names only paths:
    a moved home's are taken for another's."""
    del layout
    before, after = os.path.join(scratch, "before"), os.path.join(scratch, "after")
    driver, merged = _mount_two(before)
    driver.close()
    moved = None
    try:
        if legacy:
            _as_written_before_records_named_their_layer(os.path.join(before, ".strata", "mounts", "app"),
                                                         EARLIER[legacy])
        os.rename(before, after)
        moved = open_driver(after)
        assert moved.is_mounted("app") is not bool(legacy)
    finally:
        if moved is not None:
            moved.close()
        _unmount_all([os.path.join(after, os.path.relpath(path, before)) for path in merged.values()])


def test_a_record_of_odd_content_proves_nothing(home):
    """Root wrote every record, but one of an earlier version is read by what it holds: anything else than
    the paths it should hold is no proof, and never an error."""
    driver, merged = _mount_two(home)
    path = os.path.join(home, ".strata", "mounts", "app")
    with open(path) as f:
        good = json.load(f)
    try:
        for odd in ({"upperdir": 5, "lowerdir": driver.layout.layer("app").upper},
                    {"upperdir": driver.layout.layer("app").upper.replace("/app/", "/\u0000/app/")},
                    {"upperdir": "\u0000" + driver.layout.layer("app").upper},
                    {"upperdir": None}, {"lowerdir": ["x"]}, {"layer": "app"}, {"layer": "app", "home": "x"},
                    {"home": good["home"]}):
            record = {k: v for k, v in good.items() if k not in ("layer", "home", "upperdir", "lowerdir")}
            record.update(odd)
            with open(path, "w") as f:
                json.dump(record, f)
            assert driver.mount_records.read("app") is None, odd
            assert not driver.is_mounted("app")
    finally:
        _unmount_all(merged.values())
        driver.close()
