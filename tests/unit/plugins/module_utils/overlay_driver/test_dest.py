"""overlay_diff's dest: a random O_EXCL temp beside it, renamed over it; symlinks replaced, never
followed; the home compared resolved; directories refused; check mode writes nothing."""

import contextlib
import fcntl
import io
import os
import signal
import stat
import subprocess
import sys

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import dest as dest_module
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

from layertools import TarBuilder, snapshot

BASE = TarBuilder().dir("etc").file("etc/hostname", "base\n").bytes()
CHILD = TarBuilder().file("etc/hostname", "child\n").bytes()


@pytest.fixture
def tree(home):
    store = LayerStore(home)
    with store.locked():
        store.apply_diff("base", "", lambda: contextlib.closing(io.BytesIO(BASE)))
        store.apply_diff("child", "base", lambda: contextlib.closing(io.BytesIO(CHILD)))
        yield store
    store.close()


@pytest.fixture
def guarded(canary):
    before = snapshot(canary)
    yield canary
    assert snapshot(canary) == before


def planted_symlink(target, path):
    os.symlink(target, path)
    os.chown(path, 65534, 65534, follow_symlinks=False)


@pytest.mark.parametrize("check_mode", [False, True])
def test_a_planted_temp_name_is_never_written_through(tree, scratch, guarded, check_mode):
    out = os.path.join(scratch, "out")
    os.mkdir(out)
    os.chmod(out, 0o1777)
    dest = os.path.join(out, "child.tar")
    planted_symlink(os.path.join(guarded, "etc", "passwd"), dest + ".strata-tmp")
    tree.export_diff("child", dest, check_mode=check_mode)
    assert os.path.islink(dest + ".strata-tmp")
    assert sorted(os.listdir(out)) == (["child.tar.strata-tmp"] if check_mode else
                                       ["child.tar", "child.tar.strata-tmp"])


def test_a_symlink_at_dest_is_replaced_not_followed(tree, scratch, guarded):
    dest = os.path.join(scratch, "child.tar")
    planted_symlink(os.path.join(guarded, "etc", "passwd"), dest)
    outcome = tree.export_diff("child", dest)
    assert outcome.changed and not os.path.islink(dest) and os.path.isfile(dest)
    assert outcome.dest == dest


def test_the_home_is_compared_resolved(tree, scratch):
    link = os.path.join(scratch, "home-link")
    os.symlink(tree.home, link)
    store = LayerStore(link)
    record = os.path.join(tree.home, ".strata", "layers", "child.json")
    with open(record, "rb") as f:
        before = f.read()
    # (the tree fixture holds the home's lock; export_diff itself takes none)
    with pytest.raises(OverlayError, match="inside the layer home"):
        store.export_diff("child", record)
    with pytest.raises(OverlayError, match="inside the layer home"):
        store.export_diff("child", os.path.join(link, "x.tar"))
    store.close()
    with open(record, "rb") as f:
        assert f.read() == before


@pytest.mark.parametrize("where, message", [
    ("scratch", "dest is a directory"),
    ("home", "inside the layer home"),
    ("/", "must name a file"),
    ("scratch/", "must name a file"),
])
def test_directories_the_home_and_slash_are_clear_errors(tree, scratch, where, message):
    outdir = os.path.join(scratch, "outdir")
    os.mkdir(outdir)
    dest = {"scratch": outdir, "home": tree.home, "/": "/", "scratch/": outdir + "/"}[where]
    with pytest.raises(OverlayError, match=message):
        tree.export_diff("child", dest)


def test_check_mode_writes_nothing_and_tells_the_real_digest(tree, scratch):
    dest = os.path.join(scratch, "child.tar")
    before = sorted(os.listdir(scratch))
    check = tree.export_diff("child", dest, check_mode=True)
    assert check.changed and sorted(os.listdir(scratch)) == before
    real = tree.export_diff("child", dest)
    assert real.changed and real.diff.diff_id == check.diff.diff_id
    again = tree.export_diff("child", dest, check_mode=True)
    assert not again.changed and again.diff.diff_id == check.diff.diff_id


def test_a_failed_export_leaves_no_temp_file(tree, scratch, monkeypatch):
    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt()
    monkeypatch.setattr(tree.driver, "diff", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tree.export_diff("child", os.path.join(scratch, "child.tar"))
    assert [n for n in os.listdir(scratch) if n.startswith(".strata-diff-") or n.startswith("child")] == []


@pytest.mark.parametrize("check_mode", [False, True])
@pytest.mark.parametrize("sticky", [True, False])
def test_a_planted_symlink_in_dests_directory_path_is_refused(tree, scratch, guarded, check_mode, sticky):
    """A directory of dest's path that another user made a symlink (in /tmp, or in a directory they
    own) must not send root's write into a directory of root's choosing: it is refused, not followed."""
    out = os.path.join(scratch, "out")
    os.mkdir(out)
    if sticky:
        os.chmod(out, 0o1777)
    else:
        os.chown(out, 65534, 65534)
    planted_symlink(os.path.join(guarded, "etc"), os.path.join(out, "exports"))
    with pytest.raises(OverlayError, match="symlink owned by uid 65534"):
        tree.export_diff("child", os.path.join(out, "exports", "child.tar"), check_mode=check_mode)
    assert sorted(os.listdir(out)) == ["exports"]


def test_a_root_symlink_in_a_root_directory_is_followed(tree, scratch):
    real = os.path.join(scratch, "real")
    os.mkdir(real)
    os.symlink("real", os.path.join(scratch, "exports"))
    outcome = tree.export_diff("child", os.path.join(scratch, "exports", "child.tar"))
    assert outcome.changed and outcome.dest == os.path.join(real, "child.tar")
    assert os.path.isfile(os.path.join(real, "child.tar"))


@pytest.mark.parametrize("check_mode", [False, True])
def test_a_planted_fifo_at_dest_does_not_hang_the_run(tree, scratch, check_mode):
    """Comparing dest with the new tarball opened a FIFO another user planted there for reading,
    which blocks until a writer comes: the run hung holding the home's lock."""
    out = os.path.join(scratch, "out")
    os.mkdir(out)
    os.chmod(out, 0o1777)
    dest = os.path.join(out, "child.tar")
    os.mkfifo(dest)
    os.chown(dest, 65534, 65534)

    def hung(*_args):
        raise AssertionError("export_diff blocked on the FIFO")
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    try:
        changed = tree.export_diff("child", dest, check_mode=check_mode).changed
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert changed
    assert stat.S_ISFIFO(os.lstat(dest).st_mode) if check_mode else stat.S_ISREG(os.lstat(dest).st_mode)


class _RaceBeforeRename:
    """dest.py's os, with an attacker acting just before the temp file is renamed over dest: the
    moment a user who can write in dest's directory (or above it) has to swap something."""

    def __init__(self, attack):
        self._attack = attack

    def __getattr__(self, name):
        return getattr(os, name)

    def rename(self, src, dst, **kw):
        if isinstance(src, str) and src.startswith(dest_module.TEMP_PREFIX):
            self._attack(src, kw.get("src_dir_fd"))
        return os.rename(src, dst, **kw)


@pytest.fixture
def users_dir(scratch):
    """A directory another user owns, in one they own too."""
    top = os.path.join(scratch, "user")
    out = os.path.join(top, "out")
    os.makedirs(out)
    os.chown(top, 65534, 65534)
    os.chown(out, 65534, 65534)
    return out


def test_a_temp_name_swapped_before_the_rename_fails_instead_of_reporting_success(
        tree, users_dir, guarded, monkeypatch):
    def swap(tmp, dir_fd):
        os.rename(tmp, "stolen", src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        planted_symlink(os.path.join(guarded, "etc", "passwd"), os.path.join(users_dir, tmp))
    monkeypatch.setattr(dest_module, "os", _RaceBeforeRename(swap))
    with pytest.raises(OverlayError, match="dest was replaced while the diff was renamed into place"):
        tree.export_diff("child", os.path.join(users_dir, "child.tar"))


def test_a_directory_swapped_for_a_symlink_before_the_rename_fails(tree, users_dir, guarded, monkeypatch):
    def move_directory(_tmp, _dir_fd):
        os.rename(users_dir, users_dir + ".old")
        planted_symlink(os.path.join(guarded, "etc"), users_dir)
    monkeypatch.setattr(dest_module, "os", _RaceBeforeRename(move_directory))
    with pytest.raises(OverlayError, match="symlink owned by uid 65534|moved or replaced"):
        tree.export_diff("child", os.path.join(users_dir, "child.tar"))


def test_a_dest_that_became_a_directory_is_a_clear_error(tree, scratch, monkeypatch):
    dest = os.path.join(scratch, "child.tar")

    def make_directory(_tmp, _dir_fd):
        os.makedirs(os.path.join(dest, "inside"))
    monkeypatch.setattr(dest_module, "os", _RaceBeforeRename(make_directory))
    with pytest.raises(OverlayError, match="dest became a directory"):
        tree.export_diff("child", dest)
    assert [n for n in os.listdir(scratch) if n.startswith(dest_module.TEMP_PREFIX)] == []


def test_an_export_killed_while_writing_leaves_no_temp_file(home, scratch):
    store = LayerStore(home)
    with store.locked():
        store.apply_diff("base", "", lambda: contextlib.closing(io.BytesIO(BASE)))
        store.apply_diff("child", "base", lambda: contextlib.closing(io.BytesIO(CHILD)))
    store.close()
    code = ("import sys; sys.path[:0] = %r\n"
            "from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore\n"
            "s = LayerStore(%r)\n"
            "with s.locked():\n"
            "    s.export_diff('child', %r)\n") % ([p for p in sys.path if p], home, os.path.join(scratch, "child.tar"))
    env = dict(os.environ, STRATA_OVERLAY_FAULT="diff.written")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert [n for n in os.listdir(scratch) if n.startswith(dest_module.TEMP_PREFIX) or n == "child.tar"] == []


def test_a_root_symlink_in_a_directory_others_can_write_through_an_acl_is_refused(tree, scratch, guarded):
    """Root made the symlink, but an ACL entry lets another user replace it: it is not followed."""
    shared = os.path.join(scratch, "shared")
    os.mkdir(shared, 0o755)
    subprocess.run(["setfacl", "-m", "u:65534:rwx", shared], check=True)
    os.symlink(os.path.join(guarded, "etc"), os.path.join(shared, "exports"))
    with pytest.raises(OverlayError, match="writable by uid 65534 through an ACL entry"):
        tree.export_diff("child", os.path.join(shared, "exports", "child.tar"))
    assert sorted(os.listdir(shared)) == ["exports"]


@pytest.mark.parametrize("check_mode", [False, True])
def test_temp_files_of_killed_runs_are_removed_by_the_next_run_and_nothing_else(tree, scratch, check_mode):
    """A killed run's temp file (root's, regular, locked by nobody) goes; a live run's (locked), another
    user's file and a symlink of that name stay; check mode removes nothing."""
    def made(name, uid=0):
        path = os.path.join(scratch, dest_module.TEMP_PREFIX + name)
        with open(path, "w") as f:
            f.write("partial tarball\n")
        os.chown(path, uid, uid)
        return path

    killed = made("0badc0ffee00")
    live = made("11ve11ve11ve")
    theirs = made("7he1r5000000", uid=65534)
    link = os.path.join(scratch, dest_module.TEMP_PREFIX + "5y3b011c0000")
    os.symlink(killed, link)
    with open(live) as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        tree.export_diff("child", os.path.join(scratch, "child.tar"), check_mode=check_mode)
    left = sorted(n for n in os.listdir(scratch) if n.startswith(dest_module.TEMP_PREFIX))
    expected = [live, theirs, link] + ([killed] if check_mode else [])
    assert left == sorted(os.path.basename(p) for p in expected)
