"""Reading layer streams: every compression, strict about damage, hashing the uncompressed bytes."""

import bz2
import gzip
import io
import lzma
import shutil
import subprocess

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import tar_stream
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import LayerFormatError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.tar_stream import (
    HashingReader, iter_entries, parse_pax)

from layertools import TarBuilder, sha256

LAYER = TarBuilder().dir("etc").file("etc/os-release", "ID=debian\n" * 200).symlink("l", "etc").bytes()


def zstd(data):
    return subprocess.run(["zstd", "-q", "-c"], input=data, stdout=subprocess.PIPE, check=True).stdout


COMPRESSORS = {
    "none": lambda d: d,
    "gzip": gzip.compress,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "zstd": zstd,
}


def read_all(data, compression="auto"):
    reader = HashingReader(io.BytesIO(data), compression)
    names = []
    for entry in iter_entries(reader):
        names.append((entry.name, entry.kind))
        if entry.size:
            reader.read_exact(entry.size, "data")
    return reader, names


@pytest.mark.parametrize("compression", sorted(COMPRESSORS))
def test_each_compression_auto_and_explicit(compression):
    packed = COMPRESSORS[compression](LAYER)
    for mode in ("auto", compression):
        reader, names = read_all(packed, mode)
        assert reader.compression == compression
        assert reader.digest() == sha256(LAYER)  # diff_id is of the uncompressed stream
        assert names == [("etc", "dir"), ("etc/os-release", "file"), ("l", "symlink")]


@pytest.mark.parametrize("compression", ["gzip", "bzip2", "xz", "zstd"])
def test_truncated_compressed_stream_is_an_error(compression):
    packed = COMPRESSORS[compression](LAYER)
    with pytest.raises(LayerFormatError):
        read_all(packed[: len(packed) * 2 // 3])


def test_zstd_corruption_is_caught_through_the_program():
    packed = bytearray(zstd(LAYER))
    packed[len(packed) // 2] ^= 0xFF
    with pytest.raises(LayerFormatError, match="zstd|truncated|invalid"):
        read_all(bytes(packed))


def test_zstd_without_any_decoder_says_so(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    monkeypatch.setitem(__import__("sys").modules, "zstandard", None)
    with pytest.raises(LayerFormatError, match="neither the zstd program nor the python zstandard"):
        read_all(zstd(LAYER))


def test_declared_compression_must_match():
    with pytest.raises(LayerFormatError, match="decompress"):
        read_all(LAYER, "gzip")
    with pytest.raises(LayerFormatError, match="unknown compression"):
        read_all(LAYER, "lz4")


def test_concatenated_gzip_members_are_one_stream():
    half = len(LAYER) // 1024 * 512
    packed = gzip.compress(LAYER[:half]) + gzip.compress(LAYER[half:])
    reader, names = read_all(packed)
    assert reader.digest() == sha256(LAYER) and len(names) == 3


def test_trailing_nul_padding_is_accepted_and_hashed():
    padded = LAYER + b"\x00" * 8192
    reader, _names = read_all(padded)
    assert reader.digest() == sha256(padded)


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
    for bad in (b"99 path=abc\n", b"x path=abc\n", b"5 p\n", b"12 path=abcX"):
        with pytest.raises(LayerFormatError):
            parse_pax(bad)


def test_detect_compression():
    assert tar_stream.detect_compression(b"\x1f\x8b\x08") == "gzip"
    assert tar_stream.detect_compression(b"BZh9") == "bzip2"
    assert tar_stream.detect_compression(b"\xfd7zXZ\x00") == "xz"
    assert tar_stream.detect_compression(b"\x28\xb5\x2f\xfd") == "zstd"
    assert tar_stream.detect_compression(b"etc/\x00") == "none"


def _parsed(buf):
    try:
        h = tar_stream.parse_header(buf)
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
    monkeypatch.setattr(tar_stream, "_plain_octals", lambda buf: None)
    assert [_parsed(buf) for buf in samples] == fast
    assert sum(isinstance(r, tuple) for r in fast) > 5000  # most decode, so both paths were compared
