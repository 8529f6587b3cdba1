"""Changes and diffs of overlay layers are read from upper/ and root/, never through a mount,
and equal what the naive driver reads through the mounted layer."""

import io
import os
import shutil

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import driver as driver_mod, mounts
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.changes import changes_dirs
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.driver import Driver
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.tar_export import export_changes

from layertools import TarBuilder

# TreeView reads the seed's overlay layers (upper/ over the lower-id's root/) without mounting
pytestmark = pytest.mark.layout("overlay")

BASE = (TarBuilder().dir("etc").file("etc/motd", "base\n").file("etc/gone", "x").dir("srv").file("srv/a", "a")
        .file("srv/b", "b").dir("srv/sub").file("srv/sub/c", "c").dir("var").dir("var/lib").file("var/lib/db", "d")
        .file("keep", "k").bytes())


def _edit_through_mount(drv, layer_id):
    merged = drv.get(layer_id)
    try:
        with open(os.path.join(merged, "etc/motd"), "w") as f:
            f.write("changed\n")
        os.unlink(os.path.join(merged, "etc/gone"))
        shutil.rmtree(os.path.join(merged, "srv"))  # then recreated: an opaque dir in upper/
        os.mkdir(os.path.join(merged, "srv"))
        with open(os.path.join(merged, "srv/new"), "w") as f:
            f.write("new")
        shutil.rmtree(os.path.join(merged, "var/lib"))
        os.chmod(os.path.join(merged, "keep"), 0o600)
        os.mkdir(os.path.join(merged, "added"))
        os.symlink("../keep", os.path.join(merged, "added/link"))
    finally:
        drv.put(layer_id)


def _naive(drv, layer_id, parent_root):
    """The changes and tarball read through a mount of the layer, as the naive driver does."""
    merged = drv.get(layer_id)
    try:
        changes = changes_dirs(merged, parent_root)
        out = io.BytesIO()
        exported = export_changes(merged, changes, out)
        return [(c.path, c.kind) for c in changes], exported.diff_id, exported.diff_size
    finally:
        drv.put(layer_id)


@pytest.fixture
def tree(home):
    drv = Driver(home)
    drv.create("base", "")
    drv.apply_diff("base", "", io.BytesIO(BASE))
    drv.create("app", "base")
    _edit_through_mount(drv, "app")
    yield drv
    drv.close()


def _mounts_in(home):
    """The mount points in the home: the host's other mounts change with whatever else runs beside the test."""
    return sorted(m.mount_point for m in mounts.mounts_below(home, including_path=True))


def _no_mounts(monkeypatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError("reading a layer must not mount anything")
    monkeypatch.setattr(mounts, "mount_overlay", refuse)
    monkeypatch.setattr(driver_mod.mounts, "mount_overlay", refuse)


def test_overlay_changes_and_diff_equal_the_mounted_view_without_mounting(tree, monkeypatch):
    root = tree.layout.layer("base").root
    naive_changes, naive_diff_id, naive_size = _naive(tree, "app", root)
    assert ("/srv/a", "D") in naive_changes and ("/var/lib", "D") in naive_changes  # the scenario is real
    before = _mounts_in(tree.home)
    _no_mounts(monkeypatch)
    changes, size = tree.changes_and_size("app", "base")
    assert [(c.path, c.kind) for c in changes] == naive_changes
    assert size == naive_size
    out = io.BytesIO()
    diff = tree.diff("app", "base", out)
    assert diff.diff_id == naive_diff_id and diff.size == naive_size
    assert _mounts_in(tree.home) == before


def test_child_of_an_overlay_compared_with_its_overlay_parent(tree, monkeypatch):
    tree.create("child", "app")  # inherits lower-id and a copy of app's upper/
    merged = tree.get("child")
    try:
        os.unlink(os.path.join(merged, "srv/new"))
        os.unlink(os.path.join(merged, "keep"))
        with open(os.path.join(merged, "etc/child"), "w") as f:
            f.write("child")
    finally:
        tree.put("child")
    parent_merged = tree.get("app")
    try:
        expected = [(c.path, c.kind) for c in changes_dirs(tree.get("child"), parent_merged)]
    finally:
        tree.put("child")
        tree.put("app")
    _no_mounts(monkeypatch)
    assert [(c.path, c.kind) for c in tree.changes("child", "app")] == expected
    assert ("/keep", "D") in expected and ("/srv/new", "D") in expected and ("/etc/child", "A") in expected


def test_a_lower_symlink_under_an_upper_directory_is_not_followed(home, canary, monkeypatch):
    """upper/a is a directory (made while the lower had no a), the lower root/a a symlink to a host
    directory (a diff applied to the parent afterwards). Overlay shows only upper/a there; reading the
    layer must not list, report or export the host directory's files."""
    drv = Driver(home)
    try:
        drv.create("base", "")
        drv.create("app", "base")
        merged = drv.get("app")
        try:
            os.mkdir(os.path.join(merged, "a"))
            with open(os.path.join(merged, "a", "mine"), "w") as f:
                f.write("mine")
        finally:
            drv.put("app")
        drv.apply_diff("base", "", io.BytesIO(TarBuilder().symlink("a", os.path.join(canary, "etc")).bytes()))
        naive_changes, naive_diff_id, _size = _naive(drv, "app", drv.layout.layer("base").root)
        assert naive_changes == [("/a", "C"), ("/a/mine", "A")]
        _no_mounts(monkeypatch)
        changes, _size = drv.changes_and_size("app", "base")
        assert [(c.path, c.kind) for c in changes] == naive_changes
        out = io.BytesIO()
        diff_id = drv.diff("app", "base", out).diff_id
        assert diff_id == naive_diff_id and b"root:x:0:0" not in out.getvalue()
    finally:
        drv.close()


def test_a_lower_tree_under_an_opaque_upper_directory_stays_hidden_at_every_depth(tree, monkeypatch):
    """srv/ removed and made again with srv/sub/ inside: upper/srv is opaque, upper/srv/sub is not
    (nothing was deleted there), and the lower srv/sub/c must not come back through it."""
    merged = tree.get("app")
    try:
        os.mkdir(os.path.join(merged, "srv/sub"))
        with open(os.path.join(merged, "srv/sub/n"), "w") as f:
            f.write("n")
    finally:
        tree.put("app")
    naive_changes, naive_diff_id, naive_size = _naive(tree, "app", tree.layout.layer("base").root)
    assert ("/srv/sub/c", "D") in naive_changes  # the scenario is real
    _no_mounts(monkeypatch)
    changes, size = tree.changes_and_size("app", "base")
    assert [(c.path, c.kind) for c in changes] == naive_changes and size == naive_size
    out = io.BytesIO()
    assert tree.diff("app", "base", out).diff_id == naive_diff_id


def test_a_directory_swapped_for_a_symlink_after_the_listing_is_not_read_through(home, canary):
    """A process inside the mounted layer renames upper/a away and puts a symlink to a host
    directory in its place between the listing and the export: root must not read the host file
    that has the listed name. The export reads a/ by the fd the walk opened (the layer's own file,
    moved) or, once that fd was closed, opens a/ again from upper/ and finds the symlink: refused."""
    drv = Driver(home)
    try:
        drv.create("base", "")
        drv.create("app", "base")
        upper = drv.layout.layer("app").upper
        os.mkdir(os.path.join(upper, "a"))
        with open(os.path.join(upper, "a", "passwd"), "w") as f:
            f.write("layer's own\n")
        for drop_fds in (False, True):
            with drv._changes("app", "base") as (changes, own):  # pylint: disable=protected-access
                os.rename(os.path.join(upper, "a"), os.path.join(upper, "a.old"))
                os.symlink(os.path.join(canary, "etc"), os.path.join(upper, "a"))
                if drop_fds:
                    own.close_below()  # as when more directories were read since: the export opens a/ again
                out = io.BytesIO()
                try:
                    export_changes(own, changes, out)
                except OverlayError as e:
                    assert drop_fds and "refusing to read it" in str(e), str(e)
                else:
                    assert not drop_fds and b"layer's own" in out.getvalue()
                assert b"root:x:0:0" not in out.getvalue()
            os.unlink(os.path.join(upper, "a"))
            os.rename(os.path.join(upper, "a.old"), os.path.join(upper, "a"))
    finally:
        drv.close()
