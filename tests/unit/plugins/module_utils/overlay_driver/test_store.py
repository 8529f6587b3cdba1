"""The store: holders, stale mounts, one diff per layer, and check mode."""

import contextlib
import io
import os

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import syscalls
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

from layertools import TarBuilder, sha256

BASE = TarBuilder().dir("etc").file("etc/hostname", "base\n").file("etc/remove-me", "x").bytes()
CHILD = TarBuilder().file("etc/hostname", "child\n").whiteout("etc/remove-me").bytes()


def opener(data):
    return lambda: contextlib.closing(io.BytesIO(data))


def never_opened():
    raise AssertionError("the source must not be read")


@pytest.fixture
def store(home):
    s = LayerStore(home)
    with s.locked():
        yield s


@pytest.fixture
def tree(store):
    store.apply_diff("base", "", opener(BASE))
    store.create("app", "base")
    return store


def test_apply_creates_then_is_idempotent_without_reading(store):
    changed, result, _reason = store.apply_diff("base", "", opener(BASE), diff_id=sha256(BASE))
    assert changed and result.diff_id == sha256(BASE) and result.fallback
    assert store.state("base")["diff_id"] == sha256(BASE)
    changed, result, _reason = store.apply_diff("base", "", never_opened, diff_id=sha256(BASE))
    assert changed is False and result is None
    # without diff_id the source is hashed, not extracted
    changed, _result, _reason = store.apply_diff("base", "", opener(BASE))
    assert changed is False
    with pytest.raises(OverlayError, match="already has diff .* refusing a different diff"):
        store.apply_diff("base", "", opener(CHILD))


def test_apply_child_on_root_parent(tree):
    changed, result, _reason = tree.apply_diff("child", "base", opener(CHILD))
    assert changed and result.fallback is False
    state = tree.state("child")
    assert state["kind"] == "root" and state["parent"] == "base"
    with open(os.path.join(state["path"], "etc/hostname")) as f:
        assert f.read() == "child\n"
    assert not os.path.exists(os.path.join(state["path"], "etc/remove-me"))


def test_failed_apply_on_new_layer_leaves_nothing(store):
    with pytest.raises(OverlayError, match="diff_id mismatch"):
        store.apply_diff("base", "", opener(BASE), diff_id="sha256:" + "1" * 64)
    assert store.state("base")["exists"] is False
    assert not os.path.exists(store.layout.record("base"))


def test_bad_diff_id_format_is_refused_first(store):
    with pytest.raises(OverlayError, match="sha256:<64 hex digits>"):
        store.apply_diff("base", "", never_opened, diff_id="md5:abc")
    assert store.state("base")["exists"] is False


def test_parent_mismatch_names_both(tree):
    with pytest.raises(OverlayError, match="exists with parent base, not other"):
        tree.create("app", "other")
    with pytest.raises(OverlayError, match=r"exists with parent base, not \(none\)"):
        tree.create("app", "")
    assert tree.create("app", "base") is False


def test_holders_are_a_set_and_the_last_one_unmounts(tree):
    assert tree.mount("app", "web") is True
    state = tree.state("app")
    assert state["mounted"] and state["holders"] == ["web"]
    assert state["options"]["upperdir"].endswith("/app/upper")
    assert tree.mount("app", "web") is False
    assert tree.mount("app", "db") is True
    assert tree.state("app")["holders"] == ["db", "web"]
    assert tree.unmount("app", "web") is True
    assert tree.state("app")["mounted"] is True
    assert tree.unmount("app", "web") is False
    assert tree.unmount("app", "db") is True
    state = tree.state("app")
    assert not state["mounted"] and state["holders"] == []


def test_force_unmount_drops_every_holder(tree):
    tree.mount("app", "a")
    tree.mount("app", "b")
    assert tree.unmount("app", "a", force=True) is True
    assert tree.state("app")["holders"] == [] and not tree.state("app")["mounted"]


def test_stale_after_mount_vanished_and_repaired(tree):
    tree.mount("app", "web")
    merged = tree.state("app")["path"]
    syscalls.umount(merged)  # what a reboot does
    state = tree.state("app")
    assert state["stale"] is True and state["holders"] == ["web"]
    assert tree.mount("app", "web") is True  # repaired although the holder was known
    assert tree.state("app")["stale"] is False
    syscalls.umount(merged)
    assert tree.restore() == ["app"]
    assert tree.state("app")["mounted"]
    tree.unmount("app", "web")


def test_unheld_mount_is_reported_and_unmounted_by_any_unmount(tree):
    tree.driver.get("app")  # mounted by someone else, outside the store
    state = tree.state("app")
    assert state["unheld_mount"] is True
    assert tree.unmount("app", "whoever") is True
    assert not tree.state("app")["mounted"]


def test_root_layer_needs_no_mount(tree):
    assert tree.mount("base", "x") is True
    state = tree.state("base")
    assert state["mounted"] is False and state["stale"] is False and state["holders"] == ["x"]
    assert state["path"].endswith("/base/root")


def test_remove_refuses_holders_and_children(tree):
    tree.mount("app", "web")
    with pytest.raises(OverlayError, match="still held by web"):
        tree.remove("app")
    with pytest.raises(OverlayError, match="layers app are built on it"):
        tree.remove("base", force=True)
    assert tree.remove("app", force=True) is True
    assert tree.state("app")["exists"] is False
    assert not os.path.exists(tree.layout.record("app"))
    assert tree.remove("app") is False


def test_check_mode_changes_nothing(tree):
    before = sorted(os.listdir(tree.home)), sorted(os.listdir(tree.layout.records))
    assert tree.create("new", "base", check_mode=True) is True
    assert tree.mount("app", "web", check_mode=True) is True
    outcome = tree.apply_diff("other", "base", opener(CHILD), check_mode=True)
    assert outcome.changed is True and outcome.diff_id == sha256(CHILD) and outcome.applied is None
    assert outcome.after["kind"] == "root" and outcome.after["diff_id"] == sha256(CHILD)
    assert tree.remove("app", check_mode=True) is True
    assert (sorted(os.listdir(tree.home)), sorted(os.listdir(tree.layout.records))) == before
    assert not tree.state("app")["mounted"]


def test_export_diff_is_atomic_and_idempotent(tree, scratch):
    tree.apply_diff("child", "base", opener(CHILD))
    dest = os.path.join(scratch, "child.tar")
    changed, info = tree.export_diff("child", dest)
    assert changed and info["parent"] == "base"
    assert {(c["path"], c["kind"]) for c in info["changes"]} == {
        ("/etc", "modify"), ("/etc/hostname", "modify"), ("/etc/remove-me", "delete")}
    assert info["size"] == len("child\n")
    changed, again = tree.export_diff("child", dest)
    assert changed is False and again["diff_id"] == info["diff_id"]
    assert [n for n in os.listdir(scratch) if "strata-tmp" in n] == []
    with pytest.raises(OverlayError, match="inside the layer home"):
        tree.export_diff("child", os.path.join(tree.home, "x.tar"))


def test_leftovers_are_cleared_by_the_next_run(home):
    s = LayerStore(home)
    os.makedirs(os.path.join(home, ".strata", "tmp", "apply-x-123", "root", "deep"))
    with LayerStore(home).locked():
        pass
    assert os.listdir(os.path.join(home, ".strata", "tmp")) == []
    assert s.layers() == []
