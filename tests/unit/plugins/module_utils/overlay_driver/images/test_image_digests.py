"""ChainIDs, and the reader that proves a blob before its end is seen."""

import hashlib
import io
import socket

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import LayerFormatError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.digests import (
    VerifyingReader, chain_ids, parse_digest)
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.errors import BlobError, ImageError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.stream import CheckedStream

from imagetools import mkimages


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_chain_ids_follow_the_image_spec():
    a, b, c = digest(b"a"), digest(b"b"), digest(b"c")
    ab = "sha256:" + hashlib.sha256((a + " " + b).encode()).hexdigest()
    abc = "sha256:" + hashlib.sha256((ab + " " + c).encode()).hexdigest()
    assert chain_ids([a, b, c]) == [a, ab, abc]
    assert chain_ids([]) == []


def test_parse_digest():
    assert parse_digest("sha256:" + "0" * 64) == "sha256:" + "0" * 64
    for bad in ("sha256:" + "A" * 64, "sha256:123", "sha512:" + "0" * 128, "nodigest", None, 5):
        with pytest.raises(ImageError):
            parse_digest(bad)


def read_all(reader, n=7):
    out = []
    while True:
        data = reader.read(n)
        if not data:
            return b"".join(out)
        out.append(data)


def test_a_sound_blob_reads_whole():
    data = b"x" * 1000
    reader = VerifyingReader(io.BytesIO(data), digest(data), len(data))
    assert read_all(reader) == data
    assert reader.verified


@pytest.mark.parametrize("raw, size, fragment", [
    (b"x" * 999, 1000, "truncated"),
    (b"x" * 1001, 1000, "more bytes than the 1000"),
    (b"y" * 1000, 1000, "content has digest"),
])
def test_lies_fail_before_eof(raw, size, fragment):
    reader = VerifyingReader(io.BytesIO(raw), digest(b"x" * 1000), size, image="img")
    with pytest.raises(BlobError) as e:
        read_all(reader)
    assert fragment in e.value.message
    assert e.value.message.startswith("image img, blob sha256:")
    assert isinstance(e.value, LayerFormatError)
    with pytest.raises(BlobError):  # sticky
        reader.read(1)


def test_excess_is_seen_at_the_first_extra_byte():
    """A server that never stops sending is cut off right after the promised size."""
    class Endless(io.RawIOBase):
        served = 0

        def read(self, n=-1):
            self.served += n
            return b"x" * n
    raw = Endless()
    reader = VerifyingReader(raw, digest(b"x" * 100), 100)
    with pytest.raises(BlobError):
        read_all(reader, 64)
    assert raw.served <= 101


def test_a_stall_is_a_timeout_error():
    class Stalling:
        def __init__(self):
            self.calls = 0

        def read(self, n):
            self.calls += 1
            if self.calls > 1:
                raise socket.timeout("timed out")
            return b"x" * 10
    reader = VerifyingReader(Stalling(), digest(b"x" * 100), 100, image="img")
    with pytest.raises(BlobError) as e:
        read_all(reader, 10)
    assert "stalled after 10 bytes" in e.value.message


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_checked_stream_reports_the_blob_error_not_the_decompressor_symptom(compression):
    tar = mkimages.layer_tar([("a", b"hello" * 1000, 0o644)])
    blob = mkimages.compress(tar, compression)
    good = CheckedStream(VerifyingReader(io.BytesIO(blob), digest(blob), len(blob)), compression)
    assert read_all(good, 4096) == tar
    truncated = blob[:len(blob) // 2]
    bad = CheckedStream(VerifyingReader(io.BytesIO(truncated), digest(blob), len(blob), image="img"), compression)
    with pytest.raises(BlobError) as e:
        read_all(bad, 4096)
    assert "truncated" in e.value.message
    longer = blob + b"\0" * 10
    bad = CheckedStream(VerifyingReader(io.BytesIO(longer), digest(blob), len(blob)), compression)
    with pytest.raises(BlobError) as e:
        read_all(bad, 4096)
    assert "more bytes" in e.value.message


def test_checked_stream_reports_a_source_that_breaks():
    class Broken:
        def __init__(self):
            self.calls = 0

        def read(self, n):
            self.calls += 1
            if self.calls > 1:
                raise RuntimeError("disk on fire")
            return b"x" * 10
    stream = CheckedStream(VerifyingReader(Broken(), digest(b"x" * 100), 100, image="img"), "none", image="img")
    with pytest.raises(BlobError) as e:
        read_all(stream, 4)
    assert "reading failed after 10 bytes: RuntimeError: disk on fire" in e.value.message
    stream.close()


@pytest.mark.skipif(__import__("shutil").which("igzip") is None, reason="the igzip program is not installed")
def test_a_stream_closed_while_its_blob_stalls_leaves_no_igzip_feeder_behind():
    """Closed mid-way (the applier failed) while the blob's next read stalls: once that read ends, the thread
    that feeds igzip ends too, and closes igzip's input; it must not wait forever for a chunk that never comes."""
    import os  # pylint: disable=import-outside-toplevel
    import threading  # pylint: disable=import-outside-toplevel
    import time  # pylint: disable=import-outside-toplevel

    blob = mkimages.compress(os.urandom(4 << 20), "gzip")
    stalled, release = threading.Event(), threading.Event()

    class Stalling:
        def __init__(self):
            self.pos = 0

        def read(self, n):
            if self.pos >= 2 << 20:
                stalled.set()
                release.wait(30)
            data = blob[self.pos:self.pos + n]
            self.pos += len(data)
            return data
    before = set(threading.enumerate())
    stream = CheckedStream(VerifyingReader(Stalling(), digest(blob), len(blob)), "gzip", gzip_program=True)
    taken = 0
    while taken < 3 << 19:  # igzip took all it was given: its feeder waits for the blob's next chunk
        taken += len(stream.read(1 << 16))
    assert stalled.wait(30)
    time.sleep(0.5)
    stream.close()
    release.set()
    feeders = [t for t in set(threading.enumerate()) - before if t.name == "igzip-feeder"]
    deadline = time.monotonic() + 10
    for thread in feeders:
        thread.join(max(deadline - time.monotonic(), 0))
    assert not any(thread.is_alive() for thread in feeders)
