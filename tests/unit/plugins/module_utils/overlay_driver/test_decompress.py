"""Decompressing layer streams: every compression, strict about damage and about what follows a stream."""

import bz2
import gzip
import lzma
import shutil
import struct
import subprocess
import zlib

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.decompress import detect_compression
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import LayerFormatError

from layertools import TarBuilder, read_all, sha256

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


PROGRAMS = {"gzip": "gzip", "bzip2": "bzip2", "xz": "xz", "zstd": "zstd"}
HALF = len(LAYER) // 1024 * 512

# what may follow a compressed stream: (compression, tail, accepted); a tail is a function of the
# compressor, so it can hold a further stream
FRAMING = [
    ("xz", lambda c: b"\x00" * 8, True),  # stream padding, in multiples of 4 as xz requires
    ("xz", lambda c: b"\x00" * 3, False),  # xz -dc: "Compressed data is corrupt"
    ("xz", lambda c: b"junk", False),
    ("xz", lambda c: b"\x00" * 4 + b"junk", False),
    ("xz", lambda c: b"\x00" * 4 + c(b"\x00" * 1024), True),  # padding, then a further stream
    ("xz", lambda c: c(b"\x00" * 512), True),
    ("xz", lambda c: c(b"\x00" * 512)[:-3], False),  # a truncated second stream
    ("bzip2", lambda c: b"\x00" * 8, True),  # tar and bzip2 -dc accept NUL padding at the end
    ("bzip2", lambda c: b"junk", False),  # bzip2 -dc only warns ("trailing garbage ignored")
    ("bzip2", lambda c: b"\x00" * 2 + b"junk", False),
    ("bzip2", lambda c: c(b"\x00" * 1024), True),
    ("bzip2", lambda c: b"\x00" * 4 + c(b"\x00" * 1024), False),  # bzip2 -dc would drop that stream
    ("gzip", lambda c: b"\x00" * 8, True),
    ("gzip", lambda c: b"junk", False),
    ("gzip", lambda c: c(b"\x00" * 1024), True),
    ("gzip", lambda c: b"\x00" * 8 + c(b"\x00" * 1024), False),  # gzip -dc and tar refuse it (exit 2)
    ("zstd", lambda c: c(b"\x00" * 1024), True),
    ("zstd", lambda c: b"\x00" * 8, False),  # zstd -dc: "unsupported format"
    ("zstd", lambda c: b"junk", False),
]


@pytest.mark.parametrize("compression,tail,accepted", FRAMING,
                         ids=["%s-%d" % (c[0], i) for i, c in enumerate(FRAMING)])
def test_what_may_follow_a_compressed_stream(compression, tail, accepted):
    compress = COMPRESSORS[compression]
    packed = compress(LAYER[:HALF]) + compress(LAYER[HALF:]) + tail(compress)
    if not accepted:
        with pytest.raises(LayerFormatError, match="trailing data|padding|decompress|truncated|corrupt"):
            read_all(packed)
        return
    reader, names = read_all(packed)
    expected = subprocess.run([PROGRAMS[compression], "-dc"], input=packed, stdout=subprocess.PIPE,
                              check=True).stdout
    assert reader.digest() == sha256(expected)  # the bytes the reference program gives
    assert len(names) == 3


def test_detect_compression():
    assert detect_compression(b"\x1f\x8b\x08") == "gzip"
    assert detect_compression(b"BZh9") == "bzip2"
    assert detect_compression(b"\xfd7zXZ\x00") == "xz"
    assert detect_compression(b"\x28\xb5\x2f\xfd") == "zstd"
    assert detect_compression(b"etc/\x00") == "none"


@pytest.mark.parametrize("compression", ["xz", "bzip2"])
def test_a_corrupt_stream_is_a_layer_format_error(compression):
    """lzma's and bz2's own errors on damaged data (LZMAError, OSError) reach the caller as the layer's."""
    packed = bytearray(COMPRESSORS[compression](LAYER))
    packed[len(packed) // 2] ^= 0xFF
    with pytest.raises(LayerFormatError):
        read_all(bytes(packed))


def _xz_with_dictionary(data, megabytes):
    return lzma.compress(data, format=lzma.FORMAT_XZ,
                         filters=[{"id": lzma.FILTER_LZMA2, "dict_size": megabytes << 20, "mf": lzma.MF_HC3}])


def test_an_xz_layer_whose_dictionary_would_take_hundreds_of_mib_is_refused_before_it_is_allocated():
    """The header names the dictionary and liblzma allocates it whole: a layer of a few hundred bytes
    asking for 1.5 GiB would have had it. Refused with what to do instead."""
    packed = _xz_with_dictionary(LAYER, 192)
    assert len(packed) < 4096
    with pytest.raises(LayerFormatError, match=r"dictionary needs more than the 132 MiB .* compress it again"):
        read_all(packed)


@pytest.mark.parametrize("megabytes", [64, 128])
def test_an_xz_layer_with_the_dictionaries_xz_presets_and_zstd_allow_is_read(megabytes):
    reader, _names = read_all(_xz_with_dictionary(LAYER, megabytes))
    assert reader.digest() == sha256(LAYER)


# -- gzip through the igzip program (a registry's layers, whose blob can be read again) ----------

IGZIP = shutil.which("igzip")
needs_igzip = pytest.mark.skipif(IGZIP is None, reason="the igzip program (Debian's isal) is not installed")


def read_through_igzip(packed):
    """What staging gets: igzip's answer, or, after a GzipRecheck, zlib's. (bytes, rechecked)"""
    import io  # pylint: disable=import-outside-toplevel

    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import decompress

    reader, compression = decompress.open_decompressed(io.BytesIO(packed), "gzip", gzip_program=True)
    assert compression == "gzip" and type(reader).__name__ == "_IgzipProcess"
    out = []
    try:
        while True:
            data = reader.read(1 << 16)
            if not data:
                return b"".join(out), False
            out.append(data)
    except decompress.GzipRecheck:
        pass
    finally:
        reader.close()
    strict = decompress.open_decompressed(io.BytesIO(packed), "gzip")[0]
    out = []
    while True:
        try:
            data = strict.read(1 << 16)
        except decompress.DECOMPRESS_ERRORS as e:  # as CheckedStream turns them
            raise LayerFormatError("cannot decompress the layer (gzip): %s" % e) from e
        if not data:
            return b"".join(out), True
        out.append(data)


def random_bytes(n, seed=7):
    import random  # pylint: disable=import-outside-toplevel

    return random.Random(seed).randbytes(n)


@needs_igzip
@pytest.mark.parametrize("size", [0, 1, 1000, 70000, 3 << 20])
@pytest.mark.parametrize("padding", [0, 1, 8, 20000])
def test_one_member_through_igzip_is_taken_as_it_is(size, padding):
    # small outputs end their trailer in NULs (the length's high bytes), which padding must not swallow
    data = random_bytes(size)
    out, rechecked = read_through_igzip(gzip.compress(data, mtime=0) + b"\x00" * padding)
    assert out == data
    assert rechecked == bool(padding)  # zlib accepts NULs at the end, igzip stops there: zlib decides


@needs_igzip
def test_several_members_are_taken_as_igzip_gives_them():
    # eStargz's shape: a member per file, then a small TOC and footer
    parts = [random_bytes(50000, seed=i) for i in range(5)] + [b"toc" * 10]
    packed = b"".join(gzip.compress(p, mtime=0) for p in parts)
    out, rechecked = read_through_igzip(packed)
    assert out == b"".join(parts) and not rechecked


@needs_igzip
@pytest.mark.parametrize("compression,tail,accepted", [f for f in FRAMING if f[0] == "gzip"],
                         ids=["gzip-%d" % i for i, f in enumerate(FRAMING) if f[0] == "gzip"])
def test_igzip_leaves_what_may_follow_a_stream_to_zlib(compression, tail, accepted):
    # igzip stops without a word at junk, or at padding followed by a member: zlib's verdict stands
    compress = COMPRESSORS[compression]
    packed = compress(LAYER[:HALF]) + compress(LAYER[HALF:]) + tail(compress)
    if not accepted:
        with pytest.raises(LayerFormatError, match="trailing data|padding|decompress|truncated|corrupt"):
            read_through_igzip(packed)
        return
    out = read_through_igzip(packed)[0]
    assert out == subprocess.run(["gzip", "-dc"], input=packed, stdout=subprocess.PIPE, check=True).stdout


@needs_igzip
@pytest.mark.parametrize("damage", ["truncated", "crc", "length", "junk", "junk-forged",
                                    "member-after-padding", "half-magic", "empty"])
def test_a_damaged_gzip_stream_gets_zlibs_verdict_through_igzip(damage):
    data = random_bytes(200000)
    packed = bytearray(gzip.compress(data, mtime=0))
    if damage == "truncated":
        packed = packed[: len(packed) * 2 // 3]
    elif damage == "crc":
        packed[-6] ^= 1
    elif damage == "length":
        packed[-2] ^= 1
    elif damage == "junk":
        packed += b"junk after the member"
    elif damage == "junk-forged":
        # junk that ends with the trailer of what igzip gives, and junk that is a member after NULs
        packed += b"junk" + struct.pack("<II", zlib.crc32(data), len(data))
    elif damage == "member-after-padding":
        packed += b"\x00" * 8 + gzip.compress(data[-1024:], mtime=0)
    elif damage == "half-magic":
        packed += b"\x1f"
    else:
        packed = b""
    with pytest.raises(LayerFormatError) as e:
        read_through_igzip(bytes(packed))
    assert "igzip" not in str(e.value)  # the message is zlib's


@needs_igzip
def test_igzip_can_be_turned_off(monkeypatch):
    import io  # pylint: disable=import-outside-toplevel

    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import decompress

    monkeypatch.setenv(decompress.IGZIP_DISABLE_ENV, "1")
    reader = decompress.open_decompressed(io.BytesIO(gzip.compress(LAYER)), "gzip", gzip_program=True)[0]
    assert type(reader).__name__ == "_StrictStreams"
    monkeypatch.setenv(decompress.IGZIP_DISABLE_ENV, "0")
    reader = decompress.open_decompressed(io.BytesIO(gzip.compress(LAYER)), "gzip", gzip_program=True)[0]
    assert type(reader).__name__ == "_IgzipProcess"
    reader.close()


def test_without_igzip_a_gzip_layer_is_zlibs(monkeypatch):
    import io  # pylint: disable=import-outside-toplevel

    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import decompress

    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    reader = decompress.open_decompressed(io.BytesIO(gzip.compress(LAYER)), "gzip", gzip_program=True)[0]
    assert type(reader).__name__ == "_StrictStreams"
    assert reader.read(1 << 20)[:3] == b"etc"


@needs_igzip
def test_a_recheck_is_raised_again_by_every_later_read():
    # as VerifyingReader's errors: a reader that swallowed it once must not read on to a clean end
    import io  # pylint: disable=import-outside-toplevel

    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import decompress

    reader, _ = decompress.open_decompressed(io.BytesIO(gzip.compress(LAYER) + b"junk"), "gzip", gzip_program=True)
    try:
        with pytest.raises(decompress.GzipRecheck):
            while reader.read(1 << 16):
                pass
        with pytest.raises(decompress.GzipRecheck):
            reader.read(1 << 16)
    finally:
        reader.close()
