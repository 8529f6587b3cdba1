"""The naive change detection, on plain directories."""

import collections
import os
import stat

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.changes import (
    ADD, DELETE, MODIFY, OPAQUE_DIR, changes_dirs, changes_size, own_changes, with_opaque_dirs)
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import view_dirs
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.overlay_view import TreeView
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.whiteouts import OPAQUE_XATTR

from layertools import deep_tree


def write(path, data, mtime=1600000000):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(data)
    os.utime(path, (mtime, mtime))


def test_semantics(scratch):
    old = os.path.join(scratch, "old")
    new = os.path.join(scratch, "new")
    for root in (old, new):
        write(os.path.join(root, "same"), "x")
        write(os.path.join(root, "d", "same"), "x")
        write(os.path.join(root, "mtime"), "x")
        write(os.path.join(root, "owner"), "x")
        write(os.path.join(root, "gone", "f"), "x")
    write(os.path.join(new, "mtime"), "x", mtime=1600000001)
    os.chown(os.path.join(new, "owner"), 5, 5)
    write(os.path.join(new, "d", "added"), "12345")
    import shutil
    shutil.rmtree(os.path.join(new, "gone"))
    # nanoseconds are ignored when one side has none (moby's sameFsTimeSpec)
    os.utime(os.path.join(new, "same"), ns=(1600000000000000000, 1600000000000000000))
    changes = changes_dirs(new, old)
    assert [(c.path, c.kind) for c in changes] == [
        ("/d", MODIFY), ("/d/added", ADD), ("/mtime", MODIFY), ("/owner", MODIFY), ("/gone", DELETE)]
    assert changes_size(new, changes) == 5 + 1 + 1


def test_against_nothing_everything_is_added(scratch):
    write(os.path.join(scratch, "t", "a", "b"), "x")
    assert [(c.path, c.kind) for c in changes_dirs(os.path.join(scratch, "t"))] == [("/a", ADD), ("/a/b", ADD)]


def test_deep_trees_do_not_overflow(scratch):
    changes = changes_dirs(deep_tree(os.path.join(scratch, "t"), 1500))
    assert len(changes) == 1500 and all(c.kind == ADD for c in changes)


def test_hardlink_copy_of_the_parent(scratch):
    """A layer built by apply_diff shares the parent's inodes; only what was replaced can differ."""
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.copy import copy_tree

    old = os.path.join(scratch, "old")
    for name in ("shared", "replaced-same", "replaced-cap", "replaced-size", "d/shared", "d/gone"):
        write(os.path.join(old, name), "x")
    new = os.path.join(scratch, "new")
    copy_tree(old, new, hardlink=True)
    assert os.stat(os.path.join(new, "shared")).st_ino == os.stat(os.path.join(old, "shared")).st_ino

    def replace(name, data):
        path = os.path.join(new, name)
        os.unlink(path)
        write(path, data)

    replace("replaced-same", "x")  # a new inode that equals the old one in every compared way
    replace("replaced-cap", "x")
    os.setxattr(os.path.join(new, "replaced-cap"), "security.capability",
                b"\x01\x00\x00\x02\x00\x20\x00\x00" + b"\x00" * 12)
    replace("replaced-size", "xy")
    os.unlink(os.path.join(new, "d", "gone"))
    os.utime(os.path.join(new, "d"), (1600000000, 1600000000))
    changes = changes_dirs(new, old)
    assert [(c.path, c.kind) for c in changes] == [
        ("/d", MODIFY), ("/d/gone", DELETE), ("/replaced-cap", MODIFY), ("/replaced-size", MODIFY)]


def test_a_file_turned_directory_has_all_its_children_added(scratch):
    old = os.path.join(scratch, "old")
    new = os.path.join(scratch, "new")
    write(os.path.join(old, "x"), "file")
    write(os.path.join(old, "dir", "child"), "x")
    write(os.path.join(new, "x", "inside"), "x")
    write(os.path.join(new, "dir"), "now a file")
    assert [(c.path, c.kind) for c in changes_dirs(new, old)] == [
        ("/dir", MODIFY), ("/x", MODIFY), ("/x/inside", ADD)]


def test_change_lists_carry_undecodable_names_as_escaped_text(scratch):
    """Linux names are bytes; modules return the change list as JSON, which cannot carry the lone
    surrogates a non-UTF-8 name decodes to. as_dict escapes them (\\xHH, and a backslash doubled),
    reversibly; the exported tar keeps the raw bytes."""
    import io
    import json
    import tarfile

    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.changes import (
        escape_path, unescape_path)
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.tar_export import export_changes

    tree = os.path.join(scratch, "t")
    raw_names = [b"caf\xe9", b"\\xe9", b"back\\slash", "\u00fcnicode".encode(), b"plain", b"\xff\xfe\\x"]
    os.makedirs(os.fsencode(tree) + b"/d\x80")
    for name in raw_names:
        with open(os.fsencode(tree) + b"/d\x80/" + name, "w") as f:
            f.write("x")
    changes = changes_dirs(tree)
    returned = [c.as_dict() for c in changes]
    text = json.dumps(returned, ensure_ascii=False).encode("utf-8")  # what fails with surrogates
    paths = [item["path"] for item in json.loads(text)]
    assert sorted(paths) == sorted(["/d\\x80"] + ["/d\\x80/" + p for p in (
        "caf\\xe9", "\\\\xe9", "back\\\\slash", "\u00fcnicode", "plain", "\\xff\\xfe\\\\x")])
    # reversible: every path gives back its raw bytes, so the two look-alike names stay distinct
    assert sorted(unescape_path(p) for p in paths) == sorted(
        [b"/d\x80"] + [b"/d\x80/" + n for n in raw_names])
    assert escape_path("/usr/bin/ls") == "/usr/bin/ls"
    out = io.BytesIO()
    export_changes(tree, changes, out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue()), encoding="utf-8", errors="surrogateescape") as archive:
        names = sorted(os.fsencode(m.name) for m in archive.getmembers())
    assert names == sorted([b"d\x80"] + [b"d\x80/" + n for n in raw_names])


def _deeper_than_path_max(path):
    """path/ then 20 levels of 250-byte names: 5,000 bytes, made through directory fds."""
    os.mkdir(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        for _level in range(20):
            os.mkdir("n" * 250, dir_fd=fd)
            nfd = os.open("n" * 250, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        os.close(os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    finally:
        os.close(fd)
    return path


def test_a_tree_deeper_than_path_max_is_a_clear_error(scratch):
    """Processes in a container can make such a tree in upper/; the walk names it instead of a traceback."""
    import pytest

    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError

    with pytest.raises(OverlayError, match="cannot compare the layer: a path in it is longer than PATH_MAX"):
        changes_dirs(_deeper_than_path_max(os.path.join(scratch, "t")))


def test_an_opaque_directory_hides_the_parent_at_every_depth_and_exports_as_dockers_overlay2(scratch):
    """A layer's own directory over its parent's tree (overlay2's diff/): below an opaque directory the
    parent's entries are gone at every depth, also under a plain directory the layer made in it; the
    export form puts each opaque directory's '.wh..wh..opq' right after it and every entry the layer
    holds below it (nested opaque directories too), none of the parent's deletions."""
    parent = os.path.join(scratch, "parent")
    top = os.path.join(scratch, "top")
    for rel in ("D/a", "D/b", "D/sub/x", "other"):
        os.makedirs(os.path.dirname(os.path.join(parent, rel)), exist_ok=True)
        with open(os.path.join(parent, rel), "w") as f:
            f.write(rel)
    for rel in ("D/sub/z", "D/E/y"):
        os.makedirs(os.path.dirname(os.path.join(top, rel)), exist_ok=True)
        with open(os.path.join(top, rel), "w") as f:
            f.write(rel)
    for rel in ("D", "D/E"):
        os.setxattr(os.path.join(top, rel), OPAQUE_XATTR, b"y")
    changes = own_changes(top, TreeView([parent]))
    assert {(c.path, c.kind) for c in changes} == {
        ("/D", MODIFY), ("/D/E", ADD), ("/D/E/y", ADD), ("/D/a", DELETE), ("/D/b", DELETE), ("/D/sub", MODIFY),
        ("/D/sub/x", DELETE), ("/D/sub/z", ADD)}
    assert [(c.path, c.kind) for c in with_opaque_dirs(changes)] == [
        ("/D", MODIFY), ("/D/.wh..wh..opq", OPAQUE_DIR), ("/D/E", ADD), ("/D/E/.wh..wh..opq", OPAQUE_DIR),
        ("/D/E/y", ADD), ("/D/sub", ADD), ("/D/sub/z", ADD)]


def _make(root, files):
    for rel in files:
        os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
        with open(os.path.join(root, rel), "w") as f:
            f.write(rel)


def test_a_layers_walk_lists_each_own_directory_once_and_keeps_only_the_parents_entries_it_names(scratch, monkeypatch):
    """Against its parent, a layer's changes cost what the layer holds: each of its own directories is
    listed once (both trees take the names from that one listing), and of a large parent directory
    only the entries the layer also has are kept and typed, whatever the parent holds besides. The
    parent is two stacked layers, one of which whites out a name the top adds again."""
    lower, upper, top = (os.path.join(scratch, name) for name in ("lower", "upper", "top"))
    _make(lower, ["big/f%03d" % n for n in range(300)] + ["big/gone", "big/sub/x", "other"])
    _make(upper, ["big/sub/y"])
    os.mknod(os.path.join(upper, "big", "f007"), 0o600 | stat.S_IFCHR, os.makedev(0, 0))  # a whiteout
    _make(top, ["big/f007", "big/new", "big/sub/keep"])
    for rel in ("big/f001", "big/sub/x"):  # other content, other size: modified whatever the times
        with open(os.path.join(top, rel), "w") as f:
            f.write("changed " + rel)
    os.mknod(os.path.join(top, "big", "gone"), 0o600 | stat.S_IFCHR, os.makedev(0, 0))
    listed = collections.Counter()
    typed = []

    def counting(real, what):
        def call(arg):
            if what is listed and isinstance(arg, str):
                return real(arg)  # /proc/self/fd, counted once per root (view_dirs._judge_room): no layer directory
            if what is listed:
                st = os.fstat(arg)
                listed[(st.st_dev, st.st_ino)] += 1
            else:
                typed.append(arg.name)
            return real(arg)
        return call

    for name in ("scandir", "listdir"):
        monkeypatch.setattr(view_dirs.os, name, counting(getattr(os, name), listed))
    for name in ("_typed", "_kind"):
        monkeypatch.setattr(view_dirs, name, counting(getattr(view_dirs, name), typed))
    changes = own_changes(top, TreeView([upper, lower]))
    monkeypatch.undo()
    assert {(c.path, c.kind) for c in changes} == {
        ("/big", MODIFY), ("/big/f001", MODIFY), ("/big/f007", ADD), ("/big/new", ADD), ("/big/gone", DELETE),
        ("/big/sub", MODIFY), ("/big/sub/keep", ADD), ("/big/sub/x", MODIFY)}
    for rel in ("", "big", "big/sub"):
        st = os.stat(os.path.join(top, rel))
        assert listed[(st.st_dev, st.st_ino)] == 1, rel
    assert len(typed) < 20, typed  # the layer's entries and the parent's of the same names, not its 300
