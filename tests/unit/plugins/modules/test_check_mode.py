"""Check mode is pure and honest; overlay_info never writes, locks only shared, never mounts."""

import fcntl
import os

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import driver as driver_mod, mounts
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore
from ansible_collections.strata.overlay.plugins.modules import (
    overlay_apply_diff, overlay_diff, overlay_info, overlay_layer, overlay_mount)

from layertools import TarBuilder, sha256, snapshot

BASE = TarBuilder().dir("etc").file("etc/motd", "hello\n").bytes()


def tree_of(path):
    """Everything under path, also what snapshot() leaves out (.strata, empty dirs, the lock)."""
    out = []
    for top, dirs, files in os.walk(path):
        for name in sorted(dirs + files):
            st = os.lstat(os.path.join(top, name))
            out.append((os.path.relpath(os.path.join(top, name), path), st.st_mode, st.st_size, st.st_mtime_ns))
    return sorted(out)


@pytest.fixture
def tarballs(scratch):
    good = os.path.join(scratch, "base.tar")
    with open(good, "wb") as f:
        f.write(BASE)
    truncated = os.path.join(scratch, "truncated.tar")
    with open(truncated, "wb") as f:
        f.write(BASE[:700])
    return good, truncated


def test_check_runs_on_a_missing_home_create_nothing(run_module, home, scratch, tarballs):
    good, _truncated = tarballs
    before = sorted(os.listdir(scratch))
    assert run_module(overlay_layer, {"id": "base", "home": home}, check_mode=True)["changed"]
    assert run_module(overlay_mount, {"id": "base", "home": home}, check_mode=True)["changed"]
    res = run_module(overlay_apply_diff, {"id": "base", "home": home, "src": good, "remote_src": True},
                     check_mode=True, diff=True)
    assert res["changed"] and res["diff_id"] == sha256(BASE) and res["size"] == len("hello\n")
    assert res["diff"]["after"]["diff_id"] == sha256(BASE) and res["layer"]["kind"] == "root"
    assert run_module(overlay_info, {"home": home}, check_mode=True)["layers"] == []
    assert sorted(os.listdir(scratch)) == before


def test_check_mount_of_a_layer_an_earlier_task_creates_says_mounted(run_module, home):
    """The real run mounts it, so check mode's answer is mounted, as for an existing layer."""
    res = run_module(overlay_mount, {"id": "app", "holder": "web", "home": home}, check_mode=True)
    assert res["changed"] and res["mounted"] and res["layer"]["mounted"] and res["holders"] == ["web"]
    assert not os.path.exists(home)
    # the real run fails when no earlier task creates it: the check run says what it assumed
    assert any("layer app does not exist" in w and "the real run fails" in w for w in res.get("warnings", [])), res


def test_check_apply_fails_where_the_real_run_fails(run_module, home, tarballs):
    _good, truncated = tarballs
    args = {"id": "base", "home": home, "src": truncated, "remote_src": True}
    check = run_module(overlay_apply_diff, args, check_mode=True)
    assert check["failed"] and not os.path.exists(home)
    real = run_module(overlay_apply_diff, args)
    assert real["failed"]
    wrong = dict(args, src=tarballs[0], diff_id="sha256:" + "1" * 64)
    assert "diff_id mismatch" in run_module(overlay_apply_diff, wrong, check_mode=True)["msg"]


def test_check_runs_on_an_existing_home_touch_nothing_not_even_leftovers(run_module, home, scratch, tarballs):
    good, _truncated = tarballs
    run_module(overlay_apply_diff, {"id": "base", "home": home, "src": good, "remote_src": True})
    run_module(overlay_layer, {"id": "app", "parent": "base", "home": home})
    leftover = os.path.join(home, ".strata", "tmp", "apply-app-123456")
    os.makedirs(os.path.join(leftover, "root"))
    orphan = os.path.join(home, ".strata", "layers", "gone.json")
    with open(orphan, "w") as f:
        f.write('{"holders": ["x"]}')
    before = tree_of(home), sorted(os.listdir(scratch))
    dest = os.path.join(scratch, "app.tar")
    calls = [
        (overlay_layer, {"id": "new", "parent": "base"}),
        (overlay_layer, {"id": "app", "state": "absent"}),
        (overlay_mount, {"id": "app", "holder": "web"}),
        (overlay_apply_diff, {"id": "new2", "parent": "base", "src": good, "remote_src": True}),
        (overlay_diff, {"id": "app", "dest": dest}),
        (overlay_info, {"id": "app", "changes": True}),
    ]
    for module, args in calls:
        res = run_module(module, dict(args, home=home), check_mode=True)
        assert not res.get("failed"), res
    assert (tree_of(home), sorted(os.listdir(scratch))) == before
    # overlay_info is a reader in every mode
    run_module(overlay_info, {"home": home, "id": "app", "changes": True})
    assert (tree_of(home), sorted(os.listdir(scratch))) == before


def test_info_takes_no_lock_file_and_no_exclusive_lock(run_module, home, tarballs):
    run_module(overlay_apply_diff, {"id": "base", "home": home, "src": tarballs[0], "remote_src": True})
    lock = os.path.join(home, ".strata", "lock")
    os.unlink(lock)
    assert [s["id"] for s in run_module(overlay_info, {"home": home})["layers"]] == ["base"]
    assert not os.path.exists(lock)
    with open(lock, "w"):
        pass
    with open(lock) as held:
        fcntl.flock(held, fcntl.LOCK_SH)  # another reader
        reader = LayerStore(home, read_only=True, lock_timeout=1)
        with reader.locked():
            assert [s["id"] for s in reader.layers()] == ["base"]
        fcntl.flock(held, fcntl.LOCK_EX)  # a writer: the reader's lock is a real (shared) lock
        with pytest.raises(OverlayError, match="timed out"):
            with reader.locked():
                pass
        reader.close()


def test_info_changes_never_mount(run_module, home, tarballs, monkeypatch):
    run_module(overlay_apply_diff, {"id": "base", "home": home, "src": tarballs[0], "remote_src": True})
    run_module(overlay_layer, {"id": "app", "parent": "base", "home": home})
    mounted = run_module(overlay_mount, {"id": "app", "home": home, "holder": "w"})
    with open(os.path.join(mounted["path"], "etc", "motd"), "w") as f:
        f.write("changed\n")
    run_module(overlay_mount, {"id": "app", "home": home, "holder": "w", "state": "unmounted"})

    def refuse(*_args, **_kwargs):
        raise AssertionError("overlay_info must not mount")
    monkeypatch.setattr(mounts, "mount_overlay", refuse)
    monkeypatch.setattr(driver_mod.mounts, "mount_overlay", refuse)
    res = run_module(overlay_info, {"home": home, "id": "app", "changes": True})
    assert [(c["path"], c["kind"]) for c in res["changes"]] == [("/etc", "modify"), ("/etc/motd", "modify")]
    assert res["diff_size"] == len("changed\n")


def test_info_on_a_read_only_home_and_a_writer_refused(run_module, home, tarballs, scratch):
    del scratch
    run_module(overlay_apply_diff, {"id": "base", "home": home, "src": tarballs[0], "remote_src": True})
    fs = os.path.dirname(home)
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import syscalls
    syscalls.mount("none", fs, None, 32 | 1)  # MS_REMOUNT | MS_RDONLY
    try:
        res = run_module(overlay_info, {"home": home, "id": "base", "changes": True})
        assert not res.get("failed") and res["layer"]["diff_id"] == sha256(BASE), res
        res = run_module(overlay_layer, {"id": "app", "parent": "base", "home": home})
        assert res["failed"] and "home is read-only" in res["msg"]
    finally:
        syscalls.mount("none", fs, None, 32)  # MS_REMOUNT, read-write again
    assert snapshot(home) is not None


def test_check_mount_of_a_layer_an_earlier_task_would_create(run_module, home):
    """A role in check mode creates a layer (on an image's top) and then mounts it: the mount's diff must
    say mounted, and not invent a kind or parent the creating task decides (it said kind root, mounted false)."""
    res = run_module(overlay_mount, {"id": "app", "holder": "svc", "home": home}, check_mode=True, diff=True)
    assert res["changed"]
    after = res["diff"]["after"]
    assert after["exists"] is True and after["holders"] == ["svc"] and after["mounted"] is True
    assert after["kind"] is None and after["parent"] is None
    assert not os.path.exists(home)


def test_a_check_run_of_a_writer_fails_on_a_read_only_home_as_the_real_run_does(
        run_module, home, tarballs, scratch, tmp_path):
    """Every writer's real run fails with "home is read-only" there (also when it would change
    nothing); a check run answering changed would promise what the real run cannot do."""
    del scratch
    run_module(overlay_apply_diff, {"id": "base", "home": home, "src": tarballs[0], "remote_src": True})
    run_module(overlay_layer, {"id": "app", "parent": "base", "home": home})
    out = str(tmp_path / "app.tar")
    calls = [(overlay_layer, {"id": "new", "parent": "base"}), (overlay_layer, {"id": "app", "parent": "base"}),
             (overlay_mount, {"id": "app", "holder": "w"}),
             (overlay_apply_diff, {"id": "other", "src": tarballs[0], "remote_src": True}),
             (overlay_diff, {"id": "app", "dest": out})]
    fs = os.path.dirname(home)
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import syscalls
    syscalls.mount("none", fs, None, 32 | 1)  # MS_REMOUNT | MS_RDONLY
    try:
        before = tree_of(home)
        for module, args in calls:
            args = dict(args, home=home)
            real = run_module(module, args)
            check = run_module(module, args, check_mode=True)
            assert real.get("failed") and "home is read-only" in real["msg"], (module.__name__, real)
            assert check.get("failed") and check["msg"] == real["msg"], (module.__name__, check)
        assert tree_of(home) == before
    finally:
        syscalls.mount("none", fs, None, 32)  # MS_REMOUNT, read-write again


@pytest.mark.layout("overlay2")  # overlay2's l/ of short links
@pytest.mark.parametrize("module", [overlay_layer, overlay_apply_diff])
def test_a_check_run_fails_as_the_real_run_on_an_l_holding_more_than_short_links(run_module, home, tarballs, module):
    """A regular file in l/: the real run refuses to write the new layer's short link there; the check run says
    so too (it predicted success before), with the same message, and touches nothing."""
    assert not run_module(overlay_layer, {"id": "base", "home": home, "layout": "overlay2"}).get("failed")
    with open(os.path.join(home, "l", "stray"), "w") as f:
        f.write("not a link")
    args = {"id": "new", "parent": "base", "home": home}
    if module is overlay_apply_diff:
        args.update(src=tarballs[0], remote_src=True)
    before = tree_of(home)
    check = run_module(module, args, check_mode=True)
    assert check.get("failed") and "refusing to write short links into it" in check["msg"], check
    assert tree_of(home) == before
    real = run_module(module, args)
    assert real.get("failed") and real["msg"] == check["msg"]
    assert not os.path.lexists(os.path.join(home, "new"))
