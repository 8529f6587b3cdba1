# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decompressing a layer tarball, strictly.

tarfile's gzip reader and lzma.LZMAFile / bz2.BZ2File stop silently at a
truncated stream or at junk after one, so a damaged layer would hash and
apply as a shorter one. The stdlib's decompressor objects are driven here
stream by stream, with the framing xz, gzip and bzip2 themselves accept;
zstd goes through the python zstandard module or the zstd program, whose
exit status is checked. An image's gzip layer may go through the igzip
program (images/igzip.py), handed in by the caller as gzip_reader.
"""

import io
import threading
import zlib

from .errors import LayerFormatError

CHUNK = 1 << 20

COMPRESSIONS = ("auto", "none", "gzip", "bzip2", "xz", "zstd")
_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)

# what the stdlib's decompressors raise on damaged input (_XzDecompressor turns LZMAError into ValueError,
# so lzma is loaded only by xz layers)
DECOMPRESS_ERRORS = (EOFError, OSError, zlib.error, ValueError)


class _Prefixed(io.RawIOBase):
    """Give back bytes already peeked, then the rest of the stream."""

    def __init__(self, prefix, raw):
        super(_Prefixed, self).__init__()
        self._prefix = prefix
        self._raw = raw

    def readable(self):
        return True

    def readinto(self, b):
        if self._prefix:
            n = min(len(b), len(self._prefix))
            b[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = self._raw.read(len(b))
        n = len(data)
        b[:n] = data
        return n


def detect_compression(head):
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return "none"


def feed(raw, write, close, tail=None):
    """A decompressing program's input: raw's bytes written to its end, then tail() if given, and the input
    closed whatever happens (the program then ends). (bytes of raw written, the OSError or ValueError met)"""
    fed = 0
    try:
        while True:
            data = raw.read(CHUNK)
            if not data:
                break
            fed += len(data)
            write(data)
        if tail is not None:
            write(tail())
    except (OSError, ValueError) as e:
        return fed, e
    finally:
        try:
            close()
        except OSError:
            pass
    return fed, None


class _ZstdProcess(io.RawIOBase):
    """zstd -dc fed from a thread; its exit status is checked at the end."""

    def __init__(self, raw):
        super(_ZstdProcess, self).__init__()
        import shutil  # pylint: disable=import-outside-toplevel
        import subprocess  # pylint: disable=import-outside-toplevel

        exe = shutil.which("zstd")
        self._proc = subprocess.Popen([exe, "-dc", "-q"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE)
        self._feed_error = None
        self._feeder = threading.Thread(target=self._feed, args=(raw,), daemon=True)
        self._feeder.start()

    def _feed(self, raw):
        self._feed_error = feed(raw, self._proc.stdin.write, self._proc.stdin.close)[1]

    def readable(self):
        return True

    def readinto(self, b):
        n = self._proc.stdout.readinto(b)
        if n == 0:
            self.check()
        return n

    def check(self):
        self._feeder.join()
        rc = self._proc.wait()
        if rc != 0:
            err = self._proc.stderr.read().decode("utf-8", "replace").strip()
            raise LayerFormatError("zstd stream is corrupt or truncated: %s" % (err or "exit %d" % rc))

    def close(self):
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        for f in (self._proc.stdout, self._proc.stderr):
            f.close()
        super(_ZstdProcess, self).close()


def _zstd_reader(raw):
    try:
        import zstandard  # pylint: disable=import-outside-toplevel
    except ImportError:
        zstandard = None
    if zstandard is not None:
        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    import shutil  # pylint: disable=import-outside-toplevel

    if shutil.which("zstd"):
        return _ZstdProcess(raw)
    raise LayerFormatError("the layer is zstd-compressed, but neither the zstd program nor the "
                           "python zstandard module is installed on this host")


class _GzipMember:
    """zlib's gzip decoder (header, CRC-32 and length checked) with the lzma/bz2 decompressor interface."""

    def __init__(self):
        self._d = zlib.decompressobj(31)
        self._tail = b""

    @property
    def needs_input(self):
        return not self._tail

    @property
    def eof(self):
        return self._d.eof

    @property
    def unused_data(self):
        return self._d.unused_data

    def decompress(self, data, max_length):
        out = self._d.decompress(data or self._tail, max_length)
        self._tail = self._d.unconsumed_tail
        return out


# liblzma allocates the dictionary an xz header names (up to 1.5 GiB) before the first byte. zstd's default
# bound is 128 MiB (xz -9 needs 64); sizes go 2^n, 2^n + 2^(n-1): 132 MiB admits 128 and refuses 192.
XZ_MEMLIMIT = 132 << 20


class _XzDecompressor:
    """lzma's decompressor for xz (not FORMAT_AUTO: .lzma is another format), its LZMAError raised as a
    ValueError, one of DECOMPRESS_ERRORS."""

    def __init__(self):
        import lzma  # pylint: disable=import-outside-toplevel

        self._error = lzma.LZMAError
        self._d = lzma.LZMADecompressor(lzma.FORMAT_XZ, memlimit=XZ_MEMLIMIT)

    @property
    def eof(self):
        return self._d.eof

    @property
    def unused_data(self):
        return self._d.unused_data

    @property
    def needs_input(self):
        return self._d.needs_input

    def decompress(self, data, max_length):
        try:
            return self._d.decompress(data, max_length)
        except self._error as e:
            if "memory usage limit" in str(e).lower():
                raise ValueError("its dictionary needs more than the %d MiB of memory a layer is decompressed "
                                 "with (a dictionary of at most 128 MiB, as zstd's default window; xz -9 uses 64 MiB): "
                                 "compress it again with a smaller one" % (XZ_MEMLIMIT >> 20)) from e
            raise ValueError(str(e)) from e


def _bz2_decompressor():
    import bz2  # pylint: disable=import-outside-toplevel

    return bz2.BZ2Decompressor()


class _StrictStreams:
    """gzip, xz or bzip2 decompressed stream by stream, strict about what follows each one.

    lzma.LZMAFile and bz2.BZ2File stop silently at anything after a stream
    that does not decompress, so junk after the data passed unnoticed, and
    LZMAFile took xz's own stream padding for junk; gzip.GzipFile reads a
    member after NUL padding that gzip(1) and tar refuse. As `xz -dc` does,
    an xz stream may be followed by NUL padding in multiples of four bytes,
    then another stream or the end; a gzip or bzip2 stream by another stream,
    or by NUL padding up to the end (as gzip, bzip2 and tar accept). Anything
    else is an error, so the bytes hashed are the ones the reference tools give.
    """

    def __init__(self, source, compression):
        self._source = source
        self._name = compression
        if compression == "gzip":
            self._new = _GzipMember
            self._magic = _MAGIC[0][0]
            self._padding_unit = 1
            self._stream_after_padding = False
        elif compression == "xz":
            self._new = _XzDecompressor
            self._magic = _MAGIC[2][0]
            self._padding_unit = 4
            self._stream_after_padding = True
        else:
            self._new = _bz2_decompressor
            self._magic = _MAGIC[1][0]
            self._padding_unit = 1
            self._stream_after_padding = False
        # zlib hands back what it did not take as a new bytes object: small input keeps that copy small
        self._input_size = 1 << 16 if compression == "gzip" else CHUNK
        self._decompressor = self._new()
        self._pending = b""
        self._streams = 1
        self._done = False

    def _input(self):
        data, self._pending = self._pending, b""
        return data or self._source.read(self._input_size)

    def read(self, size):
        while not self._done:
            d = self._decompressor
            if d is None:
                self._next_stream()
                continue
            if d.needs_input:
                data = self._input()
                if not data:
                    raise LayerFormatError("cannot decompress the layer (%s): stream %d ends before its end marker "
                                           "(truncated)" % (self._name, self._streams))
            else:
                data = b""
            out = d.decompress(data, size)
            if d.eof:
                self._pending = d.unused_data
                self._decompressor = None
            if out:
                return out
        return b""

    def _next_stream(self):
        """After a stream: padding, then another stream or the end."""
        padding = 0
        while True:
            data = self._input()
            if not data:
                if padding % self._padding_unit:
                    raise LayerFormatError("%d bytes of padding after %s stream %d (xz pads in multiples of 4)"
                                           % (padding, self._name, self._streams))
                self._done = True
                return
            rest = data.lstrip(b"\x00")
            padding += len(data) - len(rest)
            if rest:
                break
        if padding % self._padding_unit or (padding and not self._stream_after_padding):
            raise LayerFormatError("trailing data after %s stream %d, past %d bytes of NUL padding"
                                   % (self._name, self._streams, padding))
        if len(rest) < len(self._magic):
            # a BufferedReader's read(n) reads on until it has n bytes or the stream ends: no loop of our own
            rest += self._source.read(len(self._magic) - len(rest))
        if not rest.startswith(self._magic):
            raise LayerFormatError("trailing data after %s stream %d: neither padding nor another %s stream"
                                   % (self._name, self._streams, self._name))
        self._pending = rest
        self._decompressor = self._new()
        self._streams += 1

    def close(self):
        self._decompressor = None


def open_decompressed(raw, compression="auto", gzip_reader=None):
    """A reader of uncompressed bytes, and the compression that was used.

    gzip_reader(source, head): another reader for a gzip stream, or None to
    leave it to zlib (images/igzip.py, whose reader may ask for a second read).
    """
    if compression not in COMPRESSIONS:
        raise LayerFormatError("unknown compression %r (one of %s)" % (compression, ", ".join(COMPRESSIONS)))
    head = raw.read(6)
    if compression == "auto":
        compression = detect_compression(head)
    source = io.BufferedReader(_Prefixed(head, raw), CHUNK)
    if compression == "none":
        return source, compression
    if compression == "gzip" and gzip_reader is not None:
        reader = gzip_reader(source, head)
        if reader is not None:
            return reader, compression
    if compression in ("gzip", "bzip2", "xz"):
        return _StrictStreams(source, compression), compression
    return _zstd_reader(source), compression
