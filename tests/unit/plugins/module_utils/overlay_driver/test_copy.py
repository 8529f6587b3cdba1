"""copy_tree keeps everything overlay and images care about."""

import os
import stat

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.copy import copy_tree

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError

from layertools import deep_tree, run_isolated, snapshot

CAP = b"\x01\x00\x00\x02\x00\x20\x00\x00" + b"\x00" * 12


def build(src):
    os.makedirs(os.path.join(src, "dir", "deep"))
    os.chmod(os.path.join(src, "dir"), 0o1750)
    os.chown(os.path.join(src, "dir"), 7, 8)
    with open(os.path.join(src, "dir", "file"), "w") as f:
        f.write("content")
    os.chown(os.path.join(src, "dir", "file"), 1000, 1001)
    os.chmod(os.path.join(src, "dir", "file"), 0o4751)
    os.setxattr(os.path.join(src, "dir", "file"), "security.capability", CAP)
    os.setxattr(os.path.join(src, "dir"), "trusted.overlay.opaque", b"y")
    os.link(os.path.join(src, "dir", "file"), os.path.join(src, "hard"))
    os.symlink("dir/file", os.path.join(src, "sym"))
    os.lchown(os.path.join(src, "sym"), 3, 4)
    os.mkfifo(os.path.join(src, "fifo"))
    os.mknod(os.path.join(src, "null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(os.path.join(src, "whiteout"), stat.S_IFCHR, 0)
    for path in (os.path.join(src, "dir", "file"), os.path.join(src, "dir", "deep"), os.path.join(src, "dir")):
        os.utime(path, ns=(1500000000123456789, 1500000000123456789))
    os.utime(os.path.join(src, "sym"), ns=(1400000000, 1400000000), follow_symlinks=False)


def test_full_copy_keeps_everything(scratch):
    src = os.path.join(scratch, "src")
    dst = os.path.join(scratch, "dst")
    os.mkdir(src)
    build(src)
    copy_tree(src, dst)
    a = snapshot(src, times=True, xattrs=("security.capability", "trusted.overlay.opaque"))
    b = snapshot(dst, times=True, xattrs=("security.capability", "trusted.overlay.opaque"))
    assert a == b
    assert b["dir/file"]["xattr:security.capability"] == CAP
    assert b["dir"]["xattr:trusted.overlay.opaque"] == b"y"
    assert os.lstat(os.path.join(dst, "dir/file")).st_mtime_ns == 1500000000123456789  # nanoseconds too
    assert os.lstat(os.path.join(dst, "dir")).st_mtime_ns == 1500000000123456789  # set after its children
    assert os.lstat(os.path.join(dst, "sym")).st_mtime_ns == 1400000000
    # hardlinks inside the tree stay hardlinks, not shared with the source
    assert os.stat(os.path.join(dst, "hard")).st_ino == os.stat(os.path.join(dst, "dir/file")).st_ino
    assert os.stat(os.path.join(dst, "hard")).st_ino != os.stat(os.path.join(src, "hard")).st_ino
    assert stat.S_IMODE(os.lstat(os.path.join(dst, "dir/file")).st_mode) == 0o4751


def test_hardlink_copy_shares_regular_files_only(scratch):
    src = os.path.join(scratch, "src")
    dst = os.path.join(scratch, "dst")
    os.mkdir(src)
    build(src)
    copy_tree(src, dst, hardlink=True)
    assert os.stat(os.path.join(dst, "dir/file")).st_ino == os.stat(os.path.join(src, "dir/file")).st_ino
    assert os.stat(os.path.join(dst, "dir")).st_ino != os.stat(os.path.join(src, "dir")).st_ino
    assert os.lstat(os.path.join(dst, "sym")).st_ino != os.lstat(os.path.join(src, "sym")).st_ino
    assert snapshot(src) == snapshot(dst)


def test_deep_tree_copies_without_recursion_limit(scratch):
    copy_tree(deep_tree(os.path.join(scratch, "src"), 1500), os.path.join(scratch, "dst"))
    depth = 0
    fd = os.open(os.path.join(scratch, "dst"), os.O_RDONLY)
    while os.listdir(fd) == ["d"]:
        nfd = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = nfd
        depth += 1
    os.close(fd)
    assert depth == 1500


def test_symlink_xattrs_are_copied_in_both_modes(scratch):
    src = os.path.join(scratch, "src")
    os.mkdir(src)
    os.symlink("missing", os.path.join(src, "sym"))
    os.setxattr(os.path.join(src, "sym"), "trusted.test", b"t", follow_symlinks=False)
    os.setxattr(os.path.join(src, "sym"), "security.test", b"s", follow_symlinks=False)
    for hardlink in (False, True):
        dst = os.path.join(scratch, "dst-%s" % hardlink)
        copy_tree(src, dst, hardlink=hardlink)
        sym = os.path.join(dst, "sym")
        assert sorted(os.listxattr(sym, follow_symlinks=False)) == ["security.test", "trusted.test"]
        assert os.getxattr(sym, "trusted.test", follow_symlinks=False) == b"t"


def test_a_tree_deeper_than_path_max_is_copied_whole(scratch):
    """The copy goes by directory fd, so no path length limits it (the source is never named by path)."""
    src = os.path.join(scratch, "src")
    os.mkdir(src)
    fd = os.open(src, os.O_RDONLY)
    for _level in range(20):
        os.mkdir("n" * 250, dir_fd=fd)
        nfd = os.open("n" * 250, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = nfd
    with open(os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "w") as f:
        f.write("deep")
    os.close(fd)
    for hardlink in (False, True):
        dst = os.path.join(scratch, "dst-%s" % hardlink)
        copy_tree(src, dst, hardlink=hardlink)
        fd = os.open(dst, os.O_RDONLY)
        for _level in range(20):
            nfd = os.open("n" * 250, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        with open(os.open("leaf", os.O_RDONLY, dir_fd=fd)) as f:
            assert f.read() == "deep"
        os.close(fd)


# -- a source that changes while it is copied (a mounted layer's upper/, written by what runs in it) --

SWAP_SETUP = """
import os, sys
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.copy import copy_tree
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
src, dst = %r, %r
real_open = os.open
swapped = []

def racing_open(path, *args, **kwargs):
    if os.path.basename(path) == "victim" and not swapped:
        swapped.append(path)
        os.unlink(os.path.join(src, "victim"))
        %s
    return real_open(path, *args, **kwargs)

os.open = racing_open
try:
    copy_tree(src, dst)
except OverlayError as e:
    print("refused:", e.message)
else:
    print("copied")
"""


def _victim_tree(scratch):
    src = os.path.join(scratch, "src")
    os.mkdir(src)
    with open(os.path.join(src, "victim"), "w") as f:
        f.write("a regular file\n")
    return src


def test_a_file_swapped_for_a_fifo_while_copied_is_refused_without_blocking(scratch):
    """The open of a FIFO with no writer blocks for ever (under the home's lock): the type is checked on
    an O_PATH fd first, which opens nothing."""
    src = _victim_tree(scratch)
    code = SWAP_SETUP % (src, os.path.join(scratch, "dst"), 'os.mkfifo(os.path.join(src, "victim"))')
    done = run_isolated(code, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "refused:" in done.stdout and "a regular file became a FIFO" in done.stdout, done.stdout
    assert os.path.join(src, "victim") in done.stdout


def test_a_file_vanishing_mid_copy_is_a_clear_error(scratch):
    src = _victim_tree(scratch)
    done = run_isolated(SWAP_SETUP % (src, os.path.join(scratch, "dst"), "pass"), timeout=60)
    assert done.returncode == 0, done.stderr
    assert "refused:" in done.stdout and "vanished while the tree was copied" in done.stdout, done.stdout


def test_a_directory_swapped_for_a_symlink_while_copied_never_copies_what_it_names(scratch, monkeypatch):
    """Between listing sub/ and reading it, sub/ becomes a symlink to a root-only directory."""
    src = os.path.join(scratch, "src")
    os.makedirs(os.path.join(src, "sub"))
    with open(os.path.join(src, "sub", "own"), "w") as f:
        f.write("the layer's\n")
    secret = os.path.join(scratch, "secret")
    os.mkdir(secret, 0o700)
    with open(os.path.join(secret, "shadow"), "w") as f:
        f.write("root only\n")
    real_mkdir = os.mkdir

    def racing_mkdir(path, *args, **kwargs):
        if os.path.basename(path) == "sub" and not os.path.islink(os.path.join(src, "sub")):
            os.rename(os.path.join(src, "sub"), os.path.join(src, "moved"))
            os.symlink(secret, os.path.join(src, "sub"))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", racing_mkdir)
    dst = os.path.join(scratch, "dst")
    try:
        copy_tree(src, dst)
    except OverlayError:
        pass  # refusing is safe too
    monkeypatch.undo()
    copied = [name for _dir, _dirs, files in os.walk(dst) for name in files]
    assert "shadow" not in copied


def test_a_fifo_in_the_tree_is_made_again_never_opened(scratch):
    src = os.path.join(scratch, "src")
    os.mkdir(src)
    os.mkfifo(os.path.join(src, "pipe"))
    done = run_isolated("from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.copy import "
                        "copy_tree\ncopy_tree(%r, %r)\n" % (src, os.path.join(scratch, "dst")), timeout=60)
    assert done.returncode == 0, done.stderr
    assert stat.S_ISFIFO(os.lstat(os.path.join(scratch, "dst", "pipe")).st_mode)
