"""Decompressing layer streams: every compression, strict about damage and about what follows a stream."""

import bz2
import gzip
import lzma
import shutil
import subprocess

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
