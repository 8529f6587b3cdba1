"""The seed's behaviour, checked with moby's graphtest scenarios on real overlay mounts.

The scenarios run on every layout's driver; the tests that read the seed's own
files (root/, upper/, lower-id) are marked for the overlay layout only."""

import io
import os
import shutil
import stat
import tarfile

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import mounts
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.changes import ADD, DELETE, MODIFY
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.drivers import open_driver
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError

from layertools import TarBuilder, layer_dir_owner, snapshot


@pytest.fixture
def driver(home):
    d = open_driver(home)
    try:
        yield d
    finally:
        d.close()


@pytest.fixture
def umask0():
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def create_base(driver, layer_id):
    """moby's createBase: `a subdir` 0705|sticky 1:2 and `a file` 0222|setuid."""
    driver.create(layer_id, "")
    root = driver.get(layer_id)
    subdir = os.path.join(root, "a subdir")
    os.mkdir(subdir, 0o705 | stat.S_ISVTX)
    os.chmod(subdir, 0o705 | stat.S_ISVTX)
    os.chown(subdir, 1, 2)
    path = os.path.join(root, "a file")
    with open(path, "w") as f:
        f.write("Some data")
    os.chmod(path, 0o222 | stat.S_ISUID)
    driver.put(layer_id)


def verify_base(root):
    assert sorted(os.listdir(root)) == ["a file", "a subdir"]
    st = os.lstat(os.path.join(root, "a subdir"))
    assert stat.S_ISDIR(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o705 | stat.S_ISVTX
    assert (st.st_uid, st.st_gid) == (1, 2)
    st = os.lstat(os.path.join(root, "a file"))
    assert stat.S_ISREG(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o222 | stat.S_ISUID
    assert (st.st_uid, st.st_gid) == (0, 0)
    with open(os.path.join(root, "a file")) as f:
        assert f.read() == "Some data"


@pytest.mark.layout("overlay")  # the seed's files: a base layer is root/ and get returns it
def test_create_empty(driver, umask0):
    driver.create("empty", "")
    assert driver.exists("empty")
    st = os.stat(os.path.join(driver.home, "empty"))
    assert stat.S_IMODE(st.st_mode) == 0o700
    root = driver.get("empty")
    assert root == os.path.join(driver.home, "empty", "root")
    st = os.stat(root)
    assert stat.S_IMODE(st.st_mode) == 0o755 and (st.st_uid, st.st_gid) == (0, 0)
    assert os.listdir(root) == []
    assert sorted(os.listdir(os.path.join(driver.home, "empty"))) == ["root"]
    driver.put("empty")
    driver.remove("empty")
    assert not driver.exists("empty")


def test_create_base(driver, umask0):
    create_base(driver, "Base")
    verify_base(driver.get("Base"))
    driver.put("Base")


@pytest.mark.layout("overlay")  # the seed's files: lower-id, upper/ and the lowerdir root/
def test_create_snap(driver, umask0):
    create_base(driver, "Base")
    driver.create("Snap", "Base")
    layer = os.path.join(driver.home, "Snap")
    assert sorted(os.listdir(layer)) == ["lower-id", "merged", "upper", "work"]
    with open(os.path.join(layer, "lower-id")) as f:
        assert f.read() == "Base"
    path = driver.get("Snap")
    assert path == os.path.join(layer, "merged")
    assert driver.is_mounted("Snap")
    entry = mounts.mount_at(path)
    assert entry.fstype == "overlay"
    assert entry.source.startswith("strata-")  # the token recorded for the mount, which names fds
    assert driver.mount_options("Snap", entry)["lowerdir"] == os.path.join(driver.home, "Base", "root")
    verify_base(path)
    # A second get is the same mount, not a second one.
    assert driver.get("Snap") == path
    assert len([m for m in mounts.read_mountinfo() if m.mount_point == path]) == 1
    driver.put("Snap")
    assert not driver.is_mounted("Snap")


@pytest.mark.layout("overlay")  # the seed's files: a child copies upper/ and inherits lower-id
def test_child_of_overlay_layer_copies_upper_and_inherits_lower_id(driver, umask0):
    create_base(driver, "Base")
    driver.create("Init", "Base")
    merged = driver.get("Init")
    os.makedirs(os.path.join(merged, "etc"))
    with open(os.path.join(merged, "etc", "hosts"), "w") as f:
        f.write("127.0.0.1 localhost\n")
    os.unlink(os.path.join(merged, "a file"))  # a whiteout in Init's upper
    driver.put("Init")
    driver.create("Container", "Init")
    with open(os.path.join(driver.home, "Container", "lower-id")) as f:
        assert f.read() == "Base"
    assert snapshot(os.path.join(driver.home, "Container", "upper")) == \
        snapshot(os.path.join(driver.home, "Init", "upper"))
    merged = driver.get("Container")
    assert sorted(os.listdir(merged)) == ["a subdir", "etc"]
    driver.put("Container")


def test_deep_layer_read_50(driver):
    count = 50
    driver.create("base", "")
    root = driver.get("base")
    with open(os.path.join(root, "testfile.txt"), "w") as f:
        f.write("test content")
    parent = "base"
    for i in range(1, count + 1):
        layer = "layer-%d" % i
        driver.create(layer, parent)
        path = driver.get(layer)
        with open(os.path.join(path, "top-id"), "w") as f:
            f.write(layer)
        os.mkdir(os.path.join(path, "layer-%d" % i))
        with open(os.path.join(path, "layer-%d" % i, "layer-id"), "w") as f:
            f.write(layer)
        with open(os.path.join(path, "layer-%d" % i, "parent-id"), "w") as f:
            f.write(parent)
        driver.put(layer)
        parent = layer
    top = driver.get(parent)
    try:
        with open(os.path.join(top, "testfile.txt")) as f:
            assert f.read() == "test content"
        with open(os.path.join(top, "top-id")) as f:
            assert f.read() == "layer-%d" % count
        for i in range(count, 0, -1):
            with open(os.path.join(top, "layer-%d" % i, "layer-id")) as f:
                assert f.read() == "layer-%d" % i
            with open(os.path.join(top, "layer-%d" % i, "parent-id")) as f:
                assert f.read() == ("layer-%d" % (i - 1) if i > 1 else "base")
    finally:
        driver.put(parent)


def _populate_diff_base(driver):
    driver.create("base", "")
    root = driver.get("base")
    os.makedirs(os.path.join(root, "var", "lib", "x"))
    with open(os.path.join(root, "var", "lib", "x", "data"), "w") as f:
        f.write("data")
    with open(os.path.join(root, "file-remove.txt"), "w") as f:
        f.write("to be removed")
    with open(os.path.join(root, "keep.txt"), "w") as f:
        f.write("kept")


def test_diff_apply(driver):
    _populate_diff_base(driver)
    driver.create("upper", "base")
    merged = driver.get("upper")
    for i in range(5):
        with open(os.path.join(merged, "file-%d.txt" % i), "w") as f:
            f.write("added %d\n" % i * (i + 1))
    os.unlink(os.path.join(merged, "file-remove.txt"))
    shutil.rmtree(os.path.join(merged, "var", "lib"))
    driver.put("upper")

    out = io.BytesIO()
    diff = driver.diff("upper", "base", out)
    diff_id, tar_size, changes, diff_size = diff.diff_id, diff.tar_size, diff.changes, diff.size
    assert tar_size == len(out.getvalue())
    assert driver.diff_size("upper", "base") == diff_size
    assert driver.changes_and_size("upper", "base") == (changes, diff_size)
    assert {(c.path, c.kind) for c in changes} >= {("/file-remove.txt", DELETE), ("/var/lib", DELETE)}

    driver.create("applied", "base")
    out.seek(0)
    result = driver.apply_diff("applied", "base", out)
    assert result.size == diff_size
    assert result.diff_id == diff_id
    assert result.fallback is False
    if driver.LAYOUT == "overlay":  # the parent had root/, so the child is a root layer too (the hardlink path)
        assert sorted(os.listdir(os.path.join(driver.home, "applied"))) == ["root"]
    view = driver.get("upper")
    try:
        assert snapshot(driver.get("applied")) == snapshot(view)
    finally:
        driver.put("upper")
    assert not os.path.exists(os.path.join(driver.get("applied"), "var", "lib"))


def _tar_names(data):
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return {member.name: member for member in tf}


def test_diff_of_an_opaque_directory_applies_back_onto_the_parent_as_the_same_tree(driver):
    """A directory removed and made again in a mounted child is opaque in its upper directory (the kernel
    marks it), with a subdirectory made in it that hides the parent's of the same name at every depth,
    and a file put back exactly as the parent had it. Applied onto the parent, the exported diff gives
    the child's tree on both layouts. overlay2 exports the opaque directory as Docker 20.10's overlay2
    does (its diff/ archived with the overlay whiteout format): one `.wh..wh..opq` and every entry the
    layer holds in it; the seed's layout exports its naive diff, as Docker's legacy overlay driver does
    (NaiveDiffDriver): one `.wh.<name>` per name of the parent's directory."""
    driver.create("base", "")
    root = driver.get("base")
    os.makedirs(os.path.join(root, "dir", "sub"))
    for name in ("dir/a", "dir/b", "dir/sub/x", "dir/sub/y", "other"):
        with open(os.path.join(root, name), "w") as f:
            f.write(name)
        os.utime(os.path.join(root, name), (1600000000, 1600000000))
    driver.put("base")
    driver.create("child", "base")
    merged = driver.get("child")
    try:
        shutil.rmtree(os.path.join(merged, "dir"))
        os.mkdir(os.path.join(merged, "dir"), 0o750)
        os.chmod(os.path.join(merged, "dir"), 0o750 | stat.S_ISVTX)
        os.chown(os.path.join(merged, "dir"), 5, 6)
        os.mkdir(os.path.join(merged, "dir", "sub"))
        for name, content in (("dir/a", "dir/a"), ("dir/new", "new"), ("dir/sub/z", "z")):
            with open(os.path.join(merged, name), "w") as f:
                f.write(content)
        os.utime(os.path.join(merged, "dir", "a"), (1600000000, 1600000000))  # as the parent's: no change
    finally:
        driver.put("child")
    changes = {(c.path, c.kind) for c in driver.changes("child", "base")}
    assert changes == {("/dir", MODIFY), ("/dir/b", DELETE), ("/dir/new", ADD), ("/dir/sub", MODIFY),
                       ("/dir/sub/x", DELETE), ("/dir/sub/y", DELETE), ("/dir/sub/z", ADD)}

    out = io.BytesIO()
    diff = driver.diff("child", "base", out)
    assert {(c.path, c.kind) for c in diff.changes} == changes
    members = _tar_names(out.getvalue())
    whiteouts = sorted(name for name in members if ".wh." in name)
    if driver.LAYOUT == "overlay2":
        assert whiteouts == ["dir/.wh..wh..opq"]
        assert {"dir", "dir/a", "dir/new", "dir/sub", "dir/sub/z"} <= set(members)
        opq = members["dir/.wh..wh..opq"]  # what Docker's converter writes: the directory's permissions and owner
        assert (opq.type, opq.size, opq.mode, opq.uid, opq.gid, opq.mtime) == (tarfile.REGTYPE, 0, 0o750, 5, 6, 0)
        assert list(members).index("dir/.wh..wh..opq") == list(members).index("dir") + 1
    else:
        assert whiteouts == ["dir/.wh.b", "dir/sub/.wh.x", "dir/sub/.wh.y"]

    driver.create("copy", "base")
    driver.apply_diff("copy", "base", io.BytesIO(out.getvalue()))
    try:
        assert snapshot(driver.get("copy")) == snapshot(driver.get("child"))
    finally:
        driver.put("copy")
        driver.put("child")
    # the same tarball again: an export is reproducible
    again = io.BytesIO()
    assert driver.diff("child", "base", again).diff_id == diff.diff_id


@pytest.mark.layout("overlay")  # the seed's files: an applied child hardlinks its parent's root/
def test_apply_diff_shares_file_data_with_parent_without_touching_it(driver):
    _populate_diff_base(driver)
    before = snapshot(driver.get("base"), times=True)
    layer = TarBuilder().file("keep.txt", "replaced").whiteout("var/lib").file("new", "n").bytes()
    driver.create("child", "base")
    driver.apply_diff("child", "base", io.BytesIO(layer))
    assert snapshot(driver.get("base"), times=True) == before
    base_root = driver.get("base")
    child_root = driver.get("child")
    # untouched files are hardlinks of the parent's; replaced ones are not
    assert os.stat(os.path.join(child_root, "file-remove.txt")).st_ino == \
        os.stat(os.path.join(base_root, "file-remove.txt")).st_ino
    assert os.stat(os.path.join(child_root, "keep.txt")).st_ino != os.stat(os.path.join(base_root, "keep.txt")).st_ino
    with open(os.path.join(child_root, "keep.txt")) as f:
        assert f.read() == "replaced"


def test_changes_21(driver):
    seed = 42
    driver.create("base", "")
    root = driver.get("base")
    os.mkdir(os.path.join(root, "directory-0"))
    for j in range(20):
        with open(os.path.join(root, "directory-0", "file-%d" % j), "w") as f:
            f.write("content %d" % j)
        os.utime(os.path.join(root, "directory-0", "file-%d" % j), (1600000000, 1600000000))
    driver.create("child", "base")
    merged = driver.get("child")
    expected = {("/directory-0", MODIFY)}
    for j in range(20):
        if j % 3 == 0:
            with open(os.path.join(merged, "directory-0", "file-%d" % j), "w") as f:
                f.write("changed %d" % j)
            expected.add(("/directory-0/file-%d" % j, MODIFY))
        elif j % 3 == 1:
            with open(os.path.join(merged, "directory-0", "file-%d-%d" % (seed, j)), "w") as f:
                f.write("new")
            expected.add(("/directory-0/file-%d-%d" % (seed, j), ADD))
        else:
            os.unlink(os.path.join(merged, "directory-0", "file-%d" % j))
            expected.add(("/directory-0/file-%d" % j, DELETE))
    driver.put("child")
    changes = driver.changes("child", "base")
    assert len(changes) == 21
    assert {(c.path, c.kind) for c in changes} == expected
    assert changes[0].path == "/directory-0"  # a directory comes before what changed in it
    assert not driver.is_mounted("child")  # changes() put back what it mounted


@pytest.mark.layout("overlay")  # the seed's files: the naive path writes upper/
def test_naive_fallback_for_child_of_overlay_layer(driver):
    _populate_diff_base(driver)
    driver.create("init", "base")
    driver.create("layer", "init")  # init has no root/: the naive path
    diff = TarBuilder().dir("etc").file("etc/motd", "hello").whiteout("keep.txt").opaque("var").bytes()
    result = driver.apply_diff("layer", "init", io.BytesIO(diff))
    assert result.fallback is True
    assert sorted(os.listdir(os.path.join(driver.home, "layer"))) == ["lower-id", "merged", "upper", "work"]
    upper = os.path.join(driver.home, "layer", "upper")
    # overlay recorded the deletion in upper/ as a 0/0 character device
    st = os.lstat(os.path.join(upper, "keep.txt"))
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    merged = driver.get("layer")
    try:
        assert sorted(os.listdir(merged)) == ["etc", "file-remove.txt", "var"]
        assert os.listdir(os.path.join(merged, "var")) == []
        with open(os.path.join(merged, "etc", "motd")) as f:
            assert f.read() == "hello"
    finally:
        driver.put("layer")
    assert result.size == len("hello")


@pytest.mark.layout("overlay")  # the seed's files: root/ exchanged whole
def test_base_layer_apply_is_the_fallback_and_exchanges_root(driver):
    driver.create("base", "")
    root_ino = os.stat(os.path.join(driver.home, "base", "root")).st_ino
    diff = TarBuilder().dir("bin").file("bin/sh", "#!", mode=0o755).bytes()
    result = driver.apply_diff("base", "", io.BytesIO(diff))
    assert result.fallback is True
    assert sorted(os.listdir(os.path.join(driver.home, "base"))) == ["root"]
    assert os.stat(os.path.join(driver.home, "base", "root")).st_ino != root_ino  # a new tree was exchanged in
    assert os.listdir(os.path.join(driver.home, ".strata", "tmp")) == []


def test_failed_apply_leaves_the_layer_as_it_was(driver):
    _populate_diff_base(driver)
    driver.create("child", "base")
    before = sorted(os.listdir(os.path.join(driver.home, "child")))
    bad = TarBuilder().file("a", "x").file("../escape", "y").bytes()
    with pytest.raises(OverlayError, match="'..'"):
        driver.apply_diff("child", "base", io.BytesIO(bad))
    assert sorted(os.listdir(os.path.join(driver.home, "child"))) == before
    assert os.listdir(os.path.join(driver.home, ".strata", "tmp")) == []


def test_diff_id_mismatch_is_refused_before_the_layer_changes(driver):
    driver.create("base", "")
    diff = TarBuilder().file("a", "x").bytes()
    with pytest.raises(OverlayError, match="diff_id mismatch"):
        driver.apply_diff("base", "", io.BytesIO(diff), expected_diff_id="sha256:" + "0" * 64)
    assert os.listdir(driver.get("base")) == []


@pytest.mark.layout("overlay")  # the seed's files: RootDir, LowerDir and UpperDir
def test_metadata(driver):
    driver.create("base", "")
    driver.create("child", "base")
    assert driver.metadata("base") == {"RootDir": os.path.join(driver.home, "base", "root")}
    md = driver.metadata("child")
    assert md == {"LowerDir": os.path.join(driver.home, "base", "root"),
                  "UpperDir": os.path.join(driver.home, "child", "upper"),
                  "WorkDir": os.path.join(driver.home, "child", "work"),
                  "MergedDir": os.path.join(driver.home, "child", "merged")}
    with pytest.raises(OverlayError, match="does not exist"):
        driver.metadata("nope")


@pytest.mark.layout("overlay")  # the seed's files: lower-id inherited, LowerId in the metadata
def test_what_the_layer_below_is_and_what_modules_may_see_are_the_drivers_to_say(driver):
    """The store and the managers ask the driver, not the seed's files: another layout names them otherwise."""
    driver.create("base", "")
    driver.create("child", "base")
    driver.create("grandchild", "child")  # inherits the child's lower-id
    assert driver.lower_layer("base") is None
    assert driver.lower_layer("child") == driver.lower_layer("grandchild") == "base"
    assert driver.public_metadata("base") == {"MergedDir": os.path.join(driver.home, "base", "merged")}
    assert driver.public_metadata("child") == {"LowerId": "base",
                                               "UpperDir": os.path.join(driver.home, "child", "upper"),
                                               "WorkDir": os.path.join(driver.home, "child", "work"),
                                               "MergedDir": os.path.join(driver.home, "child", "merged")}
    os.unlink(os.path.join(driver.home, "child", "lower-id"))
    with pytest.raises(OverlayError, match="cannot read lower-id"):
        driver.lower_layer("child")


@pytest.mark.layout("overlay")  # the seed's files: the kinds root and overlay
@pytest.mark.parametrize("exists, kind, parent, expected", [
    (False, None, "", ("root", True)),                  # a base layer: the diff goes into its new root/
    (False, None, "base", ("root", False)),             # onto a parent with root/: a hardlink copy
    (False, None, "child", ("overlay", True)),          # onto an overlay: the naive path
    (False, None, "planned", ("root", False)),          # a parent an earlier task would create: a base
    (True, "overlay", "child", ("overlay", True)),
    (True, "overlay", "base", ("root", False)),
    (True, "root", "", ("root", True)),
])
def test_kind_after_apply_predicts_what_apply_diff_makes(driver, exists, kind, parent, expected):
    driver.create("base", "")
    driver.create("child", "base")
    assert driver.kind_after_apply(exists, kind, parent) == expected


def test_create_refuses_existing_and_missing_parent(driver):
    driver.create("a", "")
    with pytest.raises(OverlayError, match="already exists"):
        driver.create("a", "")
    with pytest.raises(OverlayError, match="parent layer missing does not exist"):
        driver.create("b", "missing")
    assert not driver.exists("b")
    assert os.listdir(os.path.join(driver.home, ".strata", "tmp")) == []


@pytest.mark.parametrize("bad", ["", "../x", "a/b", ".hidden", "-x", "x" * 129, "a\nb", "a b"])
def test_invalid_ids_are_refused_before_the_disk(driver, bad):
    before = sorted(os.listdir(driver.home))
    with pytest.raises(OverlayError, match="invalid"):
        driver.create(bad, "")
    assert sorted(os.listdir(driver.home)) == before


@pytest.mark.layout("overlay")  # the seed's files: lower-id
def test_corrupt_lower_id_is_refused(driver):
    driver.create("base", "")
    driver.create("child", "base")
    with open(os.path.join(driver.home, "child", "lower-id"), "w") as f:
        f.write("../../etc")
    with pytest.raises(OverlayError, match="invalid lower-id"):
        driver.get("child")


def test_foreign_mount_at_merged_is_reported(driver, scratch):
    driver.create("base", "")
    driver.create("child", "base")
    merged = os.path.join(driver.home, "child", "merged")
    os.makedirs(merged, exist_ok=True)  # overlay2 makes merged/ when it mounts, as Docker does
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import syscalls
    syscalls.mount("tmpfs", merged, "tmpfs", 0, "size=1m")
    with pytest.raises(OverlayError, match="a different mount"):
        driver.get("child")
    with pytest.raises(OverlayError, match="a different mount"):
        driver.put("child")
    syscalls.umount(merged)


def test_remove_refuses_mounted_layer(driver):
    driver.create("base", "")
    driver.create("child", "base")
    driver.get("child")
    with pytest.raises(OverlayError, match="mounted"):
        driver.remove("child")
    assert driver.exists("child")
    driver.put("child")
    assert driver.remove("child") is True
    assert driver.remove("child") is False


@pytest.mark.layout("overlay")  # the seed's files: a root/ renamed in beside the overlay parts
def test_cleanup_removes_leftovers_of_killed_runs(driver):
    driver.create("base", "")
    driver.create("child", "base")
    # a run killed mid-apply: a temp dir with a mount inside it
    tmp = os.path.join(driver.home, ".strata", "tmp", "apply-child-x")
    os.makedirs(os.path.join(tmp, "merged"))
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import syscalls
    syscalls.mount("tmpfs", os.path.join(tmp, "merged"), "tmpfs", 0, "size=1m")
    # a run killed between renaming root/ in and dropping the overlay parts
    os.mkdir(os.path.join(driver.home, "child", "root"))
    removed = driver.cleanup()
    assert tmp in removed
    assert os.listdir(os.path.join(driver.home, ".strata", "tmp")) == []
    assert sorted(os.listdir(os.path.join(driver.home, "child"))) == ["root"]
    assert not mounts.mounts_below(os.path.join(driver.home, ".strata"))


@pytest.mark.layout("overlay")  # the seed's files: lower-id beside root/
def test_cleanup_removes_a_directory_planted_as_a_root_layers_lower_id(driver):
    """The layer's owner made lower-id a directory beside root/: cleanup removes it, never failing every writer."""
    driver.create("base", "")
    planted = os.path.join(driver.home, "base", "lower-id")
    os.makedirs(os.path.join(planted, "sub"))
    driver.cleanup()
    assert sorted(os.listdir(os.path.join(driver.home, "base"))) == ["root"]


def test_status_is_the_seeds_shape_of_the_hosts(driver):
    status = dict(driver.status())
    assert (status["Backing Filesystem"], status["Supports d_type"]) == ("tmpfs", "true")
    assert status["Kernel"] == os.uname().release


# -- create_applied: a new layer with its diff, renamed into place once complete -------------------------

DIFF = TarBuilder().dir("etc").file("etc/motd", "hello\n").file("new", "n").bytes()


def make_parent(driver, parent_kind):
    """The parent id a create_applied test builds on: "" for none, a root layer with a file, or an overlay on it."""
    if parent_kind == "none":
        return ""
    driver.create("base", "")
    driver.apply_diff("base", "", io.BytesIO(TarBuilder().dir("etc").file("etc/os", "x").bytes()))
    if parent_kind == "root":
        return "base"
    driver.create("init", "base")
    return "init"


@pytest.mark.parametrize("parent_kind", ["none", "root", "overlay"])
def test_create_applied_is_create_then_apply_diff_in_one_step(driver, home, parent_kind):
    """The same layer as create + apply_diff: kind, files, and for an overlay parent lower-id and upper/."""
    parent = make_parent(driver, parent_kind)
    driver.create("two-step", parent)
    two_step = driver.apply_diff("two-step", parent, io.BytesIO(DIFF))
    one_step = driver.create_applied("one-step", parent, io.BytesIO(DIFF))
    assert (one_step.diff_id, one_step.size, one_step.fallback) == (
        two_step.diff_id, two_step.size, two_step.fallback)
    assert driver.kind("one-step") == driver.kind("two-step")
    assert sorted(os.listdir(os.path.join(home, "one-step"))) == sorted(os.listdir(os.path.join(home, "two-step")))
    try:
        assert snapshot(driver.get("one-step")) == snapshot(driver.get("two-step"))
    finally:
        driver.put("one-step")
        driver.put("two-step")
    assert os.listdir(os.path.join(home, ".strata", "tmp")) == []


@pytest.mark.parametrize("parent_kind", ["none", "overlay"])
def test_create_applied_that_fails_leaves_no_layer(driver, home, parent_kind):
    """A diff whose diff_id is wrong (or a stream cut short) leaves no directory of that id and nothing in tmp."""
    parent = ""
    if parent_kind == "overlay":
        driver.create("base", "")
        driver.create("init", "base")
        parent = "init"
    called = []
    with pytest.raises(OverlayError):
        driver.create_applied("new", parent, io.BytesIO(DIFF), expected_diff_id="sha256:" + "0" * 64,
                              before_rename=called.append)
    assert not os.path.lexists(os.path.join(home, "new")) and called == []
    assert os.listdir(os.path.join(home, ".strata", "tmp")) == []
    assert not mounts.mounts_below(home)


@pytest.mark.parametrize("parent_kind", ["none", "root", "overlay"])
def test_create_applied_under_maps_owns_as_create_then_apply_diff(home, layout, parent_kind):
    """Under id maps the new layer's directories belong to the remapped root exactly as the two steps make them."""
    maps = [{"container_id": 0, "host_id": 300000, "size": 65536}]
    driver = open_driver(home, uid_maps=maps, gid_maps=maps)
    parent = make_parent(driver, parent_kind)
    driver.create("two-step", parent)
    driver.apply_diff("two-step", parent, io.BytesIO(DIFF))
    driver.create_applied("one-step", parent, io.BytesIO(DIFF))

    def owners(layer_id):
        top = os.path.join(home, layer_id)
        found = {}
        for name in ["."] + os.listdir(top):
            st = os.lstat(os.path.join(top, name))
            found[name] = (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))
        return found
    assert owners("one-step") == owners("two-step")
    assert owners("one-step")["."][:2] == layer_dir_owner(layout, 300000, 300000)


def _deeper_than_path_max(top):
    """20 levels of 250-byte names under top (5,000 bytes), made through directory fds, as a process in the
    layer makes them through its mount."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _level in range(20):
            os.mkdir("n" * 250, dir_fd=fd)
            nfd = os.open("n" * 250, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        os.close(os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    finally:
        os.close(fd)


@pytest.mark.layout("overlay")  # the seed's files: the tree is made in upper/
def test_an_overlay_layer_deeper_than_path_max_is_a_clear_error_for_changes_and_diff(driver):
    """overlay_info changes and overlay_diff walk the layer's upper/ over its lower root/ by path: a tree deeper
    than PATH_MAX fails naming that limit, not with an unexpected OSError."""
    create_base(driver, "base")
    driver.create("app", "base")
    _deeper_than_path_max(os.path.join(driver.home, "app", "upper"))
    for call in (lambda: driver.changes("app", "base"), lambda: driver.changes_and_size("app", "base"),
                 lambda: driver.diff("app", "base", io.BytesIO())):
        with pytest.raises(OverlayError) as e:
            call()
        assert "a path in it is longer than PATH_MAX (4096 bytes)" in str(e.value)


@pytest.mark.layout("overlay")  # the seed's naive path mounts a temp overlay in root's .strata/tmp
def test_the_temp_overlay_unmount_takes_down_only_the_mount_it_made(driver, monkeypatch):
    """The naive path's temp overlay is unmounted by its id, read right after mounting through the temp dir's
    kept fd: a mount that is not that one at merged/ by then (here one stacked on it) is never unmounted, and the
    apply fails saying so. By path, the umount took down whichever mount was on top."""
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import faults, syscalls

    _populate_diff_base(driver)
    driver.create("init", "base")
    driver.create("layer", "init")  # init has no root/: the naive path
    tmp = os.path.join(driver.home, ".strata", "tmp")
    stacked = []

    def at(name):
        if name == "apply.mounted":
            [building] = [n for n in os.listdir(tmp) if os.path.ismount(os.path.join(tmp, n, "merged"))]
            stacked.append(os.path.join(tmp, building, "merged"))
            syscalls.mount("tmpfs", stacked[0], "tmpfs", 0, "")

    monkeypatch.setattr(faults, "point", at)
    try:
        with pytest.raises(OverlayError, match="no longer leads to the layer's mount .*; nothing was unmounted"):
            driver.apply_diff("layer", "init", io.BytesIO(TarBuilder().file("a", "a").bytes()))
        assert [m.fstype for m in mounts.mounts_at(stacked[0])] == ["overlay", "tmpfs"]
    finally:
        for mount in sorted(mounts.mounts_below(tmp), key=lambda m: -len(m.mount_point)):
            syscalls.umount(mount.mount_point, syscalls.MNT_DETACH)
