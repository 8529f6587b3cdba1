"""The boot unit's restore program mounts held layers again and nothing else."""

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import restore, syscalls
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore


def test_restore_mounts_stale_layers_only(home, capsys):
    store = LayerStore(home)
    with store.locked():
        store.create("base")
        store.create("held", "base")
        store.create("free", "base")
        store.mount("held", "web")
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
