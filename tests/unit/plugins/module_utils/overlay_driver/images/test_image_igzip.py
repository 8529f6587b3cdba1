"""images/igzip.py: an image's gzip layer through the igzip program, its verdicts held to zlib's."""

import gzip
import io
import shutil
import struct
import subprocess
import zlib

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import decompress
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import LayerFormatError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images import igzip

from layertools import TarBuilder, read_all

LAYER = TarBuilder().dir("etc").file("etc/os-release", "ID=debian\n" * 200).symlink("l", "etc").bytes()
HALF = len(LAYER) // 1024 * 512

# what may follow a gzip stream (compression, tail, accepted), as test_decompress.py's FRAMING
FRAMING = [
    ("gzip", lambda c: b"\x00" * 8, True),
    ("gzip", lambda c: b"junk", False),
    ("gzip", lambda c: c(b"\x00" * 1024), True),
    ("gzip", lambda c: b"\x00" * 8 + c(b"\x00" * 1024), False),  # gzip -dc and tar refuse it (exit 2)
]
COMPRESSORS = {"gzip": gzip.compress}

IGZIP = shutil.which("igzip")
needs_igzip = pytest.mark.skipif(IGZIP is None, reason="the igzip program (Debian's isal) is not installed")


def read_through_igzip(packed):
    """What staging gets: igzip's answer, or, after a GzipRecheck, zlib's. (bytes, rechecked)"""
    reader, compression = decompress.open_decompressed(io.BytesIO(packed), "gzip", igzip.igzip_reader)
    assert compression == "gzip"
    out = []
    try:
        if type(reader).__name__ != "IgzipProcess":  # not chosen (a first member zlib refuses): rechecked
            raise igzip.GzipRecheck("not chosen")
        while True:
            data = reader.read(1 << 16)
            if not data:
                return b"".join(out), False
            out.append(data)
    except igzip.GzipRecheck:
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
@pytest.mark.parametrize("compression,tail,accepted", FRAMING,
                         ids=["gzip-%d" % i for i in range(len(FRAMING))])
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
    monkeypatch.setenv("STRATA_OVERLAY_DISABLE_IGZIP", "1")
    reader = decompress.open_decompressed(io.BytesIO(gzip.compress(LAYER)), "gzip", igzip.igzip_reader)[0]
    assert type(reader).__name__ == "_StrictStreams"
    monkeypatch.setenv("STRATA_OVERLAY_DISABLE_IGZIP", "0")
    reader = decompress.open_decompressed(io.BytesIO(gzip.compress(LAYER)), "gzip", igzip.igzip_reader)[0]
    assert type(reader).__name__ == "IgzipProcess"
    reader.close()


def test_without_igzip_a_gzip_layer_is_zlibs(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    reader = decompress.open_decompressed(io.BytesIO(gzip.compress(LAYER)), "gzip", igzip.igzip_reader)[0]
    assert type(reader).__name__ == "_StrictStreams"
    assert reader.read(1 << 20)[:3] == b"etc"


class _Bits:
    """Deflate's bit order: fields LSB first, Huffman codes MSB first."""
    def __init__(self):
        self.bits = []

    def field(self, value, n):
        self.bits.extend((value >> i) & 1 for i in range(n))

    def code(self, value, n):
        self.bits.extend((value >> i) & 1 for i in range(n - 1, -1, -1))

    def bytes(self):
        bits = self.bits + [0] * (-len(self.bits) % 8)
        return bytes(sum(bits[i + j] << j for j in range(8)) for i in range(0, len(bits), 8))


def _canonical(lengths):
    counts = [0] * 16
    for n in lengths:
        counts[n] += 1
    counts[0] = 0
    code, first = 0, [0] * 16
    for n in range(1, 16):
        code = (code + counts[n - 1]) << 1
        first[n] = code
    codes = []
    for n in lengths:
        codes.append(first[n])
        first[n] += 1 if n else 0
    return codes


def _dynamic_member(data, code_lengths=None, lit_lengths=None, distances=(1,)):
    """One gzip member: data as literals of a single dynamic block whose Huffman codes zlib may refuse.

    The defaults make every code set but the literal/length one complete: 257 codes of 9 bits fill half of it.
    """
    lit_lengths = lit_lengths or [9] * 257
    code_lengths = code_lengths or [4] * 16 + [0, 0, 0]
    w = _Bits()
    w.field(1, 1)
    w.field(2, 2)
    w.field(0, 5)  # HLIT: 257 literal/length codes
    w.field(len(distances) - 1, 5)
    w.field(15, 4)  # HCLEN: 19 code length codes
    for symbol in (16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15):
        w.field(code_lengths[symbol], 3)
    cl_codes = _canonical(code_lengths)
    for n in lit_lengths + list(distances):
        w.code(cl_codes[n], code_lengths[n])
    lit_codes = _canonical(lit_lengths)
    for byte in data:
        w.code(lit_codes[byte], lit_lengths[byte])
    w.code(lit_codes[256], lit_lengths[256])
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    return header + w.bytes() + struct.pack("<II", zlib.crc32(data), len(data))


def _reserved_flag(data):
    packed = bytearray(gzip.compress(data, mtime=0))
    packed[3] |= 0x20
    return bytes(packed)


# members zlib refuses (RFC 1952: reserved FLG bits must be zero; inflate refuses Huffman code sets that do
# not fill their code space) and ISA-L's inflate decodes, exiting 0
ZLIB_REFUSES = {
    "reserved-flag-bit": (_reserved_flag, "unknown header flags set"),
    "incomplete-literal-codes": (_dynamic_member, "invalid literal/lengths set"),
    "incomplete-distance-codes": (lambda d: _dynamic_member(d, lit_lengths=[8] * 255 + [9] * 2, distances=(2,)),
                                  "invalid distances set"),
    "incomplete-code-length-codes": (lambda d: _dynamic_member(d, code_lengths=[0, 2] + [0] * 7 + [1] + [0] * 9),
                                     "invalid code lengths set"),
}


@pytest.mark.parametrize("shape", sorted(ZLIB_REFUSES))
def test_a_member_zlib_refuses_is_refused_without_igzip(shape):
    make, message = ZLIB_REFUSES[shape]
    with pytest.raises(LayerFormatError, match=message):
        read_all(make(LAYER))


@needs_igzip
def test_a_first_member_with_reserved_flag_bits_is_left_to_zlib():
    reader = decompress.open_decompressed(io.BytesIO(_reserved_flag(LAYER)), "gzip", igzip.igzip_reader)[0]
    assert type(reader).__name__ == "_StrictStreams"
    with pytest.raises(decompress.DECOMPRESS_ERRORS, match="unknown header flags set"):
        reader.read(1 << 20)


# what igzip decodes inside a member and zlib refuses as malformed: its answer stands (docs/images.md), the one
# content such a code can mean, which staging then holds to the config's diff_id
IGZIP_DECODES = {
    "incomplete-literal-codes": lambda: _dynamic_member(LAYER),
    "incomplete-distance-codes": lambda: _dynamic_member(LAYER, lit_lengths=[8] * 255 + [9] * 2, distances=(2,)),
    "incomplete-code-length-codes": lambda: _dynamic_member(LAYER, code_lengths=[0, 2] + [0] * 7 + [1] + [0] * 9),
    "reserved-flag-bit-on-a-later-member": lambda: gzip.compress(LAYER[:HALF], mtime=0) + _reserved_flag(LAYER[HALF:]),
}


@needs_igzip
@pytest.mark.parametrize("shape", sorted(IGZIP_DECODES))
def test_what_igzip_decodes_inside_a_member_is_the_one_content_it_can_mean(shape):
    out, rechecked = read_through_igzip(IGZIP_DECODES[shape]())
    assert out == LAYER and not rechecked


# a blob that ends inside a member's header (an extra field of a given length, a name or a comment not ended):
# the sentinel member's header must not be taken into it, or igzip would end with the sentinel's bytes and
# exit status 0 while zlib finds the stream truncated
OPEN_HEADERS = {
    "extra-field-of-10": b"\x1f\x8b\x08\x04" + b"\x00" * 4 + b"\x00\xff" + struct.pack("<H", 10),
    "extra-field-of-11": b"\x1f\x8b\x08\x04" + b"\x00" * 4 + b"\x00\xff" + struct.pack("<H", 11),
    "name": b"\x1f\x8b\x08\x08" + b"\x00" * 4 + b"\x00\xff" + b"layer",
    "comment": b"\x1f\x8b\x08\x10" + b"\x00" * 4 + b"\x00\xff",
    "extra-then-name": b"\x1f\x8b\x08\x0c" + b"\x00" * 4 + b"\x00\xff" + struct.pack("<H", 4),
}


@needs_igzip
@pytest.mark.parametrize("shape", sorted(OPEN_HEADERS))
def test_a_member_header_left_open_cannot_take_in_the_sentinel(shape):
    with pytest.raises(LayerFormatError, match="stream 2 ends before its end marker"):
        read_through_igzip(gzip.compress(LAYER, mtime=0) + OPEN_HEADERS[shape])


def test_the_sentinel_member_has_an_extra_field_of_random_length_and_no_nul_in_it():
    lengths = set()
    for _round in range(8):
        member = igzip._sentinel_member(b"x" * 32)  # pylint: disable=protected-access
        assert gzip.decompress(member) == b"x" * 32  # a member any gzip reader takes
        length = struct.unpack("<H", member[10:12])[0]
        assert member[3] == 4 and b"\x00" not in member[12:12 + length]
        lengths.add(length)
    assert len(lengths) > 1


def drawing(monkeypatch, values):
    """os.urandom, its 2-byte draws (the sentinel's extra field length) taken from values in turn."""
    import os  # pylint: disable=import-outside-toplevel

    real = os.urandom
    draws = iter(values)

    def urandom(n):
        return struct.pack("<H", next(draws)) if n == 2 else real(n)
    monkeypatch.setattr(igzip.os, "urandom", urandom)
    return igzip


# the extra field's length is what a blob ending in an open extra field must guess: each length must be as
# likely as any other, or the likelier ones are the guess (a 2-byte draw taken modulo 65524 made 0..11 twice
# as likely)
@pytest.mark.parametrize("draws, length", [((0,), 0), ((11,), 11), ((65523,), 65523), ((65524, 65535, 7), 7)],
                         ids=["0", "11", "65523", "past-the-range-drawn-again"])
def test_the_sentinel_extra_field_length_is_one_draw_per_length(monkeypatch, draws, length):
    drawn = drawing(monkeypatch, draws)
    member = drawn._sentinel_member(b"x" * 32)  # pylint: disable=protected-access
    assert struct.unpack("<H", member[10:12])[0] == length


@needs_igzip
def test_a_blob_whose_open_extra_field_guesses_a_length_past_the_range_is_refused(monkeypatch):
    # the blob's open extra field takes 17 bytes: the sentinel's header when its own extra field is 5 long.
    # A draw of 65529 must not make that length
    drawing(monkeypatch, (65529, 100))
    open_extra = b"\x1f\x8b\x08\x04" + b"\x00" * 4 + b"\x00\xff" + struct.pack("<H", 12 + 5)
    with pytest.raises(LayerFormatError, match="stream 2 ends before its end marker"):
        read_through_igzip(gzip.compress(LAYER, mtime=0) + open_extra)


@needs_igzip
def test_a_recheck_is_raised_again_by_every_later_read():
    # as VerifyingReader's errors: a reader that swallowed it once must not read on to a clean end
    reader = decompress.open_decompressed(io.BytesIO(gzip.compress(LAYER) + b"junk"), "gzip", igzip.igzip_reader)[0]
    try:
        with pytest.raises(igzip.GzipRecheck):
            while reader.read(1 << 16):
                pass
        with pytest.raises(igzip.GzipRecheck):
            reader.read(1 << 16)
    finally:
        reader.close()
