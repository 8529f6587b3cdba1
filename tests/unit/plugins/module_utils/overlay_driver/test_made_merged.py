"""The merged/ a mount made: removed by the unmount, kept when it was there or written into."""

import os

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.drivers import open_driver
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError


@pytest.fixture
def driver(home):
    d = open_driver(home)
    d.create("base", "")
    d.create("app", "base")
    if os.path.isdir(os.path.join(home, "app", "merged")):
        os.rmdir(os.path.join(home, "app", "merged"))  # as Docker 20.10 leaves a layer it put
    yield d
    d.close()


def test_made_then_dropped(driver):
    paths = driver.layout.layer("app")
    assert driver.made_merged.make("app", paths) is True
    assert os.path.isdir(paths.merged)
    assert driver.made_merged.make("app", paths) is False  # there now: not made twice
    driver.made_merged.drop("app", paths)
    assert not os.path.lexists(paths.merged)
    assert driver.made_merged.forget("app") is False  # the marker went with it


def test_one_that_was_there_is_kept(driver):
    paths = driver.layout.layer("base")
    os.mkdir(paths.merged)
    assert driver.made_merged.make("base", paths) is False
    driver.made_merged.drop("base", paths)
    assert os.path.isdir(paths.merged)


def test_written_into_is_kept_and_forgotten(driver):
    paths = driver.layout.layer("app")
    driver.made_merged.make("app", paths)
    open(os.path.join(paths.merged, "someones"), "w").close()
    driver.made_merged.drop("app", paths)
    assert os.path.isfile(os.path.join(paths.merged, "someones"))
    assert driver.made_merged.forget("app") is False


def test_a_symlink_at_merged_is_refused(driver, scratch):
    paths = driver.layout.layer("app")
    os.symlink(scratch, paths.merged)
    with pytest.raises(OverlayError, match="merged/ is not a directory"):
        driver.made_merged.make("app", paths)


def test_markers_of_removed_layers_are_pruned(driver):
    driver.made_merged.make("app", driver.layout.layer("app"))
    driver.made_merged.drop("app", driver.layout.layer("app"))
    driver.made_merged.make("app", driver.layout.layer("app"))
    driver.remove("app")  # forgets its marker itself
    assert driver.made_merged.prune() == []
    driver.made_merged.make("base", driver.layout.layer("base"))
    os.rename(os.path.join(driver.home, "base"), os.path.join(driver.home, "..", "gone"))
    assert [os.path.basename(p) for p in driver.made_merged.prune()] == ["base"]


REMAPPED = 100000
MAPS = [{"container_id": 0, "host_id": REMAPPED, "size": 65536}]


def test_a_directory_the_remapped_root_put_among_the_marks_fails_no_writer(home):
    """In a .strata an earlier version gave the remapped root, that user can put a directory among the marks (its
    0700 directories are taken back with .strata, and with made-merged/ by every writer). Every writer's
    cleanup prunes the marks of layers that are gone: a directory there made each one fail (unlink: EISDIR). Only
    the marks root makes, regular files, are pruned; anything else stays."""
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore
    from layertools import run_as

    store = LayerStore(home, MAPS, MAPS)
    try:
        store.ensure_present("base")
        store.ensure_mounted("base", holder="h")
        store.ensure_unmounted("base", holder="h")
    finally:
        store.close()
    marks = os.path.join(home, ".strata", "made-merged")
    if not os.path.isdir(marks):
        os.mkdir(marks, 0o700)
    for where, _dirs, _files in os.walk(os.path.join(home, ".strata")):
        os.chown(where, REMAPPED, REMAPPED)  # as earlier versions left them
    run_as(REMAPPED, REMAPPED, lambda: os.mkdir(os.path.join(marks, "planted"), 0o700))
    store = LayerStore(home, MAPS, MAPS)
    try:
        with store.locked():
            store.ensure_present("other")
    finally:
        store.close()
    assert os.path.isdir(os.path.join(marks, "planted"))


def test_a_mark_the_remapped_root_put_there_marks_nothing(home):
    """A mark says get() made the layer's merged/, which put() then removes. One the remapped root put in a
    made-merged/ an earlier version gave it is not root's: every writer takes the directory back and leaves the
    mark where it is, marking nothing: the merged/ that was there before the mount stays."""
    from layertools import run_as

    driver = open_driver(home, uid_maps=MAPS, gid_maps=MAPS)
    try:
        driver.create("base", "")
        driver.create("app", "base")
        paths = driver.layout.layer("app")
        if not os.path.isdir(paths.merged):
            os.mkdir(paths.merged)
        marks = os.path.join(home, ".strata", "made-merged")
        if not os.path.isdir(marks):
            os.mkdir(marks, 0o700)
    finally:
        driver.close()
    for where, _dirs, _files in os.walk(os.path.join(home, ".strata")):
        os.chown(where, REMAPPED, REMAPPED)  # as earlier versions left them
    run_as(REMAPPED, REMAPPED, lambda: open(os.path.join(marks, "app"), "w").close())
    driver = open_driver(home, uid_maps=MAPS, gid_maps=MAPS)
    try:
        driver.get("app")
        driver.put("app")
        assert os.path.isdir(paths.merged), "the merged/ that was there before the mount was removed"
    finally:
        driver.close()


def _fail_after(seconds):
    """A test that would hang on a blocking open fails instead."""
    import signal

    def late(*_args):
        raise TimeoutError("still blocked after %d s" % seconds)
    signal.signal(signal.SIGALRM, late)
    signal.alarm(seconds)


def _base_and_its_marks(home):
    """A home with the layer base, and the path of its made-merged/ (made if the run did not)."""
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

    store = LayerStore(home)
    try:
        with store.locked():
            store.ensure_present("base")
    finally:
        store.close()
    marks = os.path.join(home, ".strata", "made-merged")
    if not os.path.isdir(marks):
        os.mkdir(marks, 0o700)
    return marks


def test_a_fifo_left_under_a_layers_mark_name_neither_blocks_the_mount_nor_marks_anything(home):
    """What the remapped root left in made-merged/ while it was its own: a FIFO under the name of the layer
    whose merged/ a mount makes. Opened for writing without O_EXCL, it blocked the mount for ever while the
    home's lock was held. The mark is made anew, as root's regular file."""
    import signal
    import stat as st_mod

    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

    marks = _base_and_its_marks(home)
    store = LayerStore(home)
    try:
        with store.locked():
            store.ensure_present("app", "base")  # an overlay in both layouts (the seed's base is a plain root/)
    finally:
        store.close()
    os.mkfifo(os.path.join(marks, "app"))
    merged = os.path.join(home, "app", "merged")
    if os.path.isdir(merged):
        os.rmdir(merged)  # as Docker 20.10 leaves a layer: get() makes it, and marks that it did
    store = LayerStore(home)
    try:
        _fail_after(10)
        try:
            with store.locked():
                assert store.ensure_mounted("app", "web").after["mounted"]
                mark = os.lstat(os.path.join(marks, "app"))
                assert st_mod.S_ISREG(mark.st_mode) and mark.st_uid == 0
                store.ensure_unmounted("app", "web")
        finally:
            signal.alarm(0)
    finally:
        store.close()
    assert not os.path.exists(merged)  # the merged/ the mount made went with the unmount, and its mark
    assert not os.path.exists(os.path.join(marks, "app"))


def test_a_directory_left_under_a_layers_mark_name_does_not_fail_its_removal(home):
    """A directory in place of a layer's mark failed the removal with a bare EISDIR after the layer itself was
    gone. An empty one is removed with the layer."""
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

    marks = _base_and_its_marks(home)
    os.mkdir(os.path.join(marks, "base"), 0o700)
    store = LayerStore(home)
    try:
        with store.locked():
            store.ensure_absent("base")
    finally:
        store.close()
    assert not os.path.exists(os.path.join(home, "base"))
    assert not os.path.exists(os.path.join(marks, "base"))
