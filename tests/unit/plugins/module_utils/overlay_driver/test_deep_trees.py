"""Trees the applier accepts stay workable with the descriptors a module gets (1024, an SSH login's limit).

Every case runs in a child process whose RLIMIT_NOFILE is 1024, as an Ansible
module's is: a walk that keeps one fd per level or per subdirectory fails there
with EMFILE.
"""

import errno
import os
import subprocess
import sys
import textwrap

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import walk

from layertools import layer_names, mounted

DEPTH = 1850  # "a/" per level: the applier's path limit allows about 1,900
WIDE = 1100

PRELUDE = """
import contextlib, io, os, resource, sys
sys.path[:0] = %r
resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))
from layertools import TarBuilder
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import syscalls, walk
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

def opener(data):
    return lambda: contextlib.closing(io.BytesIO(data))

def chain(builder, top, depth):
    name = top
    for _level in range(depth):
        name += "/a"
        builder.dir(name)
    return builder
"""


def run_with_1024_fds(code, *args):
    """Run code (after PRELUDE) in a child with RLIMIT_NOFILE 1024; its stdout."""
    paths = [p for p in sys.path if p]
    script = PRELUDE % (paths,) + textwrap.dedent(code)
    done = subprocess.run([sys.executable, "-c", script] + list(args), capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_a_tree_as_deep_as_the_applier_accepts_is_removed(home, layout):
    out = run_with_1024_fds("""
        store = LayerStore(sys.argv[1], layout=sys.argv[2])
        with store.locked():
            store.apply_diff("deep", "", opener(chain(TarBuilder().dir("a"), "a", %d).bytes()))
            print(store.state("deep")["exists"])
            store.ensure_absent("deep", force=True)
            print(store.state("deep")["exists"])
            store.ensure_present("next")  # a later writer's cleanup runs too
            print(store.state("next")["exists"])
    """ % (DEPTH - 1), home, layout)
    assert out.split() == ["True", "False", "True"]
    assert layer_names(home) == ["next"]


def test_an_opaque_directory_with_more_subdirectories_than_descriptors_is_applied(home, layout):
    out = run_with_1024_fds("""
        store = LayerStore(sys.argv[1], layout=sys.argv[2])
        with store.locked():
            base = TarBuilder().dir("o")
            for i in range(%(wide)d):
                base.dir("o/lower%%d" %% i)
            store.apply_diff("base", "", opener(base.bytes()))
            child = TarBuilder().dir("o")
            for i in range(%(wide)d):
                child.dir("o/own%%d" %% i).file("o/own%%d/f" %% i, "x")
            child.opaque("o")  # after the layer's own entries, which it keeps
            store.apply_diff("child", "base", opener(child.bytes()))
    """ % {"wide": WIDE}, home, layout)
    assert out == ""
    with mounted(home, "child") as child:
        names = os.listdir(os.path.join(child, "o"))
    assert sorted(names) == sorted("own%d" % i for i in range(WIDE))
    with mounted(home, "base") as base:
        assert len(os.listdir(os.path.join(base, "o"))) == WIDE


def test_an_opaque_directory_over_a_deep_chain_of_its_own_is_applied(home, layout):
    run_with_1024_fds("""
        store = LayerStore(sys.argv[1], layout=sys.argv[2])
        with store.locked():
            store.apply_diff("base", "", opener(TarBuilder().dir("o").dir("o/lower").bytes()))
            child = chain(TarBuilder().dir("o"), "o", %d).file("o/a/a/kept", "x")
            child.opaque("o")
            store.apply_diff("child", "base", opener(child.bytes()))
    """ % (DEPTH - 2), home, layout)
    with mounted(home, "child") as child:
        assert os.listdir(os.path.join(child, "o")) == ["a"]
        assert sorted(os.listdir(os.path.join(child, "o", "a", "a"))) == ["a", "kept"]


def test_open_in_root_without_openat2_walks_a_path_deeper_than_the_descriptor_limit(scratch):
    top = os.path.join(scratch, "root")
    os.makedirs(top)
    out = run_with_1024_fds("""
        syscalls._openat2_works = False
        root = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
        fd = root
        for _level in range(%(depth)d):
            os.mkdir("a", dir_fd=fd)
            nfd = os.open("a", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            if fd != root:
                os.close(fd)
            fd = nfd
        os.close(fd)
        deep = "/".join(["a"] * %(depth)d)
        made = walk.open_in_root(root, deep + "/f", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(made, b"deep")
        again = walk.open_in_root(root, deep + "/" + "/".join([".."] * %(depth)d) + "/" + deep + "/f", os.O_RDONLY)
        print(os.read(again, 10).decode(), os.fstat(again).st_ino == os.fstat(made).st_ino)
    """ % {"depth": DEPTH}, top)
    assert out.split() == ["deep", "True"]


def test_a_directory_moved_while_its_fd_was_closed_is_an_error_not_a_walk_elsewhere(scratch):
    os.makedirs(os.path.join(scratch, "t/a/b/c/d"))
    os.mkdir(os.path.join(scratch, "elsewhere"))
    base = os.open(os.path.join(scratch, "t"), os.O_RDONLY | os.O_DIRECTORY)
    try:
        with walk.DirStack(base, keep=2) as dirs:
            for name in "abcd":
                dirs.push(name)
            assert dirs.names() == ["a", "b", "c", "d"]
            open_fds = len(os.listdir("/proc/self/fd"))
            os.rename(os.path.join(scratch, "t/a/b/c"), os.path.join(scratch, "elsewhere/c"))
            assert dirs.pop() == "d"  # c's fd was kept: no lookup
            with pytest.raises(OSError) as raised:
                dirs.pop()  # b's was closed; ".." of c is elsewhere now
            assert raised.value.errno == errno.ESTALE
            assert len(os.listdir("/proc/self/fd")) <= open_fds
    finally:
        os.close(base)


def test_dir_stack_keeps_at_most_keep_descriptors_and_comes_back_up(scratch):
    os.makedirs(os.path.join(scratch, "t", *["d"] * 50))
    base = os.open(os.path.join(scratch, "t"), os.O_RDONLY | os.O_DIRECTORY)
    before = len(os.listdir("/proc/self/fd"))
    try:
        with walk.DirStack(base, keep=4) as dirs:
            for _level in range(50):
                dirs.push("d")
                assert len(os.listdir("/proc/self/fd")) <= before + 4
            while dirs.depth:
                dirs.pop()
            assert os.fstat(dirs.top).st_ino == os.fstat(base).st_ino
        assert len(os.listdir("/proc/self/fd")) == before
    finally:
        os.close(base)
