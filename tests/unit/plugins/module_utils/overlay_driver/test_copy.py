"""copy_tree keeps everything overlay and images care about."""

import os
import stat

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.copy import copy_tree

from layertools import deep_tree, snapshot

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
