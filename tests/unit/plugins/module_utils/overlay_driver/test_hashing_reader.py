"""The read-ahead reader: the uncompressed bytes, counted and hashed whole, however they are read."""

import gzip
import io

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import LayerFormatError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.hashing_reader import HashingReader
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.tar_headers import iter_entries

from layertools import TarBuilder, sha256

LAYER = TarBuilder().dir("etc").file("etc/os-release", "ID=debian\n" * 200).symlink("l", "etc").bytes()


def test_trailing_nul_padding_is_accepted_and_hashed():
    padded = LAYER + b"\x00" * 8192
    reader = HashingReader(io.BytesIO(padded))
    assert len(list(iter_entries(reader))) == 3
    assert reader.digest() == sha256(padded)


def test_reads_across_chunks_count_and_hash_every_byte():
    data = bytes(range(256)) * (HashingReader.QUEUE_CHUNKS * 8192 + 7)  # several read-ahead chunks
    reader = HashingReader(io.BytesIO(gzip.compress(data)))
    try:
        got = [reader.read(1000), bytes(reader.read_view(300))]
        reader.skip(1 << 20, "a skipped stretch")
        got.append(reader.read_exact(5, "five bytes"))
        assert reader.offset == 1000 + 300 + (1 << 20) + 5
        while True:
            part = reader.read(3 << 20)  # longer than a chunk
            if not part:
                break
            got.append(part)
    finally:
        reader.close()
    assert reader.compression == "gzip"
    assert b"".join(got) == data[:1300] + data[1300 + (1 << 20):]
    assert reader.digest() == sha256(data)


def test_a_short_stream_is_truncated_where_more_was_needed():
    reader = HashingReader(io.BytesIO(b"x" * 100))
    try:
        with pytest.raises(LayerFormatError, match=r"ends inside a tar header \(offset 100\): truncated"):
            reader.read_exact(512, "a tar header")
    finally:
        reader.close()
    reader = HashingReader(io.BytesIO(b"x" * 100))
    try:
        with pytest.raises(LayerFormatError, match="ends inside the data of 'f'"):
            reader.skip(200, "the data of 'f'")
    finally:
        reader.close()


def test_only_nuls_may_follow_the_end_of_the_archive():
    reader = HashingReader(io.BytesIO(b"\x00" * 700 + b"junk" + b"\x00" * 10))
    try:
        with pytest.raises(LayerFormatError, match=r"trailing data after the end of the tar archive \(offset 704\)"):
            reader.drain_zeros()
    finally:
        reader.close()


def test_decompression_errors_reach_the_reader():
    reader = HashingReader(io.BytesIO(gzip.compress(LAYER)[:-20]))
    try:
        with pytest.raises(LayerFormatError, match="gzip"):
            while reader.read(1 << 16):
                pass
    finally:
        reader.close()
