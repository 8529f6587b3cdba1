"""The boot unit's restore program mounts held layers again and nothing else."""

import os

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import restore, syscalls
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore


def test_restore_mounts_stale_layers_only(home, capsys):
    store = LayerStore(home)
    with store.locked():
        store.ensure_present("base")
        store.ensure_present("held", "base")
        store.ensure_present("free", "base")
        store.ensure_mounted("held", "web")
        merged = store.state("held")["path"]
    syscalls.umount(merged)
    assert restore.main(["--home", home, "--check"]) == 0
    assert capsys.readouterr().out == "would mount held\n"
    assert not LayerStore(home).state("held")["mounted"]
    assert restore.main(["--home", home]) == 0
    assert capsys.readouterr().out == "mounted held\n"
    state = LayerStore(home).state("held")
    assert state["mounted"] and not state["stale"]
    assert not LayerStore(home).state("free")["mounted"]
    syscalls.umount(merged)


def test_restore_reports_a_broken_home(scratch, capsys):
    bad = scratch + "/file"
    with open(bad, "w"):
        pass
    assert restore.main(["--home", bad + "/home"]) == 1
    assert "strata-overlay-restore:" in capsys.readouterr().err


@pytest.fixture
def three_held_layers(home):
    """Layers a, b and c each mounted, then unmounted by the driver alone so the records still say mounted (as after a
    reboot); yields the merged paths of a and c, and unmounts them afterwards."""
    store = LayerStore(home)
    with store.locked():
        store.ensure_present("base")
        for layer_id in ("a", "b", "c"):
            store.ensure_present(layer_id, "base")
            store.ensure_mounted(layer_id, "web")
            store.driver.put(layer_id)
    paths = {layer_id: store.state(layer_id)["path"] for layer_id in ("a", "c")}
    store.close()
    try:
        yield paths
    finally:
        for merged in paths.values():
            try:
                syscalls.umount(merged)
            except OSError:
                pass


@pytest.mark.usefixtures("three_held_layers")
def test_a_layer_whose_record_cannot_be_read_keeps_no_other_layer_down(home, capsys):
    """At boot, one damaged record (a crash mid-write on a filesystem without ordered data, a hand
    edit) stopped the restore before any layer was mounted. Every other layer is mounted; the
    program exits non-zero naming the damaged one."""
    with open(home + "/.strata/layers/b.json", "w") as f:
        f.write("{not json")
    assert restore.main(["--home", home]) == 1
    captured = capsys.readouterr()
    assert captured.out == "mounted a\nmounted c\n"
    assert "cannot mount b:" in captured.err and "record cannot be read" in captured.err
    reader = LayerStore(home, read_only=True)
    assert reader.state("a")["mounted"] and reader.state("c")["mounted"]
    reader.close()


@pytest.mark.layout("overlay")  # the seed's root/ and upper/
@pytest.mark.usefixtures("three_held_layers")
def test_a_layer_without_root_or_upper_keeps_no_other_layer_down(home, capsys):
    """A held layer whose directories are gone is reported by name; every other held layer is mounted."""
    os.rmdir(os.path.join(home, "b", "upper"))
    assert restore.main(["--home", home, "--check"]) == 1
    assert capsys.readouterr().out == "would mount a\nwould mount c\n"
    assert restore.main(["--home", home]) == 1
    captured = capsys.readouterr()
    assert captured.out == "mounted a\nmounted c\n"
    assert "cannot mount b:" in captured.err and "neither root/ nor upper/" in captured.err
    assert "1 layer(s) not mounted: b" in captured.err
