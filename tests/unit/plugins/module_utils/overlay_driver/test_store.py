"""The store: holders, stale mounts, one diff per layer, and check mode."""

import contextlib
import errno
import io
import os

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import syscalls
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.mounts import read_mountinfo
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
    root = state["metadata"]["RootDir"]
    with open(os.path.join(root, "etc/hostname")) as f:
        assert f.read() == "child\n"
    assert not os.path.exists(os.path.join(root, "etc/remove-me"))


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


def test_root_layer_is_mounted_read_only_at_merged(tree, home):
    root = os.path.join(home, "base", "root")
    merged = os.path.join(home, "base", "merged")
    assert not os.path.exists(merged)  # a root layer has no merged/ until it is mounted
    assert tree.state("base")["path"] == merged  # never root/, mounted or not
    assert tree.mount("base", "x") is True
    state = tree.state("base")
    assert state["mounted"] is True and state["stale"] is False and state["holders"] == ["x"]
    assert state["path"] == merged and state["options"].get("ro") is True
    with open(os.path.join(merged, "etc", "hostname")) as f:
        assert f.read() == "base\n"
    with pytest.raises(OSError) as raised:
        open(os.path.join(merged, "etc", "hostname"), "w").close()
    assert raised.value.errno == errno.EROFS
    assert os.stat(merged, follow_symlinks=False).st_mode & 0o7777 == 0o755  # root/'s own mode, seen through
    assert tree.mount("base", "x") is False  # the same holder again: no change, no second mount
    assert len([m for m in read_mountinfo() if m.mount_point == merged]) == 1
    # the layer's own mount refuses what would change it
    with pytest.raises(OverlayError, match="mounted"):
        tree.driver.apply_diff("base", "", opener(CHILD))
    with pytest.raises(OverlayError, match="still held by x"):
        tree.remove("base")
    assert tree.unmount("base", "x") is True
    state = tree.state("base")
    assert state["mounted"] is False and state["holders"] == [] and not os.path.exists(merged)
    assert os.path.isfile(os.path.join(root, "etc", "hostname"))


def test_root_layer_mount_is_stale_without_its_bind_and_restored(tree, home):
    merged = os.path.join(home, "base", "merged")
    tree.mount("base", "x")
    syscalls.umount(merged, syscalls.MNT_DETACH)  # what a reboot does
    state = tree.state("base")
    assert state["stale"] is True and state["mounted"] is False
    assert tree.restore() == ["base"]
    assert tree.state("base")["mounted"] is True
    tree.unmount("base", "x")
    assert not os.path.exists(merged)


@pytest.mark.parametrize("source", ["root", "elsewhere"])
def test_root_layer_foreign_bind_at_merged_is_refused(tree, home, source):
    """A writable bind of root/ is not the layer's own mount, nor is a bind of another directory."""
    merged = os.path.join(home, "base", "merged")
    source = os.path.join(home, "base", "root") if source == "root" else os.path.join(home, "..", "elsewhere")
    os.makedirs(source, exist_ok=True)
    os.mkdir(merged)
    syscalls.mount(source, merged, None, syscalls.MS_BIND)
    try:
        state = tree.state("base")
        assert state["mounted"] is False and state["foreign_mount"] is True
        with pytest.raises(OverlayError, match="a different mount"):
            tree.mount("base", "x")
        with pytest.raises(OverlayError, match="a different mount"):
            tree.driver.put("base")
        assert tree.record("base").holders == set()
    finally:
        syscalls.umount(merged, syscalls.MNT_DETACH)


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


def test_missing_merged_is_made_for_the_mount_and_removed_after(tree, home):
    """Docker 20.10 removes merged/ in Put: a home it wrote has none while nothing is mounted."""
    merged = os.path.join(home, "app", "merged")
    os.rmdir(merged)
    assert tree.mount("app", "web") is True
    assert os.path.ismount(merged)
    with open(os.path.join(merged, "etc", "hostname")) as f:
        assert f.read() == "base\n"
    assert tree.unmount("app", "web") is True
    assert not os.path.lexists(merged)  # as the other driver left it
    changes, size = tree.driver.changes_and_size("app", "base")  # a temporary mount too
    assert changes == [] and size == 0 and not os.path.lexists(merged)
    assert os.listdir(os.path.join(home, ".strata", "made-merged")) == []


def test_merged_made_with_mode_and_owner_of_the_remapped_root(scratch):
    maps = [{"container_id": 0, "host_id": 100000, "size": 65536}]
    store = LayerStore(os.path.join(scratch, "mapped"), maps, maps)
    with store.locked():
        store.apply_diff("base", "", opener(BASE))
        store.create("app", "base")
        merged = os.path.join(store.home, "app", "merged")
        os.rmdir(merged)
        assert store.driver._make_merged("app", store.layout.layer("app"))  # pylint: disable=protected-access
        st = os.lstat(merged)
        assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o700, 100000, 100000)


def test_existing_merged_stays_after_unmount(tree, home):
    merged = os.path.join(home, "app", "merged")
    tree.mount("app", "web")
    tree.unmount("app", "web")
    assert os.path.isdir(merged)  # the seed's lifetime: made by create, kept


def test_merged_symlink_is_refused_not_followed(tree, home, canary):
    merged = os.path.join(home, "app", "merged")
    os.rmdir(merged)
    os.symlink(canary, merged)
    with pytest.raises(OverlayError, match="merged/ is not a directory") as raised:
        tree.mount("app", "web")
    assert "layer app" in str(raised.value)
    assert sorted(os.listdir(canary)) == ["etc", "link"]
    assert not any(m.mount_point.startswith(os.path.realpath(canary)) for m in read_mountinfo())
    assert tree.record("app").holders == set()


def test_parent_of_a_held_foreign_layer_is_its_lower_id(tree, home):
    """A layer another tool made has no recorded parent, also after a holder was recorded for it."""
    layer = os.path.join(home, "foreign")
    os.mkdir(layer)
    for name in ("upper", "work"):
        os.mkdir(os.path.join(layer, name))
    with open(os.path.join(layer, "lower-id"), "w") as f:
        f.write("base")
    assert tree.state("foreign")["parent"] == "base"
    assert tree.mount("foreign", "web") is True
    try:
        state = tree.state("foreign")
        assert state["parent"] == "base" and state["holders"] == ["web"] and state["mounted"]
        assert tree.create("foreign", "base") is False  # the same parent: no conflict
    finally:
        tree.unmount("foreign", "web")
    assert not os.path.lexists(os.path.join(layer, "merged"))
    assert tree.state("base")["parent"] is None  # a root layer's other parent is only in Docker's layerdb


def test_force_remove_of_a_held_root_layer_unmounts_it(store, home):
    store.apply_diff("base", "", opener(BASE))
    store.mount("base", "x")
    assert store.remove("base", force=True) is True
    assert not os.path.lexists(os.path.join(home, "base"))
    assert not any(m.mount_point.startswith(os.path.realpath(home) + "/") for m in read_mountinfo())
    assert os.listdir(os.path.join(home, ".strata", "made-merged")) == []


@pytest.mark.parametrize("check_mode", [False, True])
def test_a_diff_is_refused_on_a_layer_others_are_built_on(store, check_mode):
    """base made empty, app built on it, then a diff for base: it would change, under app, the lower
    tree app was made and written against (a symlink where app's upper has a directory, files app
    deleted coming back). Docker never applies a diff to a layer with children; neither does this."""
    store.create("base", "")
    store.create("app", "base")
    with pytest.raises(OverlayError, match="layers app are built on it"):
        store.apply_diff("base", "", opener(BASE), check_mode=check_mode)
    assert os.listdir(store.layout.layer("base").root) == [] and store.state("base")["diff_id"] is None
