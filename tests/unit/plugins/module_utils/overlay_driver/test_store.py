"""The store: holders, stale mounts, one diff per layer, and check mode."""

import errno
import os
import shutil

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import mounts, syscalls
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.mounts import read_mountinfo
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

from layertools import TarBuilder, applies_naively, content_dir, kind_after_apply, opener, read_in_layer, sha256

BASE = TarBuilder().dir("etc").file("etc/hostname", "base\n").file("etc/remove-me", "x").bytes()
CHILD = TarBuilder().file("etc/hostname", "child\n").whiteout("etc/remove-me").bytes()


def never_opened():
    raise AssertionError("the source must not be read")


@pytest.fixture
def tree(store):
    store.apply_diff("base", "", opener(BASE))
    store.ensure_present("app", "base")
    return store


def test_apply_creates_then_is_idempotent_without_reading(store):
    outcome = store.apply_diff("base", "", opener(BASE), diff_id=sha256(BASE))
    assert outcome.changed and outcome.diff.diff_id == sha256(BASE)
    assert outcome.diff.fallback is applies_naively(store.driver.LAYOUT, "none")
    assert store.state("base")["diff_id"] == sha256(BASE)
    outcome = store.apply_diff("base", "", never_opened, diff_id=sha256(BASE))
    assert outcome.changed is False and outcome.diff.fallback is None and outcome.diff.diff_id == sha256(BASE)
    # without diff_id the source is hashed, not extracted
    assert store.apply_diff("base", "", opener(BASE)).changed is False
    with pytest.raises(OverlayError, match="already has diff .* refusing a different diff"):
        store.apply_diff("base", "", opener(CHILD))


def test_find_applied_answers_from_the_record(tree):
    assert tree.find_applied("new", "base", sha256(CHILD)) is None  # to be applied: src is needed
    outcome = tree.find_applied("base", "", sha256(BASE))
    assert outcome.changed is False and outcome.diff.diff_id == sha256(BASE) and outcome.after["id"] == "base"
    with pytest.raises(OverlayError, match="refusing a different diff"):
        tree.find_applied("base", "", sha256(CHILD))
    tree.ensure_present("kid", "app")
    with pytest.raises(OverlayError, match="built on it"):
        tree.find_applied("app", "base", sha256(CHILD))


def test_apply_child_on_root_parent(tree):
    outcome = tree.apply_diff("child", "base", opener(CHILD))
    assert outcome.changed and outcome.diff.fallback is False
    state = tree.state("child")
    assert state["parent"] == "base"
    assert read_in_layer(tree.driver, "child", "etc/hostname") == "child\n"
    assert read_in_layer(tree.driver, "child", "etc/remove-me") is None


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
        tree.ensure_present("app", "other")
    with pytest.raises(OverlayError, match=r"exists with parent base, not \(none\)"):
        tree.ensure_present("app", "")
    assert tree.ensure_present("app", "base").changed is False


def test_holders_are_a_set_and_the_last_one_unmounts(tree):
    assert tree.ensure_mounted("app", "web").changed is True
    state = tree.state("app")
    assert state["mounted"] and state["holders"] == ["web"]
    assert state["options"]["upperdir"] == content_dir(tree.home, "app")
    assert tree.ensure_mounted("app", "web").changed is False
    assert tree.ensure_mounted("app", "db").changed is True
    assert tree.state("app")["holders"] == ["db", "web"]
    assert tree.ensure_unmounted("app", "web").changed is True
    assert tree.state("app")["mounted"] is True
    assert tree.ensure_unmounted("app", "web").changed is False
    assert tree.ensure_unmounted("app", "db").changed is True
    state = tree.state("app")
    assert not state["mounted"] and state["holders"] == []


def test_force_unmount_drops_every_holder(tree):
    tree.ensure_mounted("app", "a")
    tree.ensure_mounted("app", "b")
    assert tree.ensure_unmounted("app", "a", force=True).changed is True
    assert tree.state("app")["holders"] == [] and not tree.state("app")["mounted"]


def test_stale_after_mount_vanished_and_repaired(tree):
    tree.ensure_mounted("app", "web")
    merged = tree.state("app")["path"]
    syscalls.umount(merged)  # what a reboot does
    state = tree.state("app")
    assert state["stale"] is True and state["holders"] == ["web"]
    assert tree.ensure_mounted("app", "web").changed is True  # repaired although the holder was known
    assert tree.state("app")["stale"] is False
    syscalls.umount(merged)
    assert tree.restore() == ["app"]
    assert tree.state("app")["mounted"]
    tree.ensure_unmounted("app", "web")


def test_unheld_mount_is_reported_and_unmounted_by_any_unmount(tree):
    tree.driver.get("app")  # mounted by someone else, outside the store
    state = tree.state("app")
    assert state["unheld_mount"] is True
    assert tree.ensure_unmounted("app", "whoever").changed is True
    assert not tree.state("app")["mounted"]


def test_root_layer_is_mounted_read_only_at_merged(tree, home):
    root = content_dir(home, "base")
    merged = os.path.join(home, "base", "merged")
    assert not os.path.exists(merged)  # a root layer has no merged/ until it is mounted
    assert tree.state("base")["path"] == merged  # never root/, mounted or not
    assert tree.ensure_mounted("base", "x").changed is True
    state = tree.state("base")
    assert state["mounted"] is True and state["stale"] is False and state["holders"] == ["x"]
    assert state["path"] == merged and state["options"].get("ro") is True
    with open(os.path.join(merged, "etc", "hostname")) as f:
        assert f.read() == "base\n"
    with pytest.raises(OSError) as raised:
        open(os.path.join(merged, "etc", "hostname"), "w").close()
    assert raised.value.errno == errno.EROFS
    assert os.stat(merged, follow_symlinks=False).st_mode & 0o7777 == 0o755  # the tree's own mode, seen through
    assert tree.ensure_mounted("base", "x").changed is False  # the same holder again: no change, no second mount
    assert len([m for m in read_mountinfo() if m.mount_point == merged]) == 1
    # the layer's own mount refuses what would change it
    with pytest.raises(OverlayError, match="mounted"):
        tree.driver.apply_diff("base", "", opener(CHILD))
    with pytest.raises(OverlayError, match="still held by x"):
        tree.ensure_absent("base")
    assert tree.ensure_unmounted("base", "x").changed is True
    state = tree.state("base")
    assert state["mounted"] is False and state["holders"] == [] and not os.path.exists(merged)
    assert os.path.isfile(os.path.join(root, "etc", "hostname"))


def test_root_layer_mount_is_stale_without_its_bind_and_restored(tree, home):
    merged = os.path.join(home, "base", "merged")
    tree.ensure_mounted("base", "x")
    syscalls.umount(merged, syscalls.MNT_DETACH)  # what a reboot does
    state = tree.state("base")
    assert state["stale"] is True and state["mounted"] is False
    assert tree.restore() == ["base"]
    assert tree.state("base")["mounted"] is True
    tree.ensure_unmounted("base", "x")
    assert not os.path.exists(merged)


@pytest.mark.parametrize("source", ["root", "elsewhere"])
def test_root_layer_foreign_bind_at_merged_is_refused(tree, home, source):
    """A writable bind of root/ is not the layer's own mount, nor is a bind of another directory."""
    merged = os.path.join(home, "base", "merged")
    source = content_dir(home, "base") if source == "root" else os.path.join(home, "..", "elsewhere")
    os.makedirs(source, exist_ok=True)
    os.mkdir(merged)
    syscalls.mount(source, merged, None, syscalls.MS_BIND)
    try:
        state = tree.state("base")
        assert state["mounted"] is False and state["foreign_mount"] is True
        with pytest.raises(OverlayError, match="a different mount"):
            tree.ensure_mounted("base", "x")
        with pytest.raises(OverlayError, match="a different mount"):
            tree.driver.put("base")
        assert tree.record("base").holders == set()
    finally:
        syscalls.umount(merged, syscalls.MNT_DETACH)


def test_remove_refuses_holders_and_children(tree):
    tree.ensure_mounted("app", "web")
    with pytest.raises(OverlayError, match="still held by web"):
        tree.ensure_absent("app")
    with pytest.raises(OverlayError, match="layers app are built on it"):
        tree.ensure_absent("base", force=True)
    assert tree.ensure_absent("app", force=True).changed is True
    assert tree.state("app")["exists"] is False
    assert not os.path.exists(tree.layout.record("app"))
    assert tree.ensure_absent("app").changed is False


def test_check_mode_changes_nothing(tree):
    before = sorted(os.listdir(tree.home)), sorted(os.listdir(tree.layout.records))
    assert tree.ensure_present("new", "base", check_mode=True).changed is True
    assert tree.ensure_mounted("app", "web", check_mode=True).changed is True
    outcome = tree.apply_diff("other", "base", opener(CHILD), check_mode=True)
    assert outcome.changed is True and outcome.diff.diff_id == sha256(CHILD)
    assert outcome.after["kind"] == kind_after_apply(tree.driver.LAYOUT, "root") and outcome.after["diff_id"] == sha256(CHILD)
    assert tree.ensure_absent("app", check_mode=True).changed is True
    assert (sorted(os.listdir(tree.home)), sorted(os.listdir(tree.layout.records))) == before
    assert not tree.state("app")["mounted"]


def test_export_diff_is_atomic_and_idempotent(tree, scratch):
    tree.apply_diff("child", "base", opener(CHILD))
    dest = os.path.join(scratch, "child.tar")
    outcome = tree.export_diff("child", dest)
    assert outcome.changed and outcome.parent == "base"
    assert {(c.as_dict()["path"], c.as_dict()["kind"]) for c in outcome.diff.changes} == {
        ("/etc", "modify"), ("/etc/hostname", "modify"), ("/etc/remove-me", "delete")}
    assert outcome.diff.size == len("child\n")
    again = tree.export_diff("child", dest)
    assert again.changed is False and again.diff.diff_id == outcome.diff.diff_id
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
    if os.path.isdir(merged):  # overlay2 makes it only to mount, as Docker does
        os.rmdir(merged)
    assert tree.ensure_mounted("app", "web").changed is True
    assert os.path.ismount(merged)
    with open(os.path.join(merged, "etc", "hostname")) as f:
        assert f.read() == "base\n"
    assert tree.ensure_unmounted("app", "web").changed is True
    assert not os.path.lexists(merged)  # as the other driver left it
    changes, size = tree.driver.changes_and_size("app", "base")  # a temporary mount too
    assert changes == [] and size == 0 and not os.path.lexists(merged)
    assert os.listdir(os.path.join(home, ".strata", "made-merged")) == []


def test_merged_made_with_mode_and_owner_of_the_remapped_root(scratch):
    maps = [{"container_id": 0, "host_id": 100000, "size": 65536}]
    store = LayerStore(os.path.join(scratch, "mapped"), maps, maps)
    with store.locked():
        store.apply_diff("base", "", opener(BASE))
        store.ensure_present("app", "base")
        merged = os.path.join(store.home, "app", "merged")
        os.rmdir(merged)
        assert store.driver.made_merged.make("app", store.layout.layer("app"))
        st = os.lstat(merged)
        assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o700, 100000, 100000)


@pytest.mark.layout("overlay")  # merged/ made by create and kept: the seed's lifetime of it
def test_existing_merged_stays_after_unmount(tree, home):
    merged = os.path.join(home, "app", "merged")
    tree.ensure_mounted("app", "web")
    tree.ensure_unmounted("app", "web")
    assert os.path.isdir(merged)  # the seed's lifetime: made by create, kept


def test_merged_symlink_is_refused_not_followed(tree, home, canary):
    merged = os.path.join(home, "app", "merged")
    if os.path.isdir(merged):
        os.rmdir(merged)
    os.symlink(canary, merged)
    with pytest.raises(OverlayError, match="damaged: its merged is a symlink or not a directory") as raised:
        tree.ensure_mounted("app", "web")
    assert "layer app" in str(raised.value)
    assert sorted(os.listdir(canary)) == ["etc", "link"]
    assert not any(m.mount_point.startswith(os.path.realpath(canary)) for m in read_mountinfo())
    assert tree.record("app").holders == set()


@pytest.mark.layout("overlay")  # a layer of the seed's files (upper/, lower-id) that another tool made
def test_parent_of_a_held_foreign_layer_is_its_lower_id(tree, home):
    """A layer another tool made has no recorded parent, also after a holder was recorded for it."""
    layer = os.path.join(home, "foreign")
    os.mkdir(layer)
    for name in ("upper", "work"):
        os.mkdir(os.path.join(layer, name))
    with open(os.path.join(layer, "lower-id"), "w") as f:
        f.write("base")
    assert tree.state("foreign")["parent"] == "base"
    assert tree.ensure_mounted("foreign", "web").changed is True
    try:
        state = tree.state("foreign")
        assert state["parent"] == "base" and state["holders"] == ["web"] and state["mounted"]
        assert tree.ensure_present("foreign", "base").changed is False  # the same parent: no conflict
    finally:
        tree.ensure_unmounted("foreign", "web")
    assert not os.path.lexists(os.path.join(layer, "merged"))
    assert tree.state("base")["parent"] is None  # a root layer's other parent is only in Docker's layerdb


def test_force_remove_of_a_held_root_layer_unmounts_it(store, home):
    store.apply_diff("base", "", opener(BASE))
    store.ensure_mounted("base", "x")
    assert store.ensure_absent("base", force=True).changed is True
    assert not os.path.lexists(os.path.join(home, "base"))
    assert not any(m.mount_point.startswith(os.path.realpath(home) + "/") for m in read_mountinfo())
    assert os.listdir(os.path.join(home, ".strata", "made-merged")) == []


@pytest.mark.parametrize("mount_child", [True, False])
def test_apply_diff_refused_while_layers_are_built_on_it(store, home, mount_child):
    """A diff applied to an empty base would replace the root/ its children's overlays use as lowerdir.

    A mounted child then lists nothing (its lowerdir was deleted under it) and an
    unmounted one silently changes: refused, in check mode too, and nothing moves.
    """
    store.ensure_present("empty", "")
    store.ensure_present("kid", "empty")
    merged = os.path.join(home, "kid", "merged")
    if mount_child:
        store.ensure_mounted("kid", "svc")
        with open(os.path.join(merged, "mine"), "w") as f:
            f.write("kid\n")
    try:
        for check_mode in (True, False):
            with pytest.raises(OverlayError, match="layers kid are built on it") as raised:
                store.apply_diff("empty", "", opener(BASE), check_mode=check_mode)
            assert raised.value.layer == "empty"
        assert os.listdir(content_dir(home, "empty")) == []
        assert store.state("empty")["diff_id"] is None
        if mount_child:
            assert sorted(os.listdir(merged)) == ["mine"]
    finally:
        store.ensure_unmounted("kid", "svc", force=True)
    # once nothing is built on it, the diff goes in
    store.ensure_absent("kid")
    assert store.apply_diff("empty", "", opener(BASE)).changed is True


def test_read_only_bind_remounted_writable_is_named_as_such(tree, home):
    """An operator remounts the layer's read-only bind read-write: strata says what is there and how to fix it."""
    merged = os.path.join(home, "base", "merged")
    tree.ensure_mounted("base", "x")
    syscalls.mount(None, merged, None, syscalls.MS_REMOUNT | syscalls.MS_BIND)
    try:
        state = tree.state("base")
        assert state["mounted"] is False and state["foreign_mount"] is True
        for attempt in (lambda: tree.ensure_mounted("base", "y"), lambda: tree.driver.put("base"),
                        lambda: tree.ensure_unmounted("base", "x"), lambda: tree.ensure_unmounted("base", force=True)):
            with pytest.raises(OverlayError, match="a different mount .* writable bind mount of this layer's own "
                                                   "root/.*umount %s" % merged):
                attempt()
        assert tree.record("base").holders == {"x"}
    finally:
        syscalls.umount(merged, syscalls.MNT_DETACH)
    tree.ensure_mounted("base", "x")  # repaired: read-only again
    assert tree.state("base")["options"].get("ro") is True
    tree.ensure_unmounted("base", "x")


def test_files_written_into_a_stale_merged_are_kept_and_the_unmount_succeeds(tree, home):
    """While the mount is gone (a reboot, an umount behind strata's back) merged/ is a plain directory that
    something may write into. The unmount that follows the repair keeps those files, and does not fail
    after having unmounted."""
    merged = os.path.join(home, "base", "merged")
    tree.ensure_mounted("base", "x")
    syscalls.umount(merged, syscalls.MNT_DETACH)
    with open(os.path.join(merged, "written-while-stale"), "w") as f:
        f.write("keep me\n")
    assert tree.ensure_mounted("base", "x").changed is True  # repaired
    assert tree.ensure_unmounted("base", "x").changed is True
    state = tree.state("base")
    assert state["mounted"] is False and state["holders"] == [] and state["stale"] is False
    with open(os.path.join(merged, "written-while-stale")) as f:
        assert f.read() == "keep me\n"
    assert os.listdir(os.path.join(home, ".strata", "made-merged")) == []
    # merged/ is no longer one the mount made: the next mount and unmount leave it (and its file) alone
    tree.ensure_mounted("base", "x")
    tree.ensure_unmounted("base", "x")
    assert os.listdir(merged) == ["written-while-stale"]


@pytest.mark.layout("overlay")  # merged/ made by create and kept: the seed's lifetime of it
def test_marker_of_a_layer_removed_by_another_tool_is_pruned(home):
    """Docker removes an image or container layer that strata mounted (docker rmi unmounts it): the marker
    saying "the mount made merged/" must go with it, or a layer made later under that id loses the merged/
    its creation made, at its first unmount."""
    store = LayerStore(home)
    with store.locked():
        store.apply_diff("base", "", opener(BASE))
        store.ensure_present("app", "base")
        os.rmdir(os.path.join(home, "app", "merged"))  # as Docker leaves a container layer
        store.ensure_mounted("app", "x")
    merged = os.path.join(home, "app", "merged")
    syscalls.umount(merged, syscalls.MNT_DETACH)  # what the other tool does before removing the layer
    store.close()
    shutil.rmtree(os.path.join(home, "app"))
    store = LayerStore(home)
    with store.locked():
        assert os.listdir(os.path.join(home, ".strata", "made-merged")) == []
        store.ensure_present("app", "base")
        assert os.path.isdir(merged)  # the seed's layout: made by create
        store.ensure_mounted("app", "y")
        store.ensure_unmounted("app", "y")
        assert os.path.isdir(merged)
    store.close()


def test_mount_stacked_over_the_layers_own_mount_is_named(tree, home):
    """Something mounted over a layer's mount hides it: the error says the layer's own mount is below."""
    merged = os.path.join(home, "base", "merged")
    tree.ensure_mounted("base", "x")
    syscalls.mount("tmpfs", merged, "tmpfs", 0, "size=1m")
    try:
        for attempt in (lambda: tree.ensure_mounted("base", "y"), lambda: tree.ensure_unmounted("base", "x")):
            with pytest.raises(OverlayError, match="a different mount .* over the layer's own mount.*umount %s"
                                                   % merged):
                attempt()
        assert tree.record("base").holders == {"x"}  # the last holder is not dropped over a mount it cannot see
    finally:
        syscalls.umount(merged, syscalls.MNT_DETACH)
    assert tree.state("base")["mounted"] is True
    tree.ensure_unmounted("base", "x")


def test_check_mode_mount_of_a_layer_an_earlier_task_creates_reports_it_mounted(store, home):
    """A check run of a play that creates a layer and mounts it answers what the real run does."""
    outcome = store.ensure_mounted("later", "web", check_mode=True)
    assert outcome.changed is True
    assert outcome.after["mounted"] is True and outcome.after["holders"] == ["web"]
    assert outcome.after["path"] == os.path.join(home, "later", "merged")
    assert not store.driver.exists("later")


@pytest.mark.parametrize("check_mode", [False, True])
def test_a_diff_is_refused_on_a_layer_others_are_built_on(store, check_mode):
    """base made empty, app built on it, then a diff for base: it would change, under app, the lower
    tree app was made and written against (a symlink where app's upper has a directory, files app
    deleted coming back). Docker never applies a diff to a layer with children; neither does this."""
    store.ensure_present("base", "")
    store.ensure_present("app", "base")
    with pytest.raises(OverlayError, match="layers app are built on it"):
        store.apply_diff("base", "", opener(BASE), check_mode=check_mode)
    assert os.listdir(content_dir(store.home, "base")) == [] and store.state("base")["diff_id"] is None


def test_check_apply_refuses_an_owner_outside_the_maps_as_the_real_run_does(home):
    """Check mode reads the tarball as the applier does, id maps included: it fails where the real run fails."""
    maps = [{"container_id": 0, "host_id": 100000, "size": 65536}]
    data = TarBuilder().file("c", uid=70000).bytes()
    store = LayerStore(home, maps, maps)
    try:
        with store.locked():
            for check_mode in (True, False):
                with pytest.raises(OverlayError, match="container id 70000 is not mapped") as raised:
                    store.apply_diff("base", "", opener(data), check_mode=check_mode)
                assert raised.value.layer == "base"
            assert not store.driver.exists("base")
    finally:
        store.close()


def counting_mountinfo_reads(monkeypatch):
    reads = []
    real = mounts.read_mountinfo
    monkeypatch.setattr(mounts, "read_mountinfo", lambda *args: reads.append(args) or real(*args))
    return reads


@pytest.mark.parametrize("layer_id", ["app", "base"])
def test_mount_and_unmount_read_mountinfo_once_per_step(tree, monkeypatch, layer_id):
    reads = counting_mountinfo_reads(monkeypatch)
    tree.ensure_mounted(layer_id, "web")
    assert len(reads) == 2  # the state before, and after
    del reads[:]
    tree.ensure_unmounted(layer_id, "web")
    assert len(reads) == 3  # before, whether a mount is left below the one unmounted, after


def damage(home, layer_id, how):
    """Damage a layer as a crash, a disk error or a hand edit would."""
    layer = os.path.join(home, layer_id)
    if how == "no root or upper":
        for name in ("root", "upper"):
            if os.path.isdir(os.path.join(layer, name)):
                shutil.rmtree(os.path.join(layer, name))
    elif how == "lower-id unreadable":
        with open(os.path.join(layer, "lower-id"), "w") as f:
            f.write("../../etc\n")
    elif how in LOWER_IDS:
        with open(os.path.join(layer, "lower-id"), "w") as f:
            f.write(LOWER_IDS[how] + "\n")
    else:
        with open(os.path.join(home, ".strata", "layers", layer_id + ".json"), "w") as f:
            f.write({"record not JSON": "{not json", "record of the wrong shape": '{"holders": "web"}'}[how])


# lower-ids that read well but name no root layer: the layer itself, a layer not there, an overlay layer
LOWER_IDS = {"lower-id naming itself": "broken", "lower-id naming no layer": "gone",
             "lower-id naming an overlay": "app"}
# the damages to the seed's files (root/, upper/, lower-id) are about that layout; records are every layout's
DAMAGES = [pytest.param(how, marks=pytest.mark.layout("overlay"))
           for how in ["no root or upper", "lower-id unreadable"] + list(LOWER_IDS)] + [
    "record not JSON", "record of the wrong shape"]


@pytest.fixture
def damaged_home(home):
    """base <- app (held: web) and base <- broken (held: web); broken then damaged by the test."""
    store = LayerStore(home)
    with store.locked():
        store.apply_diff("base", "", opener(BASE))
        for layer_id in ("app", "broken"):
            store.ensure_present(layer_id, "base")
            store.ensure_mounted(layer_id, "web")
            store.driver.put(layer_id)
    store.close()
    return home


@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_layer_is_listed_with_its_problem_and_the_rest_works(damaged_home, how):
    """One layer without root/ and upper/, or with a record that does not parse, made listing the home
    fail, and with it every module run on the home. It is now that layer's problem."""
    damage(damaged_home, "broken", how)
    store = LayerStore(damaged_home)
    try:
        with store.locked():
            by_id = {s["id"]: s for s in store.layers()}
            assert sorted(by_id) == ["app", "base", "broken"]
            assert by_id["broken"]["exists"] and by_id["broken"]["problem"]
            assert by_id["app"]["problem"] is None and by_id["base"]["problem"] is None
            assert by_id["app"]["stale"]
            assert store.ensure_mounted("app", "web").after["mounted"]
            assert store.ensure_present("other", "base").changed
            assert store.ensure_unmounted("app", "web").changed
    finally:
        store.close()


@pytest.mark.parametrize("how", DAMAGES)
def test_writers_that_need_a_damaged_layer_fail_naming_it(damaged_home, how):
    damage(damaged_home, "broken", how)
    store = LayerStore(damaged_home)
    try:
        with store.locked():
            for attempt in (lambda: store.ensure_mounted("broken", "web"),
                            lambda: store.ensure_unmounted("broken", "web"),
                            lambda: store.ensure_present("broken", "base"),
                            lambda: store.apply_diff("broken", "base", opener(CHILD)),
                            lambda: store.ensure_absent("broken")):
                with pytest.raises(OverlayError, match="layer broken.*damaged.*force: true"):
                    attempt()
            if how != "no root or upper" and how not in LOWER_IDS:  # a sound overlay can be a parent's name
                return
            with pytest.raises(OverlayError, match="layer child.*parent layer broken is damaged"):
                store.ensure_present("child", "broken")
            assert not store.driver.exists("child")
    finally:
        store.close()


@pytest.mark.parametrize("how", DAMAGES)
def test_absent_with_force_removes_a_damaged_layer(damaged_home, how):
    damage(damaged_home, "broken", how)
    store = LayerStore(damaged_home)
    try:
        with store.locked():
            assert store.ensure_absent("broken", force=True, check_mode=True).changed
            assert store.driver.exists("broken")
            outcome = store.ensure_absent("broken", force=True)
            assert outcome.changed and not outcome.after["exists"]
            assert not os.path.lexists(os.path.join(damaged_home, "broken"))
            assert not os.path.lexists(os.path.join(damaged_home, ".strata", "layers", "broken.json"))
            assert [s["id"] for s in store.layers()] == ["app", "base"]
    finally:
        store.close()


@pytest.mark.layout("overlay")  # lower-ids naming each other
def test_two_overlays_naming_each_other_are_both_damaged_and_each_removable(damaged_home):
    """app's and broken's lower-ids naming each other made neither damaged: mounts failed on "no root/",
    children could be made on them, and neither could be removed, even with force, each being built on
    the other. Each is now damaged, and state=absent with force removes each of the pair."""
    damage(damaged_home, "app", "lower-id naming an overlay")
    with open(os.path.join(damaged_home, "app", "lower-id"), "w") as f:
        f.write("broken\n")
    damage(damaged_home, "broken", "lower-id naming an overlay")
    store = LayerStore(damaged_home)
    try:
        with store.locked():
            by_id = {s["id"]: s for s in store.layers()}
            assert "not a root layer" in by_id["app"]["problem"] and "not a root layer" in by_id["broken"]["problem"]
            assert by_id["base"]["problem"] is None
            with pytest.raises(OverlayError, match="layer app.*damaged.*force: true"):
                store.ensure_mounted("app", "other")
            with pytest.raises(OverlayError, match="parent layer app is damaged"):
                store.ensure_present("child", "app")
            assert store.ensure_absent("app", force=True).changed
            assert store.ensure_absent("broken", force=True).changed
            assert [s["id"] for s in store.layers()] == ["base"]
    finally:
        store.close()


def test_a_damaged_layer_built_on_a_layer_still_keeps_its_parent(damaged_home):
    """A child whose record cannot be read still names its parent by lower-id: the parent is not removable."""
    damage(damaged_home, "broken", "record not JSON")
    store = LayerStore(damaged_home)
    try:
        with store.locked():
            assert store.state("broken")["parent"] == "base"
            store.ensure_absent("app", force=True)
            with pytest.raises(OverlayError, match="layers broken are built on it"):
                store.ensure_absent("base", force=True)
    finally:
        store.close()


@pytest.mark.parametrize("check_mode", [False, True])
def test_a_diff_for_a_layer_with_children_says_so_whatever_parent_the_call_names(store, check_mode):
    """overlay_apply_diff on app (built on base, with child on top) without naming base complained that app
    has parent base, not none; fixing that only led to the real refusal. The children are named first."""
    store.ensure_present("base", "")
    store.ensure_present("app", "base")
    store.ensure_present("child", "app")
    for parent in ("", "other"):
        with pytest.raises(OverlayError, match="layer app.*layers child are built on it") as raised:
            store.apply_diff("app", parent, opener(CHILD), check_mode=check_mode)
        assert "exists with parent" not in str(raised.value)
        with pytest.raises(OverlayError, match="layers child are built on it"):
            store.find_applied("app", parent, sha256(CHILD))
    assert store.state("app")["diff_id"] is None


# -- immutability: a layer with an applied diff or with children mounts read-only ---


def _writable(path):
    """Whether a file can be made at path; EROFS is the only other answer."""
    probe = os.path.join(path, "probe")
    try:
        open(probe, "w").close()
    except OSError as e:
        assert e.errno == errno.EROFS, e
        return False
    os.unlink(probe)
    return True


@pytest.fixture
def kinds(tree):
    """app has a child (mid); mid holds an applied diff (an overlay layer: the seed applies it naively); free neither."""
    tree.ensure_present("mid", "app")
    assert tree.apply_diff("mid", "app", opener(CHILD)).diff.fallback is applies_naively(tree.driver.LAYOUT, "overlay")
    tree.ensure_present("free", "base")
    yield tree
    for layer_id in ("app", "mid", "free"):
        tree.ensure_unmounted(layer_id, force=True)


@pytest.mark.parametrize("layer_id, readonly", [("mid", True), ("app", True), ("free", False)])
def test_a_layer_with_an_applied_diff_or_children_mounts_read_only(kinds, layer_id, readonly):
    """DESIGN: immutability holds the same way on both layouts. Written through its mount, a layer with a diff
    would no longer be what its diff_id says, and layers built on it would change under them (in the
    overlay2 layout they stack on its files): a writable view is a child on top."""
    predicted = kinds.ensure_mounted(layer_id, "web", check_mode=True)
    assert predicted.after["readonly"] is readonly and not predicted.before["readonly"]
    after = kinds.ensure_mounted(layer_id, "web").after
    assert after["mounted"] and after["readonly"] is readonly and after["kind"] == "overlay"
    assert _writable(after["path"]) is not readonly
    with open(os.path.join(after["path"], "etc", "hostname")) as f:
        assert f.read() == ("child\n" if layer_id == "mid" else "base\n")
    assert kinds.state(layer_id)["readonly"] is readonly


def test_a_root_layer_reports_its_read_only_bind(kinds):
    after = kinds.ensure_mounted("base", "web").after
    try:
        assert after["readonly"] is True and not _writable(after["path"])
    finally:
        kinds.ensure_unmounted("base", "web")
    assert kinds.state("base")["readonly"] is False  # not mounted: nothing is read-only


def test_restore_mounts_such_a_layer_read_only_again(kinds):
    kinds.ensure_mounted("mid", "web")
    kinds.driver.put("mid")  # a reboot took the mount, the holder stays
    assert kinds.state("mid")["stale"]
    assert kinds.restore() == ["mid"]
    state = kinds.state("mid")
    assert state["mounted"] and state["readonly"] and not _writable(state["path"])


def test_an_apply_loads_only_what_applying_needs(home, layout, scratch):
    """A run that applies a gzip layer loads neither the exporter nor what only other runs need (tar
    constants from tarfile, zstd's process through subprocess and shutil, bz2 and lzma, decimal for
    human sizes, dest for overlay_diff): every process pays for what it imports, and an apply is the
    commonest short run. Checked in a fresh interpreter, by what it has loaded at the end."""
    import gzip

    from layertools import run_isolated

    tarballs = []
    for name, data in (("base", TarBuilder().dir("etc").file("etc/a", "a").bytes()),
                       ("child", TarBuilder().dir("etc").file("etc/b", "b").whiteout("etc/a").bytes())):
        path = os.path.join(scratch, name + ".tar.gz")
        with open(path, "wb") as f:
            f.write(gzip.compress(data))
        tarballs.append(path)
    code = """
import sys
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore
store = LayerStore(%r, layout=%r)
with store.locked():
    store.apply_diff("base", "", lambda: open(%r, "rb"))
    store.apply_diff("child", "base", lambda: open(%r, "rb"))
store.close()
print(" ".join(sorted(sys.modules)))
""" % (home, layout, tarballs[0], tarballs[1])
    done = run_isolated(code, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    prefix = "ansible_collections.strata.overlay.plugins.module_utils.overlay_driver."
    assert prefix + "tar_apply" in loaded  # it did apply
    other_driver = {"overlay": "overlay2_driver", "overlay2": "driver"}[layout]  # drivers.py loads the home's only
    unneeded = {"tarfile", "subprocess", "shutil", "bz2", "lzma", "decimal", prefix + "tar_export", prefix + "dest",
                prefix + other_driver}
    assert loaded & unneeded == set()
    assert read_in_layer(home, "child", "etc/b") == "b"
