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
program, as containerd does (_IgzipProcess).
"""

import io
import os
import struct
import threading
import zlib

from .errors import LayerFormatError
from .fscheck import igzip_program

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
        try:
            while True:
                data = raw.read(CHUNK)
                if not data:
                    break
                self._proc.stdin.write(data)
        except (OSError, ValueError) as e:
            self._feed_error = e
        finally:
            try:
                self._proc.stdin.close()
            except OSError:
                pass

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


_SENTINEL_BYTES = 32


class GzipRecheck(LayerFormatError):
    """igzip's answer could not be proven to be zlib's: read the stream again with gzip_program=False."""


_MAX_EXTRA = 0xFFFF - 12  # the sentinel's extra field: its 12 bytes of header besides, 65535 at most


def _extra_length():
    """Uniform over 0.._MAX_EXTRA (not modulo: 0..11 would be twice as likely): a blob ending in an open extra
    field takes in the sentinel's header only if it guessed this length."""
    while True:
        length = struct.unpack("<H", os.urandom(2))[0]
        if length <= _MAX_EXTRA:
            return length


def _sentinel_member(data):
    """data as a gzip member behind an extra field of random length and bytes, no NUL among them (an open
    name or comment would end at one)."""
    extra = bytes(b % 255 + 1 for b in os.urandom(_extra_length()))
    packer = zlib.compressobj(1, zlib.DEFLATED, -15)
    body = packer.compress(data) + packer.flush()
    header = b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff" + struct.pack("<H", len(extra)) + extra
    return header + body + struct.pack("<II", zlib.crc32(data), len(data))


def _first_member_is_plain(head):
    """Deflate, no reserved flag bits (zlib refuses them, igzip reads on)."""
    return len(head) >= 4 and head[2] == 8 and not head[3] & 0xE0


def _widen_pipe(fd):
    """1 MiB, not 64 KiB: fewer wake-ups."""
    try:
        import fcntl  # pylint: disable=import-outside-toplevel

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), CHUNK)
    except (ImportError, OSError):
        pass


class _IgzipProcess:
    """igzip -dc, its framing held to zlib's (docs/images.md): its answer stands (`proven`) only when it exits 0
    and gives back the sentinel member fed after the blob; else GzipRecheck, and zlib reads the blob again."""

    def __init__(self, raw, exe):
        import subprocess  # pylint: disable=import-outside-toplevel

        self._sentinel = os.urandom(_SENTINEL_BYTES)
        self._proc = subprocess.Popen([exe, "-dc", "-q"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, bufsize=0)
        self._out = self._proc.stdout.fileno()
        _widen_pipe(self._out)
        _widen_pipe(self._proc.stdin.fileno())
        self._fed = 0
        self._feed_error = None
        self._held = b""  # its last _SENTINEL_BYTES may be the sentinel
        self._checked = False
        self._recheck = None
        self.proven = False  # igzip's answer stood (check)
        self._feeder = threading.Thread(target=self._feed, args=(raw,), name="igzip-feeder", daemon=True)
        try:
            self._feeder.start()
        except BaseException:
            self.close()
            self._proc.stdin.close()
            raise

    def _feed(self, raw):
        fd = self._proc.stdin.fileno()
        try:
            while True:
                data = raw.read(CHUNK)
                if not data:
                    break
                self._fed += len(data)
                self._write(fd, data)
            self._write(fd, _sentinel_member(self._sentinel))
        except (OSError, ValueError) as e:
            self._feed_error = e
        finally:
            try:
                self._proc.stdin.close()
            except OSError:
                pass

    @staticmethod
    def _write(fd, data):
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]

    def read(self, n=-1):
        while len(self._held) <= _SENTINEL_BYTES:
            data = os.read(self._out, CHUNK)
            if not data:
                self.check()
                return b""
            self._held = self._held + data if self._held else data
        give = len(self._held) - _SENTINEL_BYTES
        if n is not None and 0 <= n < give:
            give = n
        data, self._held = self._held[:give], self._held[give:]
        return data

    def check(self):
        """GzipRecheck unless igzip's answer stands, raised again by every later call."""
        if not self._checked:
            self._checked = True
            self._feeder.join()
            rc = self._proc.wait()
            if rc == 0 and self._feed_error is None and self._fed and self._held == self._sentinel:
                self.proven = True
            else:
                self._recheck = GzipRecheck("igzip's answer is not provably zlib's (exit status %d): the layer is "
                                            "read again through zlib" % rc)
        if self._recheck is not None:
            raise self._recheck

    def close(self):
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._proc.stdout.close()


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


def open_decompressed(raw, compression="auto", gzip_program=False):
    """A reader of uncompressed bytes, and the compression that was used.

    gzip_program: a gzip stream may go through the igzip program when the host
    has it; the reader then raises GzipRecheck at its end when the caller must
    read the stream again without it (_IgzipProcess says when).
    """
    if compression not in COMPRESSIONS:
        raise LayerFormatError("unknown compression %r (one of %s)" % (compression, ", ".join(COMPRESSIONS)))
    head = raw.read(6)
    if compression == "auto":
        compression = detect_compression(head)
    source = io.BufferedReader(_Prefixed(head, raw), CHUNK)
    if compression == "none":
        return source, compression
    if compression == "gzip" and gzip_program and _first_member_is_plain(head):
        exe = igzip_program()
        if exe:
            try:
                return _IgzipProcess(source, exe), compression
            except (OSError, RuntimeError):
                pass  # igzip cannot run here (another machine's binary, no interpreter, no thread): zlib reads it
    if compression in ("gzip", "bzip2", "xz"):
        return _StrictStreams(source, compression), compression
    return _zstd_reader(source), compression
