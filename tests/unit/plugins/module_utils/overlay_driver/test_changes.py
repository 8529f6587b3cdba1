"""The naive change detection, on plain directories."""

import os

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.changes import (
    ADD, DELETE, MODIFY, changes_dirs, changes_size)

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
