"""A layer's directories and entries read by fd (view_dirs): what a swap between two reads can and cannot do."""

import gc
import os

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import view_dirs
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.changes import changes_dirs
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError


@pytest.fixture
def tree(scratch):
    """root/d/f (the layer's) and secret/f (root-only, outside)."""
    root, secret = os.path.join(scratch, "root"), os.path.join(scratch, "secret")
    os.makedirs(os.path.join(root, "d"))
    os.makedirs(secret, 0o700)
    for where, text in ((os.path.join(root, "d", "f"), b"own\n"), (os.path.join(secret, "f"), b"secret\n")):
        with open(where, "wb") as f:
            f.write(text)
    base = view_dirs.Dir.open_path(root)
    try:
        yield base, root, secret
    finally:
        base.close()


@pytest.mark.parametrize("replace, refusal", [
    pytest.param(lambda path, secret: os.symlink(secret, path), "refusing to read it", id="symlink"),
    pytest.param(lambda path, _secret: os.mkdir(path), "moved or replaced while it was read", id="directory"),
])
def test_a_closed_directory_swapped_is_refused_when_opened_again(tree, replace, refusal):
    """Once closed, the directory is opened again by name: what stands there now must be the one read before."""
    base, root, secret = tree
    d = base.child_dir("d")
    base.close_below()
    os.rename(os.path.join(root, "d"), os.path.join(root, "away"))
    replace(os.path.join(root, "d"), secret)
    with pytest.raises(OverlayError, match=refusal):
        d.scan()


def test_an_open_directory_moved_is_still_read_where_it_is(tree):
    """The fd follows the directory: a rename of the layer's own directory reads the layer's own files."""
    base, root, secret = tree
    d = base.child_dir("d")
    os.rename(os.path.join(root, "d"), os.path.join(root, "away"))
    os.symlink(secret, os.path.join(root, "d"))
    entry = d.scan()["f"]
    fd = entry.open(os.O_RDONLY)
    try:
        assert os.read(fd, 100) == b"own\n"
    finally:
        os.close(fd)


def test_a_symlinks_xattrs_are_its_own(tree):
    """Read through /proc/self/fd of an O_PATH fd: the link itself, never its target."""
    base, root, _secret = tree
    os.symlink("d/f", os.path.join(root, "link"))
    os.setxattr(os.path.join(root, "d", "f"), "trusted.target", b"t")
    os.setxattr(os.path.join(root, "link"), "trusted.link", b"l", follow_symlinks=False)
    entries = base.scan()
    assert entries["link"].is_symlink()
    assert entries["link"].xattrs() == {"trusted.link": b"l"}
    assert entries["link"].getxattr("trusted.target") is None
    assert entries["d"].getxattr("trusted.target") is None


def test_a_deep_walk_holds_a_bounded_number_of_descriptors(scratch, monkeypatch):
    """Only OPEN_DIRS directories below the roots stay open; the walk opens the others again as it goes back up."""
    monkeypatch.setattr(view_dirs, "OPEN_DIRS", 8)
    path = os.path.join(scratch, "deep")
    os.makedirs(os.path.join(path, *["n"] * 40))
    # what earlier tests left for the collector to close is closed now, and nothing of theirs meanwhile
    gc.collect()
    gc.disable()
    try:
        open_before = set(os.listdir("/proc/self/fd"))
        before = len(open_before)
        peak = []
        real_child = view_dirs.Dir.child

        def counting_child(self, name, ino=None):
            found = real_child(self, name, ino)
            peak.append(len(os.listdir("/proc/self/fd")))
            return found

        monkeypatch.setattr(view_dirs.Dir, "child", counting_child)
        changes = changes_dirs(path)
        assert len(changes) == 40
        assert max(peak) - before <= 8 + 2  # the open directories, the root and listdir's own
        # changes_dirs took a path: nothing it opened is left open (whatever another test's thread closes)
        assert set(os.listdir("/proc/self/fd")) <= open_before
    finally:
        gc.enable()


@pytest.fixture(params=[0, 600], ids=["few-held", "600-held"])
def low_fd_limit(request):
    """The soft RLIMIT_NOFILE set to what the process holds now plus 40 (room for a few dozen more, as some
    service managers and containers leave), with 0 or 600 more descriptors held meanwhile (a high limit is no
    sign of room); put back afterwards."""
    import resource  # pylint: disable=import-outside-toplevel

    saved = resource.getrlimit(resource.RLIMIT_NOFILE)
    held = [os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC) for _count in range(request.param)]
    gc.collect()
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 40, saved[1]))
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, saved)
        for fd in held:
            os.close(fd)


def test_a_walk_of_many_directories_stays_under_a_low_open_file_limit(scratch, low_fd_limit):
    """A tree of 100 directories (each with a file) is walked with room for a few dozen more descriptors: the
    directories kept open are bounded by that room too, not only by OPEN_DIRS (64, which it would exceed)."""
    path = os.path.join(scratch, "wide")
    for i in range(100):
        os.makedirs(os.path.join(path, "d%03d" % i))
        with open(os.path.join(path, "d%03d" % i, "f"), "w") as f:
            f.write("x")
    assert len(changes_dirs(path)) == 200
