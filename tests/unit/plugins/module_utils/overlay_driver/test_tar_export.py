"""The exporter's writer and archive, read back with Python's tarfile."""

import errno
import hashlib
import io
import os
import random
import tarfile
import threading

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import view_dirs

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.changes import changes_dirs, changes_size
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.tar_export import (
    HashingWriter, export_changes)

from layertools import fill_descriptor_gaps


def test_writer_keeps_every_byte_in_order_across_blocks(scratch):
    rng = random.Random(7)
    source = os.path.join(scratch, "source")
    payload = rng.randbytes(3 * HashingWriter.BLOCK + 12345)
    with open(source, "wb") as f:
        f.write(payload)
    out = io.BytesIO()
    writer = HashingWriter(out)
    expected = bytearray()
    for size in (0, 1, 511, HashingWriter.BLOCK, HashingWriter.BLOCK - 7, 2 * HashingWriter.BLOCK + 3, 100):
        chunk = rng.randbytes(size)
        writer.write(chunk)
        expected += chunk
        fd = os.open(source, os.O_RDONLY)
        try:
            assert writer.copy_from(fd, size)
        finally:
            os.close(fd)
        expected += payload[:size]
    assert writer.size == len(expected)
    digest = writer.close()
    assert out.getvalue() == bytes(expected)
    assert digest == "sha256:" + hashlib.sha256(expected).hexdigest()


def test_writer_reports_a_file_that_ends_early(scratch):
    source = os.path.join(scratch, "short")
    with open(source, "wb") as f:
        f.write(b"x" * 10)
    writer = HashingWriter(io.BytesIO())
    fd = os.open(source, os.O_RDONLY)
    try:
        assert not writer.copy_from(fd, 11)
    finally:
        os.close(fd)
    writer.abandon()


def test_archive_reads_back_and_its_digest_is_the_bytes(scratch):
    tree = os.path.join(scratch, "tree")
    os.makedirs(os.path.join(tree, "d"))
    big = random.Random(1).randbytes(HashingWriter.BLOCK * 2 + 99)
    files = {"big": big, "d/small": b"small", "empty": b"", "d/" + "n" * 120: b"long name"}
    for name, data in files.items():
        with open(os.path.join(tree, name), "wb") as f:
            f.write(data)
    os.link(os.path.join(tree, "d", "small"), os.path.join(tree, "hardlink"))
    os.symlink("big", os.path.join(tree, "link"))
    out = io.BytesIO()
    changes = changes_dirs(tree)
    diff_id, size, diff_size = export_changes(tree, changes, out)
    raw = out.getvalue()
    assert size == len(raw) and size % 10240 == 0
    # the hardlinked inode counts once; the symlink's size is its target's length
    assert diff_size == changes_size(tree, changes) == sum(map(len, files.values())) + len("big")
    assert diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    with tarfile.open(fileobj=io.BytesIO(raw)) as archive:
        members = {m.name: m for m in archive.getmembers()}
        for name, data in files.items():
            assert archive.extractfile(members[name]).read() == data
        linked = members["hardlink"] if members["hardlink"].islnk() else members["d/small"]
        assert linked.islnk() and linked.linkname in ("d/small", "hardlink")
        assert members["link"].issym() and members["link"].linkname == "big"


def test_a_failed_export_stops_its_worker(scratch):
    tree = os.path.join(scratch, "tree")
    os.makedirs(tree)
    with open(os.path.join(tree, "f"), "wb") as f:
        f.write(b"x")
    changes = changes_dirs(tree)
    os.unlink(os.path.join(tree, "f"))
    before = threading.active_count()
    with pytest.raises(FileNotFoundError):
        export_changes(tree, changes, io.BytesIO())
    assert threading.active_count() == before


class _Trickle(io.RawIOBase):
    """A raw file that takes at most 1,000 bytes a write, as pipes and sockets may."""

    def __init__(self):
        super().__init__()
        self.data = bytearray()

    def writable(self):
        return True

    def write(self, b):
        taken = bytes(b[:1000])
        self.data += taken
        return len(taken)


def test_short_writes_are_continued(scratch):
    out = _Trickle()
    writer = HashingWriter(out)
    payload = random.Random(2).randbytes(HashingWriter.BLOCK + 4321)
    writer.write(payload)
    assert writer.close() == "sha256:" + hashlib.sha256(payload).hexdigest()
    assert bytes(out.data) == payload


class _Full(io.RawIOBase):
    """A file on a full filesystem: the second write fails with ENOSPC."""

    def __init__(self):
        super().__init__()
        self.writes = 0

    def writable(self):
        return True

    def write(self, b):
        self.writes += 1
        if self.writes > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return len(b)


def test_a_write_that_fails_on_the_worker_fails_the_export_and_stops_the_worker(scratch):
    """The worker writes the blocks: its ENOSPC reaches the caller, and no thread is left waiting."""
    tree = os.path.join(scratch, "tree")
    os.makedirs(tree)
    with open(os.path.join(tree, "big"), "wb") as f:
        f.write(random.Random(3).randbytes(HashingWriter.BLOCK * (HashingWriter.BLOCKS + 3)))
    before = threading.active_count()
    out = _Full()
    with pytest.raises(OSError) as caught:
        export_changes(tree, changes_dirs(tree), out)
    assert caught.value.errno == errno.ENOSPC
    assert out.writes == 2  # nothing written after the failure
    assert threading.active_count() == before


def test_a_write_that_fails_at_the_last_block_fails_close(scratch):
    writer = HashingWriter(_Full())
    writer.write(b"x" * HashingWriter.BLOCK)  # shipped: the first write succeeds
    writer.write(b"y" * 10)
    before = threading.active_count()
    with pytest.raises(OSError) as caught:
        writer.close()
    assert caught.value.errno == errno.ENOSPC
    assert threading.active_count() == before - 1


def test_symlink_xattrs_are_exported_and_apply_back(scratch):
    """Docker exports and applies xattrs of symlinks; overlay's own stay out of the archive."""
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.tar_apply import LayerApplier

    tree = os.path.join(scratch, "tree")
    os.makedirs(tree)
    link = os.path.join(tree, "link")
    os.symlink("nowhere", link)
    os.setxattr(link, "trusted.test", b"t", follow_symlinks=False)
    os.setxattr(link, "security.test", b"\xff\x00binary", follow_symlinks=False)
    os.setxattr(link, "trusted.overlay.origin", b"x", follow_symlinks=False)
    out = io.BytesIO()
    export_changes(tree, changes_dirs(tree), out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as archive:
        member = archive.getmember("link")
        assert member.issym()
        assert member.pax_headers["SCHILY.xattr.trusted.test"] == "t"
        assert "SCHILY.xattr.trusted.overlay.origin" not in member.pax_headers
    back = os.path.join(scratch, "back")
    os.mkdir(back)
    LayerApplier(back).apply(io.BytesIO(out.getvalue()))
    applied = os.path.join(back, "link")
    assert sorted(os.listxattr(applied, follow_symlinks=False)) == ["security.test", "trusted.test"]
    assert os.getxattr(applied, "security.test", follow_symlinks=False) == b"\xff\x00binary"


def test_symlink_xattrs_round_trip_with_gnu_tar(scratch):
    """GNU tar --xattrs keeps them too: its archive applies with them, and it restores them from ours."""
    import subprocess

    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.tar_apply import LayerApplier

    xattrs = ["--xattrs", "--xattrs-include=*"]
    src = os.path.join(scratch, "src")
    os.makedirs(src)
    os.symlink("nowhere", os.path.join(src, "link"))
    os.setxattr(os.path.join(src, "link"), "trusted.test", b"from-tar", follow_symlinks=False)
    made_by_tar = subprocess.run(["tar"] + xattrs + ["-C", src, "-cf", "-", "."], stdout=subprocess.PIPE,
                                 check=True).stdout
    applied = os.path.join(scratch, "applied")
    os.mkdir(applied)
    LayerApplier(applied).apply(io.BytesIO(made_by_tar))
    assert os.getxattr(os.path.join(applied, "link"), "trusted.test", follow_symlinks=False) == b"from-tar"

    os.setxattr(os.path.join(applied, "link"), "trusted.test", b"from-export", follow_symlinks=False)
    out = io.BytesIO()
    export_changes(applied, changes_dirs(applied), out)
    extracted = os.path.join(scratch, "extracted")
    os.mkdir(extracted)
    subprocess.run(["tar"] + xattrs + ["-xpf", "-", "-C", extracted], input=out.getvalue(), check=True)
    assert os.getxattr(os.path.join(extracted, "link"), "trusted.test", follow_symlinks=False) == b"from-export"


def test_an_xattr_name_that_is_not_utf8_is_exported_as_its_bytes(scratch):
    """Go's archive/tar writes PAX keys as bytes; so does the export, and the applier restores the same name."""
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.tar_apply import LayerApplier

    tree = os.path.join(scratch, "tree")
    os.makedirs(tree)
    names = {b"trusted.caf\xe9": b"latin-1 name", b"user.\xff\xfe": b"\xff binary value", b"user.plain": b"ok"}
    with open(os.path.join(tree, "file"), "w") as f:
        f.write("x")
    for name, value in names.items():
        os.setxattr(os.path.join(tree, "file").encode(), name, value)
    out = io.BytesIO()
    export_changes(tree, changes_dirs(tree), out)
    data = out.getvalue()
    assert b" SCHILY.xattr.trusted.caf\xe9=latin-1 name\n" in data
    assert b" SCHILY.xattr.user.\xff\xfe=\xff binary value\n" in data
    back = os.path.join(scratch, "back")
    os.mkdir(back)
    LayerApplier(back).apply(io.BytesIO(data))
    applied = os.path.join(back, "file").encode()
    assert {os.fsencode(n): os.getxattr(applied, n) for n in os.listxattr(applied)} == names
    with open(os.path.join(back, "file")) as f:
        assert f.read() == "x"


def test_a_file_swapped_for_a_fifo_during_export_is_refused_without_blocking(scratch):
    """What runs in a mounted layer swaps a changed file for a FIFO between the change walk and its read."""
    from layertools import run_isolated

    old, new = os.path.join(scratch, "old"), os.path.join(scratch, "new")
    os.mkdir(old)
    os.mkdir(new)
    with open(os.path.join(new, "victim"), "w") as f:
        f.write("added\n")
    code = """
import io, os
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import view_dirs
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.changes import changes_dirs
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.tar_export import export_changes
new, old = %r, %r
changes = changes_dirs(new, old)
real_open = view_dirs.ViewEntry.open

def racing_open(entry, flags):  # between the exporter's lstat (a regular file) and its open
    os.unlink(os.path.join(new, "victim"))
    os.mkfifo(os.path.join(new, "victim"))
    return real_open(entry, flags)

view_dirs.ViewEntry.open = racing_open
try:
    export_changes(new, changes, io.BytesIO())
except OverlayError as e:
    print("refused:", e.message)
else:
    print("exported")
""" % (new, old)
    done = run_isolated(code, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "refused:" in done.stdout and "it is a FIFO, not a regular file" in done.stdout, done.stdout


def test_a_change_deeper_than_path_max_is_a_clear_error(scratch):
    """A change past PATH_MAX (no applier takes it back) names that limit, not an unexpected OSError."""
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.changes import ADD, Change
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError

    out = io.BytesIO()
    with pytest.raises(OverlayError, match=r"cannot export the layer: a path in it is longer than PATH_MAX \(4096"):
        export_changes(scratch, [Change("/" + "/".join(["n" * 250] * 20), ADD)], out)


def _members():
    """Entries that need a PAX header, one reason at a time and together."""
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import tar_export

    member = tar_export._Member  # pylint: disable=protected-access
    undecodable = os.fsdecode(b"d/\xff\xfe-name")
    out = []
    for name, kind, link in (("d/" + "n" * 150, b"0", ""), ("d/caf\u00e9", b"0", ""), (undecodable, b"0", ""),
                             ("short", b"2", "t/" + "x" * 120), ("l\u00e9", b"2", "\u00e9" * 3),
                             ("x" * 100, b"5", ""), ("y" * 101, b"1", "z" * 101)):
        out.append(member(name, kind, 0o755, (1000, 1000), 1700000000))
    big = member("big", b"0", 0o644, (0o10000000, 0o7777777), 8 ** 11)
    big.size = 8 ** 11
    out.append(big)
    edge = member("edge", b"0", 0o4755, (0o7777777, 0), 8 ** 11 - 1)
    edge.size = 8 ** 11 - 1
    out.append(edge)
    for headers in ({"SCHILY.xattr.user.a": "value"},
                    {"SCHILY.xattr.security.capability": os.fsdecode(b"\x01\x00\x00\x02\xff"),
                     "hdrcharset": "BINARY"},
                    {"SCHILY.xattr.trusted.caf\u00e9": "v", "SCHILY.xattr.user.b": "w" * 600}):
        for name in ("plain", "p/" + "q" * 200, undecodable):
            entry = member(name, b"0", 0o600, (0, 0), 5)
            entry.pax_headers = dict(headers)
            out.append(entry)
    device = member("dev/sda", b"4", 0o660, (0, 6), 1)
    device.devmajor, device.devminor = 8, 0o7777777
    device.pax_headers = {"SCHILY.xattr.user.x": "y"}
    out.append(device)
    return out


@pytest.mark.parametrize("index", range(len(_members())))
def test_pax_headers_are_the_bytes_tarfile_writes(index):
    """The exporter writes PAX headers itself (no tarfile import): byte for byte what tarfile's PAX_FORMAT
    writes for the same entry, so a layer exported before and after has the same diff_id."""
    member = _members()[index]
    ours = member._pax_header()  # pylint: disable=protected-access
    assert ours == member._tarfile_header()  # pylint: disable=protected-access
    assert len(ours) % 512 == 0
    if member.size < 512:
        back = tarfile.open(fileobj=io.BytesIO(ours + b"\0" * 1536))
        assert back.getmembers()[0].name == member.name


def test_a_directory_swapped_for_a_symlink_after_the_walk_is_not_read_through(scratch):
    """Files are opened by name in their directory's fd, each directory opened from its parent's with
    O_NOFOLLOW: one swapped for a link to a secret after the walk (its fd closed when changes_dirs
    returned) fails the export instead of reading it."""
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError

    new, outside = os.path.join(scratch, "new"), os.path.join(scratch, "outside")
    os.makedirs(os.path.join(new, "d"))
    os.makedirs(outside)
    for where, text in ((os.path.join(new, "d", "f"), "layer's own\n"), (os.path.join(outside, "f"), "secret\n")):
        with open(where, "w") as f:
            f.write(text)
    changes = changes_dirs(new)
    for change in changes:
        if change.entry is not None:
            change.entry.stat(follow_symlinks=False)  # as the walk would have, for a modified file
    view_dirs.release_path_roots()  # the stats opened d/ again: closed, as changes_dirs left it
    os.rename(os.path.join(new, "d"), os.path.join(new, "moved"))
    os.symlink(outside, os.path.join(new, "d"))
    out = io.BytesIO()
    with pytest.raises(OverlayError, match="refusing to read it"):
        export_changes(new, changes, out)
    assert b"secret" not in out.getvalue()


def _in_a_child(body):
    """body() run in a forked child; what it returns (a short text), or its error as text."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            answer = str(body())
        except BaseException as e:  # pylint: disable=broad-except  # the test reads it
            answer = "%s: %s" % (type(e).__name__, e)
        os.write(write_end, answer.encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        answer = f.read().decode()
    os.waitpid(pid, 0)
    return answer


def test_an_export_under_a_low_open_file_limit_succeeds(scratch):
    """A soft RLIMIT_NOFILE a little above what the process holds is enough: the export holds one file's
    descriptor at a time beside the walk's directories, however many files the layer has."""
    import resource

    tree = os.path.join(scratch, "tree")
    os.makedirs(os.path.join(tree, "d"))
    for number in range(200):
        with open(os.path.join(tree, "d", "f%03d" % number), "wb") as f:
            f.write(b"x" * (number + 1))
    changes = changes_dirs(tree)

    def export():
        fill_descriptor_gaps()  # closed with the child
        held = len(os.listdir("/proc/self/fd"))
        resource.setrlimit(resource.RLIMIT_NOFILE, (held + 12, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        out = io.BytesIO()
        diff_id = export_changes(tree, changes, out)[0]
        with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as archive:
            sizes = sorted(m.size for m in archive.getmembers() if m.isfile())
        assert diff_id == "sha256:" + hashlib.sha256(out.getvalue()).hexdigest()
        return sizes == list(range(1, 201))

    assert _in_a_child(export) == "True"


def test_a_file_the_open_file_limit_keeps_shut_is_said_so(scratch):
    """EMFILE is no symlink swap: the error names the limit and how to raise it."""
    import resource

    tree = os.path.join(scratch, "tree")
    os.makedirs(tree)
    with open(os.path.join(tree, "f"), "wb") as f:
        f.write(b"x")
    changes = changes_dirs(tree)
    root = view_dirs.Dir.open_path(tree)

    def export():
        fill_descriptor_gaps()  # closed with the child
        held = len(os.listdir("/proc/self/fd")) - 1  # the listing's own descriptor is closed again
        resource.setrlimit(resource.RLIMIT_NOFILE, (held, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        export_changes(root, changes, io.BytesIO())
        return "exported"

    answer = _in_a_child(export)
    assert "the open-file limit, RLIMIT_NOFILE, is" in answer and "ulimit -n" in answer, answer
