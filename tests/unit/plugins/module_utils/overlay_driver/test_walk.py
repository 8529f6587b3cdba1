"""The path walks by directory fd: PathWalk from / with the caller's policy (the home's and dest's own
rules are in test_home_safety.py and test_dest.py), and open_in_root clamped to a root with openat2
and with the fallback walk alike."""

import errno
import os

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import syscalls, walk


class Refused(Exception):
    pass


class Recording(walk.PathWalk):
    """Follows every symlink, records what the walk asks, refuses with Refused(hook, where)."""

    def __init__(self, path, make=False):
        walk.PathWalk.__init__(self, path)
        self.make = make
        self.entered_dirs = []

    def entered(self, fd, where, last):
        self.entered_dirs.append((where, last))

    def missing(self, dir_fd, name, last):
        if self.make:
            os.mkdir(name, dir_fd=dir_fd)
        return self.make

    def check_link(self, dir_fd, st, where):
        if st.st_uid != 0:
            raise Refused("check_link", where)

    def too_many_links(self):
        raise Refused("too_many_links", self.path)

    def not_a_directory(self, where):
        raise Refused("not_a_directory", where)

    def cannot_open(self, where, error):
        raise Refused("cannot_open", where)


def _opened(path, **kw):
    walker = Recording(path, **kw)
    fd, resolved = walker.open()
    if fd is not None:
        os.close(fd)
    return walker, resolved


def test_walk_resolves_dots_and_symlinks(scratch):
    os.makedirs(os.path.join(scratch, "a/b/c"))
    os.symlink("b", os.path.join(scratch, "a/rel"))
    os.symlink(os.path.join(scratch, "a/b"), os.path.join(scratch, "abs"))
    for given in ("a/b/c", "a/./b/../b/c", "a/rel/c", "abs/c", "a/rel/../b/c"):
        walker, resolved = _opened(os.path.join(scratch, given))
        assert resolved == os.path.join(scratch, "a/b/c"), given
        assert walker.entered_dirs[0] == ("/", False)
        assert walker.entered_dirs[-1] == (os.path.join(scratch, "a/b/c"), True)
        assert [last for _where, last in walker.entered_dirs].count(True) == 1


def test_missing_ends_the_walk_or_is_made(scratch):
    walker, resolved = _opened(os.path.join(scratch, "x/y/z"))
    assert resolved == os.path.join(scratch, "x/y/z")
    assert not os.path.exists(os.path.join(scratch, "x"))
    assert walker.entered_dirs[-1] == (scratch, False)
    walker, resolved = _opened(os.path.join(scratch, "x/y/z"), make=True)
    assert resolved == os.path.join(scratch, "x/y/z") and os.path.isdir(resolved)


def test_refusals_come_from_the_policy(scratch):
    with open(os.path.join(scratch, "file"), "w"):
        pass
    os.symlink("loop", os.path.join(scratch, "loop"))
    planted = os.path.join(scratch, "planted")
    os.symlink("/", planted)
    os.chown(planted, 65534, 65534, follow_symlinks=False)
    cases = [("file/x", "not_a_directory", os.path.join(scratch, "file")),
             ("loop/x", "too_many_links", os.path.join(scratch, "loop/x")),
             ("planted/etc", "check_link", planted)]
    for given, hook, where in cases:
        with pytest.raises(Refused) as raised:
            _opened(os.path.join(scratch, given))
        assert raised.value.args == (hook, where)


@pytest.fixture(params=["openat2", "walk"])
def resolver(request, monkeypatch):
    if request.param == "openat2" and not syscalls.openat2_available():
        pytest.skip("this kernel has no openat2")
    monkeypatch.setattr(syscalls, "_openat2_works", request.param == "openat2")
    return request.param


@pytest.fixture
def root(scratch):
    path = os.path.join(scratch, "root")
    os.makedirs(os.path.join(path, "etc"))
    with open(os.path.join(path, "etc/passwd"), "w") as f:
        f.write("inside\n")
    os.symlink("/etc", os.path.join(path, "abs"))
    os.symlink("../../../etc", os.path.join(path, "up"))
    os.symlink("self", os.path.join(path, "self"))
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    yield fd
    os.close(fd)


@pytest.mark.parametrize("name", ["etc/passwd", "abs/passwd", "up/passwd", "/../etc/passwd", "../../etc/passwd"])
def test_open_in_root_never_leaves_the_root(root, resolver, name):
    fd = walk.open_in_root(root, name, os.O_RDONLY)
    with os.fdopen(fd) as f:
        assert f.read() == "inside\n"


def test_open_in_root_symlink_loop_and_nofollow(root, resolver):
    with pytest.raises(OSError) as raised:
        walk.open_in_root(root, "self/x", os.O_RDONLY)
    assert raised.value.errno == errno.ELOOP
    fd = walk.open_in_root(root, "abs", syscalls.O_PATH | os.O_NOFOLLOW)
    try:
        assert os.readlink("", dir_fd=fd) == "/etc"
    finally:
        os.close(fd)


def test_open_in_root_creates_the_last_name(root, resolver):
    fd = walk.open_in_root(root, "etc/new", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    assert os.stat("etc/new", dir_fd=root).st_mode & 0o777 == 0o600


def test_open_no_symlinks_refuses_a_symlinked_directory(scratch, resolver):
    os.makedirs(os.path.join(scratch, "real"))
    with open(os.path.join(scratch, "real/f"), "w") as f:
        f.write("x")
    os.symlink("real", os.path.join(scratch, "link"))
    os.close(walk.open_no_symlinks(os.path.join(scratch, "real/f"), os.O_RDONLY))
    guarded = "link/f" if resolver == "openat2" else "link"  # without openat2 only the last name is guarded
    with pytest.raises(OSError) as raised:
        walk.open_no_symlinks(os.path.join(scratch, guarded), os.O_RDONLY)
    assert raised.value.errno == errno.ELOOP
