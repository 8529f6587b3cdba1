"""Exports of applied layers replay the tarball applied (tar_split.py), and fall back to the change walk
whenever the layer or its record does not match."""

import fcntl
import io
import os
import resource
import signal
import tarfile
import tempfile
import threading
import time

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import tar_split
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.dest import NullWriter
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.stage import store_apply
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

from layertools import TarBuilder, content_dir, deep_tree, in_child, layer_tree, opener, sha256

BIG = bytes(range(256)) * (5 * 4096 + 7)  # past the exporter's 1 MiB blocks and the reader's chunks


def _base():
    b = TarBuilder()
    b.dir("etc").file("etc/hostname", "base\n").file("etc/remove-me", "x").dir("usr").dir("usr/lib")
    b.file("usr/lib/big.so", BIG, mode=0o755).file("usr/lib/" + "n" * 180, "a long name")
    b.symlink("lib", "usr/lib").hardlink("usr/lib/big-link.so", "usr/lib/big.so", mode=0o755)
    b.file("etc/caps", "c", xattrs={"user.test": b"\xff\x00v"}).dir("var").dir("var/cache").file("var/cache/a", "a")
    return b.bytes()


def _child():
    b = TarBuilder()
    b.file("etc/hostname", "child\n", mtime=1700000123).whiteout("etc/remove-me").opaque("var/cache")
    b.file("var/cache/b", "b" * 700).file("usr/lib/new.so", BIG[:3000])
    return b.bytes()


BASE = _base()
CHILD = _child()
GNU = TarBuilder(tarfile.GNU_FORMAT).dir("opt").file("opt/" + "g" * 150, "gnu long name").bytes()


@pytest.fixture
def applied(store):
    store.apply_diff("base", "", opener(BASE))
    store.apply_diff("child", "base", opener(CHILD))
    return store


def export(store, layer_id):
    """The export as the module makes it, into a file (a replay writes through the file's fd)."""
    with tempfile.TemporaryFile() as out:
        result = store.diff(layer_id, store.parent_of(layer_id), out)
        out.seek(0)
        return out.read(), result


def walked(store, layer_id):
    """The export from the change walk alone, as every layer without a usable record gets it."""
    out = io.BytesIO()
    result = store.driver.diff(layer_id, store.parent_of(layer_id), out)
    return out.getvalue(), result


def record_path(store, layer_id):
    return os.path.join(store.home, ".strata", "layers", layer_id + tar_split.SUFFIX)


@pytest.mark.parametrize("layer_id, data", [("base", BASE), ("child", CHILD)])
def test_an_applied_layer_exports_the_tarball_applied(applied, layer_id, data):
    tarball, result = export(applied, layer_id)
    assert tarball == data
    assert result.diff_id == sha256(data) == applied.record(layer_id).diff_id
    assert result.tar_size == len(data)
    # what the export reports is the change walk's, as before
    _walk_tarball, walk_result = walked(applied, layer_id)
    assert sorted(map(repr, result.changes)) == sorted(map(repr, walk_result.changes))
    assert result.size == walk_result.size


def test_a_gnu_tarball_and_its_padding_are_given_back_too(store):
    padded = GNU + b"\x00" * 20480  # more NULs after the end, as some writers leave
    store.apply_diff("gnu", "", opener(padded))
    assert export(store, "gnu")[0] == padded


def test_an_image_layer_exports_the_blob_it_was_staged_from(store):
    store_apply(store, "img0", "", opener(BASE), sha256(BASE))
    store_apply(store, "img1", "img0", opener(CHILD), sha256(CHILD))
    assert export(store, "img1")[0] == CHILD
    assert export(store, "img0")[0] == BASE


def test_the_module_path_writes_it_and_a_check_run_reports_its_digest(applied, scratch):
    dest = os.path.join(scratch, "child.tar")
    outcome = applied.export_diff("child", dest)
    with open(dest, "rb") as f:
        assert f.read() == CHILD
    assert outcome.diff.diff_id == sha256(CHILD)
    checked = applied.export_diff("child", dest, check_mode=True)
    assert checked.changed is False and checked.diff.diff_id == sha256(CHILD)
    assert applied.diff("child", "base", NullWriter()).diff_id == sha256(CHILD)


def test_a_file_changed_since_it_was_applied_falls_back_to_the_walk(applied, scratch):
    path = os.path.join(content_dir(applied.home, "child"), "var", "cache", "b")
    with open(path, "ab") as f:
        f.write(b"more")
    dest = os.path.join(scratch, "child.tar")
    outcome = applied.export_diff("child", dest)  # written into dest's temp file, then taken back
    with open(dest, "rb") as f:
        written = f.read()
    assert written == walked(applied, "child")[0] != CHILD
    assert outcome.diff.diff_id == sha256(written)
    names = tarfile.open(fileobj=io.BytesIO(written)).getnames()
    assert len(names) == len(set(names))  # nothing of the replay left before the walk's archive


def test_contents_rewritten_with_the_same_size_are_caught_by_the_mtime(applied):
    path = os.path.join(content_dir(applied.home, "child"), "etc", "hostname")
    with open(path, "r+b") as f:
        f.write(b"CHILD\n")
    tarball, result = export(applied, "child")
    assert tarball == walked(applied, "child")[0] and b"CHILD\n" in tarball
    assert result.diff_id == sha256(tarball) != sha256(CHILD)


def test_a_symlink_planted_on_a_recorded_path_is_never_followed(applied, scratch):
    """What runs as the layer's owner can swap a directory of the layer for a symlink to a file of the same
    size and mtime elsewhere: the replay must not read through it (it opens each directory O_NOFOLLOW)."""
    outside = os.path.join(scratch, "outside")
    os.makedirs(outside)
    secret = os.path.join(outside, "hostname")
    with open(secret, "wb") as f:
        f.write(b"SECRE\n")
    os.utime(secret, ns=(1700000123 * 10 ** 9, 1700000123 * 10 ** 9))
    etc = os.path.join(content_dir(applied.home, "child"), "etc")
    os.rename(etc, etc + ".moved")
    os.symlink(outside, etc)
    tarball, result = export(applied, "child")
    assert b"SECRE" not in tarball
    assert result.diff_id == sha256(tarball)


@pytest.mark.parametrize("damage", ["not root's", "writable by others", "another diff", "truncated", "garbage",
                                    "a symlink", "a directory", "a path out of the layer"])
def test_a_record_that_does_not_hold_is_ignored(applied, damage):
    path = record_path(applied, "child")
    with open(path, "rb") as f:
        data = f.read()
    if damage == "not root's":
        os.chown(path, 1000, 1000)
    elif damage == "writable by others":
        os.chmod(path, 0o666)
    elif damage == "another diff":
        os.replace(record_path(applied, "base"), path)
    elif damage in ("truncated", "garbage"):
        with open(path, "wb") as f:
            f.write(data[:len(data) // 2] if damage == "truncated" else data[:100] + os.urandom(200))
    elif damage == "a symlink":
        os.unlink(path)
        os.symlink(record_path(applied, "base"), path)
    elif damage == "a directory":
        os.unlink(path)
        os.mkdir(path)
    else:
        recorder = tar_split.Recorder()
        recorder.take(CHILD[:512])
        recorder.file(("..", "..", "outside"), 5, 0)
        recorder.take(b"xxxxx")
        with open(path, "wb") as f:
            f.write(recorder.finish(applied.record("child").diff_id))
    tarball, result = export(applied, "child")
    assert tarball == walked(applied, "child")[0]
    assert result.diff_id == sha256(tarball)


DEEP = 1800  # levels of one-letter names: a path of 3,601 bytes, within the applier's limit (about 1,900 levels)


def test_a_file_nearly_path_max_deep_is_replayed_with_few_descriptors(store):
    """Each directory of a recorded path is opened by fd, one below the other: a path of 1,800 levels must not
    hold 1,800 fds or recurse 1,800 frames, or a module's replay (1024 fds) errors and leaves the export to the
    change walk. Here the export runs with 256 more than the test's process holds (far fewer than the levels),
    and each file after the deep one is reached again from the layer's own directory or from the directories
    kept."""
    deep = "/".join(["d"] * DEEP)
    builder = TarBuilder().dir("etc").file("etc/first", "first")
    for level in range(1, DEEP + 1):
        builder.dir("/".join(["d"] * level))
    builder.file(deep + "/f", "deepest").file(deep + "/g", "beside it")
    builder.file("/".join(["d"] * (DEEP // 2)) + "/h", "half way up").file("etc/last", "last")
    data = builder.bytes()
    store.apply_diff("deep", "", opener(data))
    assert walked(store, "deep")[0] != data  # only a replay gives the tarball applied

    def export_with_256_fds():
        replayed = []  # what each replay gave (None: the export was left to the walk)
        replayed_diff = tar_split.replayed_diff

        def watched(*args):
            replayed.append(replayed_diff(*args))
            return replayed[-1]

        tar_split.replayed_diff = watched  # in the child only
        held = len(os.listdir("/proc/self/fd"))  # what the test run holds already (pytest's captures and more)
        resource.setrlimit(resource.RLIMIT_NOFILE, (held + 256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        tarball, result = export(store, "deep")
        return tarball == data, result.diff_id, [r is not None for r in replayed]

    same, diff_id, replayed = in_child(export_with_256_fds)
    assert replayed == [True] and same and diff_id == sha256(data)


def test_the_directories_kept_for_the_next_file_stay_bounded(scratch):
    top = deep_tree(os.path.join(scratch, "t"), 100)
    depths = [100, 100, 99, 40, 100, 1, 0, 70]
    for depth in set(depths):
        with open(os.path.join(top, *(["d"] * depth + ["f"])), "wb") as f:
            f.write(b"at %d" % depth)
    own = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    before = len(os.listdir("/proc/self/fd"))
    parents = tar_split._Parents(own)  # pylint: disable=protected-access
    try:
        for depth in depths:
            fd = parents.open_file("/".join(["d"] * depth + ["f"]).encode())
            try:
                assert os.read(fd, 10) == b"at %d" % depth
            finally:
                os.close(fd)
            assert len(os.listdir("/proc/self/fd")) <= before + parents.KEEP
    finally:
        parents.close()
        left = len(os.listdir("/proc/self/fd"))
        os.close(own)
    assert left == before


def test_a_layer_made_before_its_diff_keeps_no_record(store):
    """A layer that existed before the apply may hold files written through a mount: its export stays the walk's."""
    store.apply_diff("base", "", opener(BASE))
    store.ensure_present("app", "base")
    store.apply_diff("app", "base", opener(CHILD))
    assert not os.path.lexists(record_path(store, "app"))
    assert export(store, "app")[0] == walked(store, "app")[0]


def test_against_another_parent_the_walk_is_used(applied):
    with tempfile.TemporaryFile() as out:
        result = applied.diff("child", "", out)  # the whole tree, not the diff applied on base
        out.seek(0)
        tarball = out.read()
    assert tarball != CHILD and result.diff_id == sha256(tarball)


def test_no_process_for_the_replay_leaves_the_export_to_the_walk(applied, monkeypatch):
    def no_fork():
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    tarball, result = export(applied, "child")
    assert tarball == walked(applied, "child")[0] and result.diff_id == sha256(tarball)


def test_an_output_without_a_file_of_its_own_gets_the_walks_export(applied):
    out = io.BytesIO()
    assert applied.diff("child", "base", out).diff_id == sha256(out.getvalue()) != sha256(CHILD)


def test_removal_takes_the_record_and_a_writer_prunes_an_orphan(home):
    with LayerStore(home).locked() as store:
        store.apply_diff("base", "", opener(BASE))
        store.apply_diff("child", "base", opener(CHILD))
        store.ensure_absent("child")
        assert not os.path.lexists(record_path(store, "child"))
        orphan = record_path(store, "gone")
        with open(orphan, "wb") as f:
            f.write(b"x")
    with LayerStore(home).locked() as store:  # the next writer's cleanup
        assert not os.path.lexists(orphan)
        assert os.path.exists(record_path(store, "base"))


def test_the_exported_tarball_applies_to_the_same_tree(applied):
    applied.apply_diff("copy", "base", opener(export(applied, "child")[0]))
    assert layer_tree(applied.driver, "copy") == layer_tree(applied.driver, "child")


def test_a_record_past_its_bound_is_not_kept(store, monkeypatch):
    monkeypatch.setattr(tar_split, "MAX_RECORD", 64)
    store.apply_diff("base", "", opener(BASE))
    assert not os.path.lexists(record_path(store, "base"))
    assert export(store, "base")[0] == walked(store, "base")[0]


def test_a_fifo_or_device_on_a_recorded_path_is_never_opened(store):
    """What runs as the layer's owner can rename a FIFO, or a device node a tarball brought, onto a recorded
    path: root's export must not open it (a device's open has side effects), only see that it is no file."""
    store.apply_diff("base", "", opener(BASE))
    path = os.path.join(content_dir(store.home, "base"), "etc", "hostname")
    os.unlink(path)
    os.mkfifo(path)
    opened = []

    def writer():  # blocks in open() until a reader opens the FIFO
        fd = os.open(path, os.O_WRONLY)
        opened.append(True)
        os.close(fd)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    time.sleep(0.2)
    try:
        tarball, result = export(store, "base")
        assert result.diff_id == sha256(tarball) and tarball != BASE
        thread.join(1)
        assert not opened
    finally:
        if thread.is_alive():
            os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))


@pytest.mark.parametrize("data", [
    TarBuilder().file("a", "aaaa").hardlink("b", "a").file("a", "bbbb").bytes(),
    TarBuilder().file("a", "1111").file("a", "2222").bytes(),
    TarBuilder().file("a", "1111").whiteout("a").file("a", "2222").hardlink("keep", "a").bytes(),
], ids=["hardlink then its target rewritten", "a file given twice", "deleted and given again"])
def test_a_path_written_twice_keeps_no_record(store, data):
    """The layer holds only the last contents, which the first reference would replay too."""
    store.apply_diff("twice", "", opener(data))
    assert not os.path.lexists(record_path(store, "twice"))
    tarball, result = export(store, "twice")
    assert result.diff_id == sha256(tarball)
    store.apply_diff("again", "", opener(tarball))
    assert layer_tree(store.driver, "again") == layer_tree(store.driver, "twice")


def test_times_no_record_can_hold_still_apply(store):
    data = TarBuilder().file("future", "f", mtime=2 ** 34 + 5).file("old", "o", mtime=-100).bytes()
    store.apply_diff("far", "", opener(data))
    assert export(store, "far")[0] == walked(store, "far")[0]


def test_an_empty_file_that_grew_is_caught(store):
    data = TarBuilder().dir("etc").file("etc/empty", b"").file("etc/a", "a").bytes()
    store.apply_diff("e", "", opener(data))
    assert export(store, "e")[0] == data
    with open(os.path.join(content_dir(store.home, "e"), "etc", "empty"), "wb") as f:
        f.write(b"now it holds something")
    assert export(store, "e")[0] == walked(store, "e")[0] != data


@pytest.mark.parametrize("data", [
    TarBuilder().file("q", "CCCC").file("x", "AAAA").hardlink("x", "q").bytes(),
    TarBuilder().dir("usr").dir("usr/lib").symlink("lib", "usr/lib").file("lib/x", "AAAA")
    .file("q", "CCCC").dir("lib").hardlink("lib/x", "q").bytes(),
], ids=["a hardlink over a recorded file", "a write through a symlink a later entry undoes"])
def test_a_replay_that_is_not_the_tarball_applied_is_not_given(store, data):
    """An entry can leave another file of the same size and mtime at a recorded path without writing that path
    twice: the per-file checks pass, the digest does not, and the export is the walk's."""
    store.apply_diff("odd", "", opener(data))
    tarball, result = export(store, "odd")
    assert tarball == walked(store, "odd")[0] != data
    assert result.diff_id == sha256(tarball)
    store.apply_diff("again", "", opener(tarball))
    assert layer_tree(store.driver, "again") == layer_tree(store.driver, "odd")


def test_a_lease_on_a_recorded_file_fails_the_export_at_once(store):
    """The layer's owner may hold a write lease on its file (here root, for brevity): an open that waits for it
    would hold the export lease-break-time (45 s) per file; the replay and the walk both open O_NONBLOCK."""
    store.apply_diff("base", "", opener(BASE))
    path = os.path.join(content_dir(store.home, "base"), "etc", "hostname")
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover
        try:
            signal.signal(signal.SIGIO, signal.SIG_IGN)
            fd = os.open(path, os.O_RDONLY)
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
            os.write(ready_w, b"1")
            time.sleep(60)
        finally:
            os._exit(0)
    try:
        assert os.read(ready_r, 1) == b"1"
        start = time.monotonic()
        with pytest.raises(OverlayError, match="cannot read it for the tarball"):
            export(store, "base")
        assert time.monotonic() - start < 10
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(ready_r)
        os.close(ready_w)
