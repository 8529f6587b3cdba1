"""Parsing tar headers: GNU and PAX names and times, numbers, and bounded metadata."""

import gzip
import io
import subprocess

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import tar_headers
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import LayerFormatError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.hashing_reader import HashingReader
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.tar_headers import Limits, iter_entries, parse_pax

from layertools import TarBuilder, pax_block, read_all


def test_gnu_long_names_and_pax_times():
    import tarfile
    long = "d/" + "n" * 150
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        info = tarfile.TarInfo(long)
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    _reader, names = read_all(buf.getvalue())
    assert names == [(long, "file")]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("t")
        info.mtime = 1700000000.5
        tf.addfile(info, io.BytesIO(b""))
    reader = HashingReader(io.BytesIO(buf.getvalue()))
    entry = next(iter_entries(reader))
    assert entry.mtime_ns == 1700000000500000000


def test_parse_pax_rejects_bad_lengths():
    assert parse_pax(b"12 path=abc\n") == {"path": b"abc"}
    assert parse_pax(b"12 path=abc\n" + b"\x00" * 100) == {"path": b"abc"}
    for bad in (b"99 path=abc\n", b"x path=abc\n", b"5 p\n", b"12 path=abcX"):
        with pytest.raises(LayerFormatError):
            parse_pax(bad)


def _parsed(buf):
    try:
        h = tar_headers.parse_header(buf)
        return (h.name, h.size, h.mode, h.uid, h.gid, h.mtime, h.type)
    except LayerFormatError as e:
        return str(e)


def test_one_pass_numbers_agree_with_the_field_by_field_decoder(monkeypatch):
    """Headers with damaged numeric fields decode the same with and without the one-pass fast path
    (a NUL ends a field, base-256, blanks, signs and underscores are not octal)."""
    import random
    import tarfile

    rng = random.Random(11)
    headers = []
    for fmt in (tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT):
        for i in range(20):
            info = tarfile.TarInfo("d/f%d" % i)
            info.size, info.uid = rng.randrange(10 ** rng.randrange(1, 12)), rng.randrange(3000000)
            info.mode, info.mtime = rng.randrange(0o7777), rng.randrange(2 ** 33)
            try:
                headers.append(info.tobuf(fmt)[-512:])
            except ValueError:
                pass  # too large for ustar
    samples = []
    for _sample in range(20000):
        buf = bytearray(rng.choice(headers))
        for _damage in range(rng.randrange(1, 5)):
            buf[rng.randrange(100, 160)] = rng.choice(b"01234567 \x00\x80\xff89+-_\t")
        if rng.random() < 0.7:  # a valid checksum, so the numbers themselves are reached
            buf[148:156] = b" " * 8
            buf[148:156] = b"%06o\x00 " % sum(buf)
        samples.append(bytes(buf))
    fast = [_parsed(buf) for buf in samples]
    monkeypatch.setattr(tar_headers, "_plain_octals", lambda buf: None)
    assert [_parsed(buf) for buf in samples] == fast
    assert sum(isinstance(r, tuple) for r in fast) > 5000  # most decode, so both paths were compared


# -- metadata bombs: PAX and GNU headers are bounded per header, per entry and per archive ------

ENTRY = TarBuilder(fmt=__import__("tarfile").USTAR_FORMAT).file("f", "x").bytes()[:1024]  # header + data block
END = b"\x00" * 1024


def test_pax_global_header_bomb_is_refused():
    """The reported bomb: global headers of ~1 MiB of distinct tiny records, one per entry, as gzip
    members of a few KB each (a few hundred of them held 272 MB and took minutes of CPU)."""
    def member(i):
        records = {"k%d.%d" % (i, j): b"v" for j in range(60000)}
        return gzip.compress(pax_block(records, b"g") + ENTRY)

    data = b"".join(member(i) for i in range(3)) + gzip.compress(END)
    with pytest.raises(LayerFormatError, match="pax header has more than 4096 records"):
        read_all(data)


def test_pax_keeps_only_the_keys_an_entry_uses():
    data = b"".join(b"%d %s=v\n" % (len(k) + 6, k) for k in (b"comment", b"ctime", b"hdrcharset", b"LIBARCHIVE.x"))
    data += b"13 path=name\n" + b"29 SCHILY.xattr.user.a=value\n"
    assert parse_pax(data) == {"path": b"name", "SCHILY.xattr.user.a": b"value"}
    # unused keys, however many headers carry them, never reach the global state
    records = [pax_block({"k%d.%d" % (i, j): b"v" for j in range(4000)}, b"g") + ENTRY for i in range(40)]
    _reader, names = read_all(b"".join(records) + END)
    assert names == [("f", "file")] * 40


def test_global_pax_state_is_capped():
    records = [pax_block({"SCHILY.xattr.user.k%d.%d" % (i, j): b"v" * 30 for j in range(400)}, b"g") + ENTRY
               for i in range(10)]
    with pytest.raises(LayerFormatError, match="global pax headers hold more than 65536 bytes"):
        read_all(b"".join(records) + END)


def test_metadata_headers_before_one_entry_are_capped():
    piled = b"".join(pax_block({"path": b"p" * 600000}) for _i in range(3))
    with pytest.raises(LayerFormatError, match="before the entry at offset .* exceed 1048576 bytes together"):
        read_all(piled + ENTRY + END)
    long_names = b"".join(_gnu_long_name(b"n" * 500000) for _i in range(3))
    with pytest.raises(LayerFormatError, match="exceed 1048576 bytes together"):
        read_all(long_names + ENTRY + END)


def _gnu_long_name(name):
    import tarfile

    info = tarfile.TarInfo("././@LongLink")
    info.type = tarfile.GNUTYPE_LONGNAME
    info.size = len(name) + 1
    return info.tobuf(format=tarfile.GNU_FORMAT) + name + b"\x00" * (-len(name) % 512 or 512)


def test_metadata_over_the_archive_is_capped():
    data = b"".join(pax_block({"path": b"f%d" % i}) + ENTRY for i in range(30)) + END
    reader = HashingReader(io.BytesIO(data))
    with pytest.raises(LayerFormatError, match="tar metadata headers exceed 200 bytes in the layer"):
        for entry in iter_entries(reader, Limits(max_meta_total=200)):
            reader.read_exact(entry.size, "data")


def test_pax_keys_and_records_are_capped():
    with pytest.raises(LayerFormatError, match="pax header key of 613 bytes exceeds the limit of 512"):
        read_all(pax_block({"SCHILY.xattr.user." + "k" * 595: b"v"}) + ENTRY + END)
    with pytest.raises(LayerFormatError, match="more than 4096 records"):
        read_all(pax_block({"a%d" % i: b"" for i in range(5000)}) + ENTRY + END)


def test_gnu_tar_posix_format_reads(scratch):
    """GNU tar's own PAX output (atime, ctime and mtime records for every entry) is not metadata abuse."""
    import os

    tree = os.path.join(scratch, "t")
    os.makedirs(os.path.join(tree, "d" * 120))
    with open(os.path.join(tree, "d" * 120, "f"), "w") as f:
        f.write("x")
    data = subprocess.run(["tar", "--format=posix", "-C", tree, "-cf", "-", "."], stdout=subprocess.PIPE,
                          check=True).stdout
    _reader, names = read_all(data)
    assert ("./" + "d" * 120 + "/f", "file") in names


def test_max_bytes_refuses_an_entry_before_its_data_is_read():
    """The bound is on the uncompressed stream, checked at each header: the entry that would pass it is refused
    before a byte of its data is read (so the applier never writes it), whatever the compression made of it."""
    data = TarBuilder().file("small", "x" * 100).file("big", "\0" * 200000).file("after", "y").bytes()
    squeezed = gzip.compress(data)
    assert len(squeezed) < 5000
    reader = HashingReader(io.BytesIO(squeezed), "auto")
    seen = []
    with pytest.raises(LayerFormatError) as e:
        for entry in iter_entries(reader, Limits(max_bytes=100000, max_bytes_name="max_layer_size")):
            seen.append(entry.name)
            reader.read_exact(entry.size, "data")
    assert seen == ["small"]
    assert "expands past max_layer_size (100000 bytes uncompressed) at entry 'big'" in str(e.value)
    assert reader.offset < 100000
    # the same stream within a bound it fits
    reader = HashingReader(io.BytesIO(squeezed), "auto")
    names = [entry.name for entry in iter_entries(reader, Limits(max_bytes=len(data))) if
             reader.read_exact(entry.size, "data") is not None]
    assert names == ["small", "big", "after"]


def test_type_flags_are_tarfiles():
    """The parser spells the type flags itself so that an apply does not load tarfile; they are tarfile's."""
    import tarfile
    for name in ("REGTYPE", "AREGTYPE", "LNKTYPE", "SYMTYPE", "CHRTYPE", "BLKTYPE", "DIRTYPE", "FIFOTYPE", "CONTTYPE",
                 "GNUTYPE_LONGNAME", "GNUTYPE_LONGLINK", "XHDTYPE", "XGLTYPE", "SOLARIS_XHDTYPE"):
        assert getattr(tar_headers, name) == getattr(tarfile, name), name
