"""Applying layer tarballs: whiteouts, attributes, and hostile input.

Every hostile case runs against a target inside the test's tmpfs with a
canary directory beside it; the canary's snapshot must not change, and the
case must end in a LayerFormatError or in a result that stays inside.
"""

import bz2
import errno
import gzip
import io
import lzma
import os
import stat
import subprocess
import tarfile

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import syscalls, whiteouts
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import (
    LayerFormatError, OverlayError)
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.ids import IDMap
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.tar_apply import (
    LayerApplier, verify_archive)
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.tar_headers import Limits

from layertools import TarBuilder, fill_descriptor_gaps, pax_block, sha256, snapshot


@pytest.fixture(params=["openat2", "walk"])
def resolver(request, monkeypatch):
    """Run each case with the kernel's RESOLVE_IN_ROOT and with the fallback walk."""
    monkeypatch.setattr(syscalls, "_openat2_works", request.param == "openat2")
    return request.param


@pytest.fixture
def target(scratch):
    path = os.path.join(scratch, "target")
    os.mkdir(path)
    return path


def apply(target, data, **kw):
    return LayerApplier(target, **kw).apply(io.BytesIO(data))


# -- ordinary layers ----------------------------------------------------------------

def test_entries_and_attributes(target, resolver):
    data = (TarBuilder()
            .dir("etc", mode=0o755, mtime=1500000000)
            .file("etc/passwd", "root:x:0:0\n", mode=0o644, uid=0, gid=0, mtime=1500000001)
            .file("usr/bin/ping", b"\x7fELF", mode=0o4755, uid=0, gid=0,
                  xattrs={"security.capability": b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"})
            .file("home/u/f", "x", mode=0o600, uid=1000, gid=1000)
            .symlink("etc/localtime", "/usr/share/zoneinfo/UTC")
            .hardlink("usr/bin/ping6", "usr/bin/ping")
            .device("dev/null", char=True, major=1, minor=3)
            .device("dev/loop0", char=False, major=7, minor=0, mode=0o660)
            .fifo("run/fifo")
            .bytes())
    result = apply(target, data)
    assert result.diff_id == sha256(data)
    assert result.size == len("root:x:0:0\n") + 4 + 1
    snap = snapshot(target, times=True)
    assert snap["etc"]["mtime"] == 1500000000
    assert snap["etc/passwd"]["mtime"] == 1500000001
    assert stat.S_IMODE(snap["usr/bin/ping"]["mode"]) == 0o4755  # setuid survived chown
    assert snap["usr/bin/ping"]["xattr:security.capability"].startswith(b"\x01\x00\x00\x02")
    assert (snap["home/u/f"]["uid"], snap["home/u/f"]["gid"]) == (1000, 1000)
    assert snap["etc/localtime"]["link"] == "/usr/share/zoneinfo/UTC"
    assert os.stat(os.path.join(target, "usr/bin/ping6")).st_ino == os.stat(os.path.join(target, "usr/bin/ping")).st_ino
    assert snap["dev/null"]["rdev"] == (1, 3) and stat.S_ISCHR(snap["dev/null"]["mode"])
    assert snap["dev/loop0"]["rdev"] == (7, 0) and stat.S_ISBLK(snap["dev/loop0"]["mode"])
    assert stat.S_ISFIFO(snap["run/fifo"]["mode"])
    # implicit parents (usr, usr/bin, home/u, dev, run) are created 0755 root
    assert stat.S_IMODE(snap["usr/bin"]["mode"]) == 0o755


def test_whiteouts(target, resolver):
    apply(target, TarBuilder().dir("a").file("a/x", "1").file("a/y", "2").dir("b").file("b/z", "3").file("keep").bytes())
    apply(target, TarBuilder().whiteout("a/x").whiteout("b").whiteout("not-there").bytes())
    assert sorted(os.listdir(target)) == ["a", "keep"]
    assert os.listdir(os.path.join(target, "a")) == ["y"]


def test_opaque_marker_keeps_this_layers_children_in_any_order(target, resolver):
    apply(target, TarBuilder().dir("d").file("d/lower1").dir("d/sub").file("d/sub/lower2").bytes())
    # marker after the layer's own children, and a child dir this layer also writes into
    apply(target, TarBuilder().dir("d").file("d/mine", "m").dir("d/sub").file("d/sub/mine2").opaque("d").bytes())
    assert sorted(os.listdir(os.path.join(target, "d"))) == ["mine", "sub"]
    assert os.listdir(os.path.join(target, "d", "sub")) == ["mine2"]
    # marker before the children
    apply(target, TarBuilder().opaque("d").file("d/after", "a").bytes())
    assert os.listdir(os.path.join(target, "d")) == ["after"]


@pytest.mark.parametrize("layer", [TarBuilder().whiteout("d").bytes(), TarBuilder().opaque("top").bytes(),
                                   TarBuilder().file("d", "a file now").bytes()], ids=["whiteout", "opaque", "replaced"])
def test_removal_stops_at_a_mount_inside(target, scratch, layer):
    """What a layer removes is removed as removal.py removes: never into a mount below it."""
    source = os.path.join(scratch, "source")
    os.makedirs(source)
    with open(os.path.join(source, "keep"), "w") as f:
        f.write("k")
    for d in ("d/m", "top/d/m"):
        os.makedirs(os.path.join(target, d))
    mount = os.path.join(target, "top/d/m") if b".wh..wh..opq" in layer else os.path.join(target, "d/m")
    subprocess.run(["mount", "--bind", source, mount], check=True)
    try:
        with pytest.raises(OverlayError, match="is mounted inside"):
            apply(target, layer)
    finally:
        subprocess.run(["umount", mount], check=True)
    assert os.listdir(source) == ["keep"]


@pytest.mark.parametrize("how", ["bind", "tmpfs"])
@pytest.mark.parametrize("layer", [TarBuilder().whiteout("d").bytes(), TarBuilder().opaque("top").bytes(),
                                   TarBuilder().file("d", "a file now").bytes()], ids=["whiteout", "opaque", "replaced"])
def test_removal_stops_at_a_mount_on_the_removed_name(target, scratch, layer, how):
    """A mount on the very directory a layer removes is refused too, not emptied before rmdir fails."""
    source = os.path.join(scratch, "source")
    os.makedirs(source)
    os.makedirs(os.path.join(target, "top"))
    mount = os.path.join(target, "top/d") if b".wh..wh..opq" in layer else os.path.join(target, "d")
    os.makedirs(mount)
    if how == "bind":
        subprocess.run(["mount", "--bind", source, mount], check=True)
    else:
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", mount], check=True)
    try:
        with open(os.path.join(mount, "keep"), "w") as f:
            f.write("k")
        with pytest.raises(OverlayError, match="is mounted inside"):
            apply(target, layer)
        assert os.listdir(mount) == ["keep"]
    finally:
        subprocess.run(["umount", mount], check=True)


def test_mountinfo_is_read_once_per_apply_however_much_it_removes(target, monkeypatch):
    """Every removed directory is checked for mounts, against one reading of mountinfo: on a host with many
    mounts a layer that deletes many directories would otherwise read it once per directory."""
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import mounts, removal

    for name in ("a", "b", "c", "top/x", "top/y", "r"):
        os.makedirs(os.path.join(target, name, "sub"))
    reads = []
    real = mounts.read_mountinfo
    for module in (mounts, removal):
        monkeypatch.setattr(module, "read_mountinfo", lambda *a: reads.append(1) or real(*a), raising=False)
    apply(target, TarBuilder().whiteout("a").whiteout("b").whiteout("c").opaque("top").file("r", "now a file").bytes())
    assert sorted(os.listdir(target)) == ["r", "top"] and os.listdir(os.path.join(target, "top")) == []
    assert len(reads) == 1


def test_a_whiteout_below_a_symlink_loop_is_a_clear_error(target, resolver):
    """The layer's own symlink loop on a whiteout's directory is the archive's fault, said as such."""
    with pytest.raises(LayerFormatError, match=r"whiteout 'a/\.wh\.x': cannot resolve 'a'"):
        apply(target, TarBuilder().symlink("a", "a").whiteout("a/x").bytes())


def test_duplicate_entries_last_one_wins(target, resolver):
    apply(target, TarBuilder().file("f", "first").file("f", "second").dir("d").file("d/x").file("d", "now a file").bytes())
    with open(os.path.join(target, "f")) as f:
        assert f.read() == "second"
    assert os.path.isfile(os.path.join(target, "d"))


def test_root_entry_sets_root_attributes(target, resolver):
    apply(target, TarBuilder().dir("./", mode=0o750, uid=5, gid=6).file("./x").bytes())
    st = os.stat(target)
    assert stat.S_IMODE(st.st_mode) == 0o750 and (st.st_uid, st.st_gid) == (5, 6)


def test_uid_gid_maps_shift_owners(target):
    uid_maps = [IDMap(0, 100000, 65536)]
    gid_maps = [IDMap(0, 200000, 65536)]
    apply(target, TarBuilder().file("a", uid=0, gid=0).file("b", uid=1000, gid=50).bytes(),
          uid_maps=uid_maps, gid_maps=gid_maps)
    assert (os.lstat(os.path.join(target, "a")).st_uid, os.lstat(os.path.join(target, "a")).st_gid) == (100000, 200000)
    assert (os.lstat(os.path.join(target, "b")).st_uid, os.lstat(os.path.join(target, "b")).st_gid) == (101000, 200050)
    with pytest.raises(LayerFormatError, match="not mapped"):
        apply(target, TarBuilder().file("c", uid=70000).bytes(), uid_maps=uid_maps, gid_maps=gid_maps)


def test_overlay_xattrs_from_archives_are_dropped(target):
    apply(target, TarBuilder().dir("d").file("d/f", xattrs={"trusted.overlay.redirect": b"/etc",
                                                            "user.test": b"kept"}).bytes())
    assert os.getxattr(os.path.join(target, "d/f"), "user.test") == b"kept"
    assert os.listxattr(os.path.join(target, "d/f")) == ["user.test"]


def test_xattrs_on_symlinks_are_applied_to_the_link_itself(target, resolver):
    """As Docker does (lsetxattr); user.* exists only on files and directories, the kernel refuses it on
    symlinks, devices and fifos everywhere (EPERM): dropped, as Docker ignores that EPERM."""
    link_xattrs = _xattrs(trusted__test="t", security__test="s", user__test="u", trusted__overlay__opaque="y")
    data = (TarBuilder().file("f", "x")
            .symlink("l", "f", pax_headers=link_xattrs)
            .symlink("dangling", "/nowhere", pax_headers=_xattrs(trusted__test="d"))
            .device("dev/null", pax_headers=_xattrs(user__test="u", trusted__test="dev"))
            .bytes())
    apply(target, data)
    link = os.path.join(target, "l")
    assert sorted(os.listxattr(link, follow_symlinks=False)) == ["security.test", "trusted.test"]
    assert os.getxattr(link, "trusted.test", follow_symlinks=False) == b"t"
    assert os.listxattr(os.path.join(target, "f")) == []  # not the link's target
    assert os.getxattr(os.path.join(target, "dangling"), "trusted.test", follow_symlinks=False) == b"d"
    assert os.getxattr(os.path.join(target, "dev/null"), "trusted.test", follow_symlinks=False) == b"dev"
    # the two user.* and the trusted.overlay.* are not on the tree
    assert os.listxattr(os.path.join(target, "dev/null"), follow_symlinks=False) == ["trusted.test"]
    assert os.readlink(link) == "f" and os.lstat(link).st_mtime == 1700000000


def test_hardlink_to_symlink_links_the_symlink_itself(target, resolver):
    apply(target, TarBuilder().symlink("s", "/etc/passwd").hardlink("h", "s").bytes())
    assert os.readlink(os.path.join(target, "h")) == "/etc/passwd"
    assert os.lstat(os.path.join(target, "h")).st_ino == os.lstat(os.path.join(target, "s")).st_ino


# -- valid archives GNU tar extracts: the same tree ----------------------------------

GNU_TAR_CASES = [
    # a directory entry after its children, below the top level
    ("dir-after-children-depth-2", TarBuilder().file("a/b/c", "x").dir("a/b/", mode=0o700, uid=3).bytes(), ()),
    ("dir-after-children-depth-3", TarBuilder().file("a/b/c/d", "x").dir("a/b/c", mode=0o750).dir("a/b", mode=0o711)
     .bytes(), ()),
    # a file replacing a directory this layer filled: plain GNU tar keeps the directory and exits 2
    # ("Cannot open: File exists"); Docker's UnpackLayer removes it, which is tar --recursive-unlink
    ("file-over-filled-dir-depth-2", TarBuilder().file("a/b/c", "x").file("a/b", "now a file", mode=0o600).bytes(),
     ("--recursive-unlink",)),
    ("symlink-over-filled-dir-depth-2", TarBuilder().file("a/b/c", "x").symlink("a/b", "c").bytes(),
     ("--recursive-unlink",)),
    # one file written twice, once through a symlinked alias of its directory
    ("twice-through-alias-first", TarBuilder().dir("d").symlink("alias", "d").file("alias/f", "one")
     .file("d/f", "two").bytes(), ()),
    ("twice-through-alias-second", TarBuilder().dir("d").file("d/f", "one").symlink("alias", "d")
     .file("alias/f", "two").bytes(), ()),
    ("dir-twice-through-alias", TarBuilder().dir("d").symlink("alias", "d").dir("alias/sub", mode=0o700)
     .dir("d/sub", mode=0o751).file("d/sub/f").bytes(), ()),
    # tar -c f f: the second entry is a hardlink of the name to itself
    ("hardlink-to-itself", TarBuilder().file("f", "data").hardlink("f", "f").bytes(), ()),
    ("hardlink-to-itself-through-alias", TarBuilder().dir("d").file("d/f", "data").symlink("alias", "d")
     .hardlink("alias/f", "d/f").bytes(), ()),
    ("hardlink-over-alias-write", TarBuilder().dir("d").file("t", "target").symlink("alias", "d")
     .file("alias/h", "old").hardlink("d/h", "t").bytes(), ()),
]


def _gnu_tar(data, dest, options):
    import subprocess  # pylint: disable=import-outside-toplevel

    os.mkdir(dest)
    subprocess.run(["sh", "-c", 'umask 022 && exec tar -xpf - -C "$0" "$@"', dest] + list(options), input=data,
                   check=True)
    return dest


@pytest.mark.parametrize("case_id,data,options", GNU_TAR_CASES, ids=[c[0] for c in GNU_TAR_CASES])
def test_valid_archives_apply_as_gnu_tar_extracts_them(scratch, target, resolver, case_id, data, options):
    """Type, mode, owner, content and link target of every path equal GNU tar's result."""
    apply(target, data)
    expected = snapshot(_gnu_tar(data, os.path.join(scratch, "tar"), options))
    assert snapshot(target) == expected, case_id


# -- hostile input ------------------------------------------------------------------

def _gz(data):
    return gzip.compress(data)


def _corrupt_checksum(data):
    b = bytearray(data)
    b[148:156] = b"0000000\x00"
    return bytes(b)


def _name_in_header(name):
    """A ustar header whose name field holds raw bytes tarfile would not write."""
    info = tarfile.TarInfo("placeholder")
    info.size = 0
    raw = bytearray(info.tobuf(format=tarfile.USTAR_FORMAT))
    raw[0:100] = name.ljust(100, b"\x00")[:100]
    raw[148:156] = b" " * 8
    chk = sum(raw)
    raw[148:156] = b"%06o\x00 " % chk
    return bytes(raw) + b"\x00" * 1024


def _bomb_entries(n):
    tb = TarBuilder(fmt=tarfile.USTAR_FORMAT)
    for i in range(n):
        tb.dir("d%d" % i)
    return tb.bytes()


def _xattrs(**values):
    return {"SCHILY.xattr." + k.replace("__", "."): v for k, v in values.items()}


def _with_pax(headers):
    """One empty entry carrying the given PAX records, which TarBuilder would not write."""
    info = tarfile.TarInfo("x")
    info.pax_headers = headers
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        tf.addfile(info, io.BytesIO(b""))
    return buf.getvalue()


def _gnu_entry(name, kind=tarfile.REGTYPE, **attrs):
    """One entry in GNU format, which writes numbers too large for octal as base-256."""
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in attrs.items():
        setattr(info, key, value)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        tf.addfile(info, io.BytesIO(b""))
    return buf.getvalue()


GOOD = TarBuilder().file("ok", "fine").bytes()

# (id, archive bytes, expected error regex or None for "safe result", check(target) for safe results)
HOSTILE = [
    ("dotdot-file", TarBuilder().file("../x", "pwn").bytes(), "'..'", None),
    ("dotdot-deep", TarBuilder().file("a/../../canary/etc/passwd", "pwn").bytes(), "'..'", None),
    ("absolute-name", TarBuilder().file("/canary-abs", "safe").bytes(), None,
     lambda t: os.path.isfile(os.path.join(t, "canary-abs"))),
    ("absolute-dotdot", TarBuilder().file("/../../x", "pwn").bytes(), "'..'", None),
    ("symlink-then-write-through-absolute", TarBuilder().symlink("esc", "/").file("esc/canary/etc/passwd", "pwn").bytes(),
     None, lambda t: os.path.isfile(os.path.join(t, "canary/etc/passwd"))),
    ("symlink-then-write-through-relative",
     TarBuilder().symlink("esc", "../canary").file("esc/etc/passwd", "pwn").bytes(), "not a directory", None),
    ("symlink-to-inside-dir", TarBuilder().dir("real").symlink("esc", "../../real").file("esc/f", "in").bytes(),
     None, lambda t: os.path.isfile(os.path.join(t, "real/f"))),
    ("symlink-dir-chain", TarBuilder().symlink("a", "b/../../..").symlink("b", ".").file("a/escaped", "pwn").bytes(),
     None, lambda t: os.path.isfile(os.path.join(t, "escaped"))),
    ("symlink-loop", TarBuilder().symlink("l1", "l2").symlink("l2", "l1").file("l1/x", "y").bytes(), "l1", None),
    ("hardlink-outside-dotdot", TarBuilder().hardlink("h", "../canary/etc/passwd").bytes(), "'..'", None),
    ("hardlink-absolute-outside", TarBuilder().hardlink("h", "/etc/passwd").bytes(), "target not in the layer", None),
    ("hardlink-through-symlink", TarBuilder().symlink("s", "/").hardlink("h", "s/etc/passwd").bytes(),
     "target not in the layer", None),
    ("hardlink-to-directory", TarBuilder().dir("d").hardlink("h", "d").bytes(), "directory", None),
    ("hardlink-to-root", TarBuilder().hardlink("h", "/").bytes(), "layer root", None),
    ("hardlink-missing", TarBuilder().hardlink("h", "nothing").bytes(), "target not in the layer", None),
    ("whiteout-dotdot", TarBuilder().file("a/.wh...", "").bytes(), "invalid whiteout", None),
    ("whiteout-dot", TarBuilder().file("a/.wh..", "").bytes(), "invalid whiteout", None),
    ("whiteout-empty", TarBuilder().file(".wh.", "").bytes(), "invalid whiteout", None),
    ("whiteout-through-symlink", TarBuilder().symlink("esc", "/").whiteout("esc/canary").bytes(), None,
     lambda t: True),
    ("opaque-through-symlink", TarBuilder().symlink("esc", "../canary").opaque("esc").bytes(), "not a directory", None),
    ("opaque-missing-dir", TarBuilder().opaque("nothing").bytes(), "does not exist", None),
    ("replace-root-with-file", TarBuilder().file("./", "x").bytes(), "layer root", None),
    ("device-whiteout-char", TarBuilder().device("dev/zero", major=1, minor=5).bytes(), None,
     lambda t: stat.S_ISCHR(os.lstat(os.path.join(t, "dev/zero")).st_mode)),
    ("parent-is-file", TarBuilder().file("f", "x").file("f/child", "y").bytes(), "not a directory", None),
    ("truncated-tar-in-data", GOOD[:600], "truncated", None),
    ("truncated-tar-at-boundary", GOOD[:512 + 512], "truncated", None),
    ("truncated-gzip", _gz(GOOD)[:-12], "decompress", None),
    ("bad-gzip-crc", _gz(GOOD)[:-8] + b"\x00\x00\x00\x00" + _gz(GOOD)[-4:], "decompress", None),
    ("trailing-garbage", GOOD + b"GARBAGE", "trailing data", None),
    ("bad-header-checksum", _corrupt_checksum(GOOD), "invalid tar header", None),
    ("not-a-tar", b"hello world" * 100, "invalid tar header|truncated", None),
    ("empty-input", b"", "truncated", None),
    ("nul-in-pax-path", None, "NUL", None),
    ("name-too-long", TarBuilder().file("a" * 300, "x").bytes(), "longer than 255", None),
    ("path-too-long", TarBuilder().file("/".join(["d" * 200] * 25), "x").bytes(), "longer than 4096", None),
    ("huge-pax-header", None, "exceeds the limit", None),
    ("sparse-file", None, "sparse", None),
    ("entry-bomb", _bomb_entries(60), "more than 50 entries", None),
    ("raw-dotdot-header", _name_in_header(b"../../raw"), "'..'", None),
    # numbers beyond what chown, utime and makedev take (OverflowError, or chown's -1 "unchanged")
    ("uid-is-chowns-unchanged", _with_pax({"uid": "4294967295"}), "'x': owner 4294967295:0 is out of range", None),
    ("gid-beyond-32-bits-pax", _with_pax({"gid": str(1 << 64)}), "'x': owner 0:%d is out of range" % (1 << 64),
     None),
    ("uid-beyond-32-bits-base256", _gnu_entry("big-uid", uid=1 << 40), "'big-uid': owner .* out of range", None),
    ("mtime-beyond-time_t-pax", _with_pax({"mtime": "1" + "0" * 25}), "'x': mtime .* out of range", None),
    ("atime-beyond-time_t-pax", _with_pax({"atime": "-" + "9" * 30 + ".5"}), "'x': atime .* out of range", None),
    ("mtime-beyond-time_t-base256", _gnu_entry("old", mtime=1 << 70), "'old': mtime .* out of range", None),
    ("devmajor-beyond-dev_t", _gnu_entry("dev/big", tarfile.CHRTYPE, devmajor=4096),
     "'dev/big': device number 4096:0 is out of range", None),
    ("devminor-beyond-int-base256", _gnu_entry("dev/huge", tarfile.BLKTYPE, devminor=1 << 40),
     "'dev/huge': device number .* out of range", None),
    ("symlink-xattr-through-alias", TarBuilder().symlink("esc", "/").symlink(
        "esc/canary/link", "etc/passwd", pax_headers=_xattrs(trusted__test="in")).bytes(), None,
     lambda t: (os.getxattr(os.path.join(t, "canary/link"), "trusted.test", follow_symlinks=False) == b"in"
                and os.listxattr(os.path.join(os.path.dirname(t), "canary/link"), follow_symlinks=False) == [])),
    ("symlink-xattr-user-dropped", TarBuilder().symlink("l", "x", pax_headers=_xattrs(user__test="u")).bytes(), None,
     lambda t: os.listxattr(os.path.join(t, "l"), follow_symlinks=False) == []),
    # every name is below 4096 bytes, but through the symlink s the last file lies ~5,800 bytes deep:
    # Linux holds it, Docker and the path-based copies and walks of the layer cannot reach it
    ("deep-alias-past-path-max", TarBuilder().file("x/" + "d/" * 1900 + "f").symlink("s", "x/" + "d/" * 1900)
     .file("s/" + "d/" * 1000 + "g").bytes(), "'s/d/d/.*longer than the 3839 bytes .* a symlink in the layer", None),
    ("name-not-utf8", _name_in_header(b"caf\xe9"), None,
     lambda t: os.listdir(os.fsencode(t)) == [b"caf\xe9"]),
    # what may follow a compressed stream
    ("xz-trailing-junk", lzma.compress(GOOD) + b"junk", "trailing data after xz stream 1", None),
    ("xz-padding-not-multiple-of-4", lzma.compress(GOOD) + b"\x00" * 6, "padding", None),
    ("xz-padding-then-junk", lzma.compress(GOOD) + b"\x00" * 4 + b"\x01", "trailing data after xz", None),
    ("xz-stream-padding", lzma.compress(GOOD) + b"\x00" * 8, None, lambda t: os.path.isfile(os.path.join(t, "ok"))),
    ("bzip2-trailing-junk", bz2.compress(GOOD) + b"junk", "trailing data after bzip2 stream 1", None),
    ("bzip2-stream-after-padding", bz2.compress(GOOD) + b"\x00" * 4 + bz2.compress(b"\x00" * 1024),
     "trailing data after bzip2", None),
    ("gzip-member-after-padding", _gz(GOOD) + b"\x00" * 4 + _gz(b"\x00" * 1024), "trailing data after gzip", None),
    # metadata bombs
    ("pax-global-record-bomb", _gz(b"".join(pax_block({"k%d.%d" % (i, j): b"v" for j in range(5000)}, b"g")
                                            + GOOD[:1024] for i in range(2)) + b"\x00" * 1024),
     "pax header has more than 4096 records", None),
    ("pax-global-xattr-pile-up", b"".join(pax_block({"SCHILY.xattr.user.k%d.%d" % (i, j): b"v" * 30
                                                     for j in range(400)}, b"g") for i in range(10)) + GOOD,
     "global pax headers hold more than", None),
    ("pax-local-pile-up", b"".join(pax_block({"path": b"p" * 600000}) for _i in range(2)) + GOOD,
     "exceed 1048576 bytes together", None),
    ("pax-key-too-long", pax_block({"SCHILY.xattr.user." + "k" * 600: b"v"}) + GOOD, "pax header key of", None),
    ("devmajor-negative-base256", _gnu_entry("dev/neg", tarfile.CHRTYPE, devmajor=-5), "negative", None),
]


SPECIAL = {
    "nul-in-pax-path": {"path": "a\x00b"},
    "huge-pax-header": {"comment": "y" * (2 << 20)},
    "sparse-file": {"GNU.sparse.major": "1", "GNU.sparse.minor": "0"},
}


def _special(case_id):
    return _with_pax(SPECIAL[case_id])


@pytest.mark.parametrize("case_id,data,error,check", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_archive(scratch, canary, resolver, case_id, data, error, check):
    target = os.path.join(scratch, "target")
    os.mkdir(target)
    if data is None:
        data = _special(case_id)
    before = snapshot(canary, times=True)
    outside_before = sorted(os.listdir(scratch))
    applier = LayerApplier(target, limits=Limits(max_entries=50))
    if error is None:
        applier.apply(io.BytesIO(data))
        assert check(target), case_id
    else:
        with pytest.raises(LayerFormatError, match=error):
            applier.apply(io.BytesIO(data))
    assert snapshot(canary, times=True) == before
    assert sorted(os.listdir(scratch)) == outside_before
    assert not os.path.exists("/canary-abs") and not os.path.exists(os.path.join(os.path.dirname(scratch), "x"))


# refused by apply only: they depend on the tree the archive builds
TREE_DEPENDENT = {"symlink-then-write-through-relative", "symlink-loop", "hardlink-absolute-outside",
                  "hardlink-through-symlink", "hardlink-to-directory", "hardlink-missing", "opaque-through-symlink",
                  "opaque-missing-dir", "parent-is-file", "deep-alias-past-path-max"}


@pytest.mark.parametrize("case_id,data,error,check", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_verify_without_writing_refuses_as_apply_does(case_id, data, error, check):
    """Check mode's verification: the same error as apply for everything that is the archive's own."""
    if data is None:
        data = _special(case_id)
    limits = Limits(max_entries=50)
    if error is None or case_id in TREE_DEPENDENT:
        result = verify_archive(io.BytesIO(data), limits=limits)
        assert result.diff_id.startswith("sha256:")
        return
    with pytest.raises(LayerFormatError, match=error):
        verify_archive(io.BytesIO(data), limits=limits)


def test_verify_gives_what_apply_gives(target):
    data = (TarBuilder().dir("etc").file("etc/a", "12345").hardlink("etc/b", "etc/a").whiteout("gone")
            .file("big", b"x" * 3000).bytes())
    verified = verify_archive(io.BytesIO(gzip.compress(data)))
    applied = apply(target, gzip.compress(data))
    assert (verified.size, verified.diff_id, verified.entries, verified.compression) == (
        applied.size, applied.diff_id, applied.entries, applied.compression) == (3005, sha256(data), 5, "gzip")
    with pytest.raises(LayerFormatError, match="not mapped"):
        verify_archive(io.BytesIO(TarBuilder().file("c", uid=70000).bytes()), uid_maps=[IDMap(0, 100000, 65536)])


def test_hostile_case_count():
    assert len(HOSTILE) >= 25


def test_trees_within_path_max_apply_and_stay_walkable(scratch, target, resolver):
    """The same shape within the bound applies, and the layer copies and diffs as any other."""
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.changes import changes_dirs
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.copy import copy_tree

    deep = ("d" * 20 + "/") * 100  # 2,100 bytes, and 1,470 more through the alias: near the bound
    apply(target, TarBuilder().file("x/" + deep + "f", "deep").symlink("s", "x/" + deep)
          .file("s/" + ("e" * 20 + "/") * 70 + "g", "deeper").bytes())
    copy_tree(target, os.path.join(scratch, "copy"), hardlink=True)
    assert len(changes_dirs(os.path.join(scratch, "copy"), target)) == 0
    assert len(changes_dirs(target)) == 170 + 4


def test_no_space_left_is_a_clear_error(loopfs):
    small = loopfs("ext4", 16)
    target = os.path.join(small, "t")
    os.mkdir(target)
    data = TarBuilder().file("big", b"\x01" * (40 << 20)).bytes()
    with pytest.raises(OverlayError, match="no space left"):
        apply(target, data)


def test_maps_remap_capability_rootids_and_acl_ids_on_a_real_filesystem(target):
    """Under maps, a v3 capability's rootid and ACL user/group ids are those of the remapped files;
    a v2 capability is bound to the remapped root (v3); an xattr naming an id outside the maps is dropped;
    export maps them back, a capability of the container's root as v2."""
    import struct  # pylint: disable=import-outside-toplevel

    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.changes import changes_dirs
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.tar_export import export_changes

    uid_maps, gid_maps = [IDMap(0, 100000, 65536)], [IDMap(0, 200000, 65536)]
    v2 = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)

    def v3(rootid):
        return struct.pack("<IIIIII", 0x03000001, 1 << 13, 0, 0, 0, rootid)

    def acl(user, group):
        entries = [(0x01, 6, 0xFFFFFFFF), (0x02, 4, user), (0x04, 4, 0xFFFFFFFF), (0x08, 4, group),
                   (0x10, 4, 0xFFFFFFFF), (0x20, 4, 0xFFFFFFFF)]  # mask: the group bits of 0644
        return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)

    layer = (TarBuilder()
             .file("ping", b"x", mode=0o755, xattrs={"security.capability": v3(0)})
             .file("arping", b"x", mode=0o755, xattrs={"security.capability": v2})
             .file("outside", b"x", mode=0o755, xattrs={"security.capability": v3(70000)})
             .file("shared", b"x", xattrs={"system.posix_acl_access": acl(1000, 50)})
             .file("foreign", b"x", xattrs={"system.posix_acl_access": acl(70000, 50), "user.kept": b"k"})
             .bytes())
    apply(target, layer, uid_maps=uid_maps, gid_maps=gid_maps)

    def xattr(name, key):
        try:
            return os.getxattr(os.path.join(target, name), key)
        except OSError:
            return None

    assert xattr("ping", "security.capability") == v3(100000)
    assert xattr("arping", "security.capability") == v3(100000)
    assert xattr("outside", "security.capability") is None
    assert xattr("shared", "system.posix_acl_access") == acl(101000, 200050)
    assert xattr("foreign", "system.posix_acl_access") is None and xattr("foreign", "user.kept") == b"k"

    out = io.BytesIO()
    export_changes(target, changes_dirs(target), out, uid_maps, gid_maps)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as archive:
        def exported(name, key):
            value = archive.getmember(name).pax_headers.get("SCHILY.xattr." + key)
            return None if value is None else value.encode("utf-8", "surrogateescape")

        assert exported("ping", "security.capability") == v2
        assert exported("arping", "security.capability") == v2
        assert exported("shared", "system.posix_acl_access") == acl(1000, 50)


@pytest.mark.parametrize("revision", [1, 2])
def test_a_v1_or_v2_capability_under_maps_grants_nothing_to_the_remapped_uid_on_the_host(target, scratch, revision):
    """A v1 or v2 file capability names no rootid: written as it is, the kernel would honour it in every user
    namespace, the host's too, and the layer's files belong to the remapped root, which owns the home. A
    process of that uid on the host runs the layer's `cat` (CAP_DAC_READ_SEARCH in the tarball) on a file
    only root may read: it must be refused, the capability being the container root's only (v3)."""
    import shutil  # pylint: disable=import-outside-toplevel
    import struct  # pylint: disable=import-outside-toplevel

    cap_dac_read_search = 1 << 2
    if revision == 2:
        cap = struct.pack("<IIIII", 0x02000001, cap_dac_read_search, 0, 0, 0)
    else:
        cap = struct.pack("<III", 0x01000001, cap_dac_read_search, 0)
    with open(shutil.which("cat"), "rb") as f:
        cat = f.read()
    secret = os.path.join(scratch, "secret")
    with open(secret, "w") as f:
        f.write("root only\n")
    os.chmod(secret, 0o600)
    maps = [IDMap(0, 100000, 65536)]
    apply(target, TarBuilder().file("bin/cat", cat, mode=0o755, xattrs={"security.capability": cap}).bytes(),
          uid_maps=maps, gid_maps=maps)
    binary = os.path.join(target, "bin", "cat")
    assert os.stat(binary).st_uid == 100000
    ran = subprocess.run([binary, secret], user=100000, group=100000, extra_groups=[], capture_output=True,
                         check=False)
    assert ran.returncode != 0 and b"root only" not in ran.stdout
    assert b"Permission denied" in ran.stderr
    assert os.getxattr(binary, "security.capability") == struct.pack(
        "<IIIIII", 0x03000001, cap_dac_read_search, 0, 0, 0, 100000)


@pytest.fixture
def secret_disk(scratch):
    """A real block device (a loop device over a root-only 0600 image holding a secret): (major, minor)."""
    image = os.path.join(scratch, "disk.img")
    with open(image, "wb") as f:
        f.write(b"SECRET\n" + bytes(1 << 16))
    os.chmod(image, 0o600)
    loop = subprocess.run(["losetup", "--show", "-f", image], capture_output=True, text=True, check=True).stdout.strip()
    try:
        rdev = os.stat(loop).st_rdev
        yield os.major(rdev), os.minor(rdev)
    finally:
        subprocess.run(["losetup", "-d", loop], check=False)


def test_a_device_under_maps_is_refused_before_the_remapped_uid_can_open_it(target, secret_disk):
    """Under maps a device node's owner is the remapped root's uid, which owns the home: any process of that uid
    on the host could open it. A block device (here one over a root-only image) is refused, by apply and by
    the check alike, and nothing is left that uid 100000 could read the disk through."""
    maps = [IDMap(0, 100000, 65536)]
    major, minor = secret_disk
    layer = TarBuilder().dir("dev").device("dev/disk", char=False, major=major, minor=minor, mode=0o660).bytes()
    refused = None
    try:
        apply(target, layer, uid_maps=maps, gid_maps=maps)
    except LayerFormatError as e:
        refused = e
    node = os.path.join(target, "dev", "disk")
    if os.path.lexists(node):
        ran = subprocess.run(["head", "-c", "6", node], user=100000, group=100000, extra_groups=[],
                             capture_output=True, check=False)
        assert b"SECRET" not in ran.stdout, "uid 100000 read the root-only disk through the layer's node"
    assert refused is not None and "'dev/disk' is a block device %d:%d" % (major, minor) in str(refused)
    assert not os.path.lexists(node)
    with pytest.raises(LayerFormatError, match="block device"):
        verify_archive(io.BytesIO(layer), uid_maps=maps, gid_maps=maps)


@pytest.mark.parametrize("char, major, minor", [(True, 1, 1), (True, 5, 1), (True, 4, 0), (False, 8, 0)],
                         ids=["mem", "console", "tty0", "sda"])
def test_devices_that_grant_anything_are_refused_under_maps_and_applied_without(target, scratch, char, major, minor):
    maps = [IDMap(0, 100000, 65536)]
    layer = TarBuilder().device("dev/x", char=char, major=major, minor=minor, mode=0o600).bytes()
    with pytest.raises(LayerFormatError, match="under uid/gid maps its owner"):
        apply(target, layer, uid_maps=maps, gid_maps=maps)
    assert os.listdir(target) == []
    unmapped = os.path.join(scratch, "unmapped")
    os.mkdir(unmapped)
    apply(unmapped, layer)  # a home without maps is root's alone: the layer is applied as it says
    assert os.stat(os.path.join(unmapped, "dev", "x")).st_rdev == os.makedev(major, minor)


def test_harmless_character_devices_are_applied_under_maps(target):
    maps = [IDMap(0, 100000, 65536)]
    layer = TarBuilder()
    for name, (major, minor) in (("null", (1, 3)), ("zero", (1, 5)), ("full", (1, 7)), ("random", (1, 8)),
                                 ("urandom", (1, 9)), ("tty", (5, 0)), ("ptmx", (5, 2))):
        layer.device("dev/" + name, major=major, minor=minor)
    apply(target, layer.bytes(), uid_maps=maps, gid_maps=maps)
    null = os.stat(os.path.join(target, "dev", "null"))
    assert null.st_rdev == os.makedev(1, 3) and null.st_uid == 100000
    assert len(os.listdir(os.path.join(target, "dev"))) == 7


def test_a_layer_of_many_directories_applies_under_a_low_open_file_limit(target):
    """The applier keeps parent directory fds to save lookups; under a soft RLIMIT_NOFILE of a few dozen it keeps
    fewer, so an ordinary layer of 100 directories applies (it failed with 'entry ...: Too many open files',
    blaming the layer); and running out of descriptors is the host's error, never the entry's."""
    import gc  # pylint: disable=import-outside-toplevel
    import resource  # pylint: disable=import-outside-toplevel

    layer = TarBuilder()
    for i in range(100):
        layer.dir("d%03d" % i)
    for i in range(100):
        layer.file("d%03d/f" % i, "x")
    data = layer.bytes()
    saved = resource.getrlimit(resource.RLIMIT_NOFILE)
    gc.collect()
    fillers = fill_descriptor_gaps()
    open_now = len(os.listdir("/proc/self/fd"))
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (open_now + 40, saved[1]))
        apply(target, data)
        assert len(os.listdir(target)) == 100
        resource.setrlimit(resource.RLIMIT_NOFILE, (open_now + 3, saved[1]))  # room for the first directories only
        with pytest.raises(OSError) as raised:
            apply(os.path.join(target, "d000"), data)
        assert not isinstance(raised.value, LayerFormatError)
        assert raised.value.errno == errno.EMFILE
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, saved)
        for fd in fillers:
            os.close(fd)


# -- the overlay whiteout format (a layer's own diff/ under an overlay mount) ------------------

LOWER = (TarBuilder()
         .dir("etc", mode=0o755).file("etc/a", "a").file("etc/b", "b").file("etc/keep", "k")
         .dir("d", mode=0o750, uid=3, gid=4).file("d/old1", "1").dir("d/sub").file("d/sub/old2", "2")
         .dir("e", mode=0o755).file("e/f", "f")
         .bytes())
# the same layer in every order the convention allows: whiteouts before and after the layer's own entries
CHILD = (TarBuilder()
         .dir("etc", mode=0o755).whiteout("etc/a").file("etc/new", "n")
         .file("etc/b", "replaced").whiteout("etc/b")           # written, then whited out: gone
         .whiteout("etc/keep").file("etc/keep", "again")         # whited out, then written: the new one
         .dir("d", mode=0o750, uid=3, gid=4).file("d/mine", "m").opaque("d").dir("d/sub2").file("d/sub2/x", "x")
         .dir("e", mode=0o755).whiteout("e/missing")
         .bytes())


@pytest.fixture
def overlay_mount(scratch):
    """mount(lower, upper) -> merged: a real overlay of two directories, unmounted afterwards."""
    made = []

    def mount(lower, upper):
        work, merged = os.path.join(scratch, "work"), os.path.join(scratch, "merged")
        os.mkdir(work)
        os.mkdir(merged)
        syscalls.mount("overlay", merged, "overlay", 0, "lowerdir=%s,upperdir=%s,workdir=%s" % (lower, upper, work))
        made.append(merged)
        return merged

    try:
        yield mount
    finally:
        for merged in made:
            syscalls.umount(merged, syscalls.MNT_DETACH)


def test_overlay_format_writes_overlays_own_whiteouts_and_deletes_nothing(scratch, resolver):
    diff = os.path.join(scratch, "diff")
    os.mkdir(diff)
    apply(diff, CHILD, whiteout_format=whiteouts.OVERLAY)
    for name in ("etc/a", "etc/b", "e/missing"):
        st = os.lstat(os.path.join(diff, name))
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0 and stat.S_IMODE(st.st_mode) == 0, name
        assert (st.st_uid, st.st_gid) == (0, 0)
    assert os.getxattr(os.path.join(diff, "d"), whiteouts.OPAQUE_XATTR) == b"y"
    with open(os.path.join(diff, "etc", "keep")) as f:
        assert f.read() == "again"
    assert sorted(os.listdir(os.path.join(diff, "d"))) == ["mine", "sub2"]  # the layer's own, whatever the order
    assert not any(n.startswith(".wh.") for _d, dirs, files in os.walk(diff) for n in dirs + files)
    for name in ("etc", "d"):  # not opaque unless the archive says so
        if name != "d":
            with pytest.raises(OSError):
                os.getxattr(os.path.join(diff, name), whiteouts.OPAQUE_XATTR)


def test_overlay_format_mounted_over_the_lower_layer_shows_what_delete_format_makes(scratch, overlay_mount, resolver):
    """The two formats are one convention: the child in overlay's form over its parent is, mounted,
    the tree the seed's layout gets by applying the child onto a copy of the parent."""
    lower, upper, whole = (os.path.join(scratch, n) for n in ("lower", "upper", "whole"))
    for path in (lower, upper, whole):
        os.mkdir(path)
    apply(lower, LOWER)
    apply(whole, LOWER)
    apply(whole, CHILD)
    apply(upper, CHILD, whiteout_format=whiteouts.OVERLAY)
    merged = overlay_mount(lower, upper)
    assert snapshot(merged) == snapshot(whole)
    assert "a" not in os.listdir(os.path.join(merged, "etc")) and "old1" not in os.listdir(os.path.join(merged, "d"))


def test_overlay_format_whiteout_owner_is_the_layers_root_under_maps(scratch):
    diff = os.path.join(scratch, "diff")
    os.mkdir(diff)
    maps = [IDMap(0, 100000, 65536)]
    apply(diff, TarBuilder().dir("etc").whiteout("etc/a").opaque("etc").bytes(), uid_maps=maps, gid_maps=maps,
          whiteout_format=whiteouts.OVERLAY)
    st = os.lstat(os.path.join(diff, "etc", "a"))
    assert stat.S_ISCHR(st.st_mode) and (st.st_uid, st.st_gid) == (100000, 100000)
    assert os.getxattr(os.path.join(diff, "etc"), whiteouts.OPAQUE_XATTR) == b"y"


def test_overlay_format_opaque_root_and_implied_parents_as_dockers_unpack(scratch, resolver):
    """An opaque whiteout at the top marks diff/ itself; a whiteout in a directory the archive did not
    list gets that directory made (0755, the layer's root), as Docker's unpack makes a missing parent."""
    diff = os.path.join(scratch, "diff")
    os.mkdir(diff)
    apply(diff, TarBuilder().opaque("").whiteout("usr/lib/x").bytes(), whiteout_format=whiteouts.OVERLAY)
    assert os.getxattr(diff, whiteouts.OPAQUE_XATTR) == b"y"
    st = os.lstat(os.path.join(diff, "usr", "lib"))
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o755
    assert stat.S_ISCHR(os.lstat(os.path.join(diff, "usr", "lib", "x")).st_mode)


def test_overlay_format_whiteouts_stay_inside_the_target(scratch, canary, resolver):
    diff = os.path.join(scratch, "diff")
    os.mkdir(diff)
    before = snapshot(canary)
    for data in (TarBuilder().symlink("esc", "../" + os.path.basename(canary)).whiteout("esc/etc/passwd").bytes(),
                 TarBuilder().symlink("abs", canary).opaque("abs/etc").bytes(),
                 TarBuilder().symlink("up", "..").whiteout("up/canary").opaque("up").bytes()):
        try:  # a clear error, or a whiteout made inside the target: never beside it
            apply(diff, data, whiteout_format=whiteouts.OVERLAY)
        except LayerFormatError:
            pass
        assert snapshot(canary) == before
        with pytest.raises(OSError):
            os.getxattr(os.path.dirname(diff), whiteouts.OPAQUE_XATTR)
        assert sorted(os.listdir(os.path.dirname(diff))) == ["canary", "diff"]


def test_an_unknown_whiteout_format_is_refused(target):
    with pytest.raises(ValueError, match="unknown whiteout format"):
        LayerApplier(target, whiteout_format="aufs")
