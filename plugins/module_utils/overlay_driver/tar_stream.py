# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading layer tarballs as untrusted streams.

tarfile's stream mode stops silently at a truncated or corrupt header and its
gzip reader ignores a truncated stream, so this module decompresses with the
stdlib's strict readers, hashes the uncompressed bytes (the diff_id), parses
each 512-byte header itself (with tarfile's header decoder, which checks the
checksum) and requires the end-of-archive marker followed by nothing but NULs.
"""

import bz2
import hashlib
import io
import lzma
import queue
import shutil
import struct
import subprocess
import tarfile
import threading
import zlib

from .errors import LayerFormatError

BLOCK = 512
CHUNK = 1 << 20

REGULAR = "file"
HARDLINK = "hardlink"
SYMLINK = "symlink"
CHAR = "char"
BLOCKDEV = "block"
DIRECTORY = "dir"
FIFO = "fifo"

_TYPES = {
    tarfile.REGTYPE: REGULAR, tarfile.AREGTYPE: REGULAR, tarfile.CONTTYPE: REGULAR,
    tarfile.LNKTYPE: HARDLINK, tarfile.SYMTYPE: SYMLINK, tarfile.CHRTYPE: CHAR,
    tarfile.BLKTYPE: BLOCKDEV, tarfile.DIRTYPE: DIRECTORY, tarfile.FIFOTYPE: FIFO,
}

COMPRESSIONS = ("auto", "none", "gzip", "bzip2", "xz", "zstd")
_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)


class Limits:
    """Bounds that keep a hostile archive from exhausting memory, CPU or inodes.

    Metadata headers (PAX and GNU long names) are bounded per header
    (max_meta), for all the headers before one entry together (max_entry_meta),
    and over the archive (max_meta_total); a PAX header holds at most
    max_pax_records records with keys of at most max_pax_key bytes, and the
    global PAX state, which applies to every later entry, at most
    max_global_pax bytes of the keys an entry uses. path_max bounds the full
    path of every entry where it is applied: PATH_MAX less the NUL and 256
    bytes for the longer paths the layer is copied to later (a child's temp
    directory, layer ids of up to 128 bytes).
    """

    def __init__(self, max_entries=4000000, max_name=4096, max_component=255, max_meta=1 << 20,
                 max_entry_meta=1 << 20, max_meta_total=1 << 30, max_pax_records=4096, max_pax_key=512,
                 max_global_pax=64 << 10, path_max=4096 - 1 - 256):
        self.max_entries = max_entries
        self.max_name = max_name
        self.max_component = max_component
        self.max_meta = max_meta
        self.max_entry_meta = max_entry_meta
        self.max_meta_total = max_meta_total
        self.max_pax_records = max_pax_records
        self.max_pax_key = max_pax_key
        self.max_global_pax = max_global_pax
        self.path_max = path_max


_DEFAULT_LIMITS = Limits()


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


def _xz_decompressor():
    return lzma.LZMADecompressor(lzma.FORMAT_XZ)  # not FORMAT_AUTO: .lzma is another format


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
            self._new = _xz_decompressor
            self._magic = _MAGIC[2][0]
            self._padding_unit = 4
            self._stream_after_padding = True
        else:
            self._new = bz2.BZ2Decompressor
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
        while len(rest) < len(self._magic):
            more = self._source.read(CHUNK)
            if not more:
                break
            rest += more
        if not rest.startswith(self._magic):
            raise LayerFormatError("trailing data after %s stream %d: neither padding nor another %s stream"
                                   % (self._name, self._streams, self._name))
        self._pending = rest
        self._decompressor = self._new()
        self._streams += 1

    def close(self):
        self._decompressor = None


def open_decompressed(raw, compression="auto"):
    """A reader of uncompressed bytes, and the compression that was used."""
    if compression not in COMPRESSIONS:
        raise LayerFormatError("unknown compression %r (one of %s)" % (compression, ", ".join(COMPRESSIONS)))
    head = raw.read(6)
    if compression == "auto":
        compression = detect_compression(head)
    source = io.BufferedReader(_Prefixed(head, raw), CHUNK)
    if compression == "none":
        return source, compression
    if compression in ("gzip", "bzip2", "xz"):
        return _StrictStreams(source, compression), compression
    return _zstd_reader(source), compression


_DECOMPRESS_ERRORS = (EOFError, OSError, zlib.error, lzma.LZMAError, ValueError)


class HashingReader:
    """Uncompressed layer bytes, counted and hashed as they are read.

    A thread reads, decompresses and hashes ahead (hashlib and file reads
    release the GIL) while the caller parses and writes, at most QUEUE_CHUNKS
    chunks ahead so memory stays flat whatever the layer's size.
    """

    QUEUE_CHUNKS = 8

    def __init__(self, raw, compression="auto"):
        self._f, self.compression = open_decompressed(raw, compression)
        self._hash = hashlib.sha256()
        self.offset = 0
        self._buf = b""
        self._view = memoryview(b"")
        self._pos = 0
        self._eof = False
        self._queue = queue.Queue(self.QUEUE_CHUNKS)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read_ahead, name="layer-reader", daemon=True)
        self._thread.start()

    def _read_ahead(self):
        try:
            while not self._stop.is_set():
                try:
                    data = self._f.read(CHUNK)
                except LayerFormatError as e:
                    self._queue.put(e)
                    return
                except _DECOMPRESS_ERRORS as e:
                    self._queue.put(LayerFormatError("cannot decompress the layer (%s): %s" % (self.compression, e)))
                    return
                except Exception as e:  # zstandard.ZstdError and friends  pylint: disable=broad-except
                    self._queue.put(LayerFormatError("cannot decompress the layer (%s): %s" % (self.compression, e)))
                    return
                if not data:
                    check = getattr(self._f, "check", None)
                    if check is not None:
                        try:
                            check()
                        except LayerFormatError as e:
                            self._queue.put(e)
                            return
                    self._queue.put(b"")
                    return
                self._hash.update(data)
                self._queue.put(data)
        except BaseException as e:  # pylint: disable=broad-except
            self._queue.put(LayerFormatError("cannot read the layer: %s" % e))

    def _refill(self):
        """Make the next chunk current; what was left of the current one must have been taken."""
        if self._eof:
            return False
        item = self._queue.get()
        if isinstance(item, Exception):
            self._eof = True
            raise item
        if not item:
            self._eof = True
            return False
        self._buf = item
        self._view = memoryview(item)
        self._pos = 0
        return True

    def read(self, n):
        """Up to n bytes; fewer only at the end of the stream."""
        pos = self._pos
        end = pos + n
        if end <= len(self._buf):  # the common case: inside the current chunk
            self._pos = end
            self.offset += n
            return self._buf[pos:end]
        parts = [self._buf[pos:]]
        have = len(parts[0])
        self._pos = len(self._buf)
        while have < n and self._refill():
            take = min(n - have, len(self._buf))
            parts.append(self._buf[:take])
            self._pos = take
            have += take
        self.offset += have
        return b"".join(parts)

    def read_view(self, n):
        """Up to n bytes (at least one unless the stream ended) as a view into the current chunk:
        file data goes to os.write without a copy."""
        if self._pos == len(self._buf) and not self._refill():
            return self._view[:0]
        pos = self._pos
        end = min(pos + n, len(self._buf))
        self._pos = end
        self.offset += end - pos
        return self._view[pos:end]

    def read_exact(self, n, what):
        data = self.read(n)
        if len(data) != n:
            raise LayerFormatError("the layer ends inside %s (offset %d): truncated" % (what, self.offset))
        return data

    def skip(self, n, what):
        while n:
            if self._pos == len(self._buf) and not self._refill():
                raise LayerFormatError("the layer ends inside %s (offset %d): truncated" % (what, self.offset))
            take = min(n, len(self._buf) - self._pos)
            self._pos += take
            self.offset += take
            n -= take

    def drain_zeros(self):
        """After the end-of-archive marker only NUL padding may follow."""
        while True:
            data = self.read(CHUNK)
            if not data:
                break
            if data.count(0) != len(data):
                raise LayerFormatError("trailing data after the end of the tar archive (offset %d)"
                                       % (self.offset - len(data) + len(data.rstrip(b"\x00"))))

    def digest(self):
        """The diff_id; complete once the stream was read to its end."""
        self._thread.join()
        return "sha256:" + self._hash.hexdigest()

    def close(self):
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass
        try:
            self._f.close()
        except Exception:  # closing a half-read stream must not mask the real error  pylint: disable=broad-except
            pass


class Entry:
    __slots__ = ("name", "kind", "size", "mode", "uid", "gid", "mtime_ns", "atime_ns",
                 "linkname", "devmajor", "devminor", "xattrs")

    def __repr__(self):
        return "Entry(%r, %s)" % (self.name, self.kind)


# The PAX keys an entry uses; everything else (comments, ctime, charset, vendor keys) is dropped
# as it is parsed, so no header can make the state that every later entry merges grow.
PAX_KEYS = frozenset(("path", "linkpath", "size", "uid", "gid", "mtime", "atime"))
PAX_KEY_PREFIXES = ("SCHILY.xattr.", "GNU.sparse.")


def parse_pax(data, limits=_DEFAULT_LIMITS):
    """PAX records 'LEN key=value\\n' -> the keys an entry uses; values stay bytes (xattrs are binary)."""
    out = {}
    pos = 0
    records = 0
    while pos < len(data):
        if data[pos] == 0 and data.count(0, pos) == len(data) - pos:
            break  # NUL padding after the last record
        records += 1
        if records > limits.max_pax_records:
            raise LayerFormatError("pax header has more than %d records" % limits.max_pax_records)
        sp = data.find(b" ", pos, pos + 21)
        if sp < 0:
            raise LayerFormatError("malformed pax header record")
        try:
            length = int(data[pos:sp])
        except ValueError:
            raise LayerFormatError("malformed pax header record length")
        end = pos + length
        if length <= sp - pos + 1 or end > len(data) or data[end - 1:end] != b"\n":
            raise LayerFormatError("malformed pax header record")
        eq = data.find(b"=", sp + 1, end)
        if eq < 0:
            raise LayerFormatError("malformed pax header record")
        if eq - sp - 1 > limits.max_pax_key:
            raise LayerFormatError("pax header key of %d bytes exceeds the limit of %d"
                                   % (eq - sp - 1, limits.max_pax_key))
        key = data[sp + 1:eq].decode("utf-8", "surrogateescape")
        if key in PAX_KEYS or key.startswith(PAX_KEY_PREFIXES):
            out[key] = data[eq + 1:end - 1]
        pos = end
    return out


def _pax_size(records):
    return sum(len(k) + len(v) for k, v in records.items())


def _pax_time_ns(value):
    text = value.decode("ascii", "replace")
    try:
        sec, _dot, frac = text.partition(".")
        ns = int(sec) * 1000000000
        if frac:
            frac = (frac + "000000000")[:9]
            ns += (1 if not sec.startswith("-") else -1) * int(frac)
        return ns
    except ValueError:
        raise LayerFormatError("malformed pax time %r" % text)


def _pax_int(value, key):
    try:
        n = int(value)
    except ValueError:
        raise LayerFormatError("malformed pax %s %r" % (key, value))
    if n < 0:
        raise LayerFormatError("negative pax %s" % key)
    return n


_NO_PAX = {}

# What the system calls take: an owner of 2**32-1 is chown's "leave unchanged" (-1), times are a
# time_t of seconds, and the kernel's dev_t has 12 bits of major and 20 of minor. Beyond these,
# os.chown, os.utime and os.makedev raise OverflowError or silently do something else.
MAX_ID = (1 << 32) - 2
MIN_TIME_NS = -(1 << 63) * 1000000000
MAX_TIME_NS = (1 << 63) * 1000000000 - 1
MAX_DEVMAJOR = (1 << 12) - 1
MAX_DEVMINOR = (1 << 20) - 1


def _check_ranges(entry):
    """Refuse numbers the system calls cannot take, naming the entry."""
    if not (entry.uid <= MAX_ID and entry.gid <= MAX_ID):
        raise LayerFormatError("entry %r: owner %d:%d is out of range (ids go up to %d)"
                               % (entry.name, entry.uid, entry.gid, MAX_ID))
    for what, ns in (("mtime", entry.mtime_ns), ("atime", entry.atime_ns)):
        if not MIN_TIME_NS <= ns <= MAX_TIME_NS:
            raise LayerFormatError("entry %r: %s of %d seconds is out of range" % (entry.name, what, ns // 1000000000))
    if entry.devmajor > MAX_DEVMAJOR or entry.devminor > MAX_DEVMINOR:
        raise LayerFormatError("entry %r: device number %d:%d is out of range (major up to %d, minor up to %d)"
                               % (entry.name, entry.devmajor, entry.devminor, MAX_DEVMAJOR, MAX_DEVMINOR))


class Header:
    """One decoded 512-byte tar header (ustar, GNU or v7)."""

    __slots__ = ("name", "linkname", "size", "mode", "uid", "gid", "mtime", "type", "devmajor", "devminor")


_SPACES = 8 * 0x20


def _number(field, what, offset):
    """A numeric header field: octal text, or GNU base-256 when the high bit is set."""
    text = field.rstrip(b"\x00 ").lstrip(b" ")
    if text.isdigit() or not text:  # the common case, "0000644\0"; only octal digits pass int()
        try:
            return int(text or b"0", 8)
        except ValueError:
            raise LayerFormatError("invalid tar header at offset %d: bad %s field %r" % (offset, what, field))
    if field and field[0] & 0x80:
        value = int.from_bytes(field[1:], "big")
        if field[0] == 0xFF:
            value -= 1 << (8 * (len(field) - 1))
        return value
    text = field.split(b"\x00", 1)[0].strip(b" ")
    if not text:
        return 0
    if not text.isdigit():
        raise LayerFormatError("invalid tar header at offset %d: bad %s field %r" % (offset, what, field))
    try:
        return int(text, 8)
    except ValueError:
        raise LayerFormatError("invalid tar header at offset %d: bad %s field %r" % (offset, what, field))


_NUMBER_FIELDS = ((100, 108, "mode"), (108, 116, "uid"), (116, 124, "gid"), (124, 136, "size"),
                  (136, 148, "mtime"), (148, 156, "checksum"))
_NUMBERS = struct.Struct("100x8s8s8s12s12s8s")
_OCTAL_TEXT = b"01234567 \x00"


def _plain_octals(buf):
    """mode, uid, gid, size, mtime and checksum when all six are plain octal text (nearly every
    header), in one pass; None sends the header to _number field by field."""
    if buf[100:156].translate(None, _OCTAL_TEXT):
        return None  # base-256 or garbage
    numbers = []
    try:
        for field in _NUMBERS.unpack_from(buf):
            end = field.find(b"\x00")  # a NUL ends the text, as in tar
            text = field if end < 0 else field[:end]
            numbers.append(int(text, 8) if text else 0)
    except ValueError:
        return None  # blanks, or spaces inside the digits: _number decides
    return numbers


def _text(field):
    return field.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")


def _check_sum(buf, stored, offset):
    unsigned = sum(buf) - sum(buf[148:156]) + _SPACES
    if stored != unsigned:
        signed = unsigned - 256 * sum(1 for b in buf if b >= 0x80) + 256 * sum(1 for b in buf[148:156] if b >= 0x80)
        if stored != signed:
            raise LayerFormatError("invalid tar header at offset %d: bad checksum" % offset)


def parse_header(buf, offset=0):
    """Decode a header, checking its checksum; tarfile's decoder is correct but slow per entry."""
    numbers = _plain_octals(buf)
    if numbers is not None:
        _check_sum(buf, numbers[5], offset)
    else:
        _check_sum(buf, _number(buf[148:156], "checksum", offset), offset)
        numbers = [_number(buf[start:end], what, offset) for start, end, what in _NUMBER_FIELDS[:5]]
    mode, uid, gid, size, mtime = numbers[:5]
    h = Header()
    h.type = buf[156:157] or tarfile.REGTYPE
    name = _text(buf[0:100])
    if buf[257:263] == b"ustar\x00" and h.type not in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK):
        prefix = _text(buf[345:500])
        if prefix:
            name = prefix + "/" + name
    h.name = name
    h.linkname = _text(buf[157:257])
    h.mode, h.uid, h.gid, h.size, h.mtime = mode, uid, gid, size, mtime
    if h.type in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        h.devmajor = _number(buf[329:337], "devmajor", offset)
        h.devminor = _number(buf[337:345], "devminor", offset)
    else:
        h.devmajor = h.devminor = 0
    if h.size < 0 or h.mode < 0 or h.uid < 0 or h.gid < 0 or h.devmajor < 0 or h.devminor < 0:
        raise LayerFormatError("invalid tar header at offset %d: negative size, mode, owner or device number"
                               % offset)
    if h.type == tarfile.AREGTYPE and name.endswith("/"):
        h.type = tarfile.DIRTYPE
    if h.type == tarfile.DIRTYPE:
        h.name = name.rstrip("/")
    return h


def _count_meta(limits, offset, size, entry_meta, total_meta):
    if size > limits.max_meta:
        raise LayerFormatError("tar metadata header of %d bytes at offset %d exceeds the limit of %d"
                               % (size, offset, limits.max_meta))
    if entry_meta + size > limits.max_entry_meta:
        raise LayerFormatError("tar metadata headers before the entry at offset %d exceed %d bytes together"
                               % (offset, limits.max_entry_meta))
    if total_meta + size > limits.max_meta_total:
        raise LayerFormatError("tar metadata headers exceed %d bytes in the layer (offset %d)"
                               % (limits.max_meta_total, offset))


def iter_entries(reader, limits=None):
    """Yield Entry objects; the caller must consume (or skip) each regular file's data.

    The reader is positioned at the file data when an entry is yielded; the
    generator skips whatever the caller leaves unread, then the padding.
    """
    limits = limits or _DEFAULT_LIMITS
    global_pax = {}
    long_name = long_link = None
    local_pax = {}
    count = 0
    entry_meta = 0  # bytes of metadata headers since the last entry
    total_meta = 0
    while True:
        buf = reader.read_exact(BLOCK, "a tar header")
        if buf.count(0) == BLOCK:
            reader.drain_zeros()
            return
        info = parse_header(buf, reader.offset - BLOCK)
        size = info.size
        padded = (size + BLOCK - 1) // BLOCK * BLOCK
        t = info.type
        if t in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE,
                 tarfile.SOLARIS_XHDTYPE):
            _count_meta(limits, reader.offset - BLOCK, size, entry_meta, total_meta)
            entry_meta += size
            total_meta += size
            data = reader.read_exact(padded, "a tar metadata header")[:size]
            if t == tarfile.GNUTYPE_LONGNAME:
                long_name = data.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")
            elif t == tarfile.GNUTYPE_LONGLINK:
                long_link = data.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")
            elif t == tarfile.XGLTYPE:
                global_pax.update(parse_pax(data, limits))
                if _pax_size(global_pax) > limits.max_global_pax:
                    raise LayerFormatError("global pax headers hold more than %d bytes of entry keys (offset %d)"
                                           % (limits.max_global_pax, reader.offset))
            else:
                local_pax.update(parse_pax(data, limits))
            continue
        entry_meta = 0
        count += 1
        if count > limits.max_entries:
            raise LayerFormatError("the layer has more than %d entries" % limits.max_entries)
        if global_pax or local_pax:
            pax = dict(global_pax)
            pax.update(local_pax)
            pax = {k: v for k, v in pax.items() if v != b""}
        else:
            pax = _NO_PAX
        entry = Entry()
        entry.name = info.name
        entry.linkname = info.linkname
        if long_name is not None:
            entry.name = long_name
        if long_link is not None:
            entry.linkname = long_link
        if "path" in pax:
            entry.name = pax["path"].decode("utf-8", "surrogateescape")
        if "linkpath" in pax:
            entry.linkname = pax["linkpath"].decode("utf-8", "surrogateescape")
        if "size" in pax:
            size = _pax_int(pax["size"], "size")
            padded = (size + BLOCK - 1) // BLOCK * BLOCK
        kind = _TYPES.get(t)
        if kind is None:
            raise LayerFormatError("entry %r has unsupported tar type %r" % (entry.name, t))
        if any(k.startswith("GNU.sparse") for k in pax):
            raise LayerFormatError("entry %r is a sparse file, which layers do not use" % entry.name)
        entry.kind = kind
        if kind != REGULAR:
            # header-only types carry no data, whatever their size field says
            size = padded = 0
        entry.size = size
        entry.mode = info.mode
        entry.uid = _pax_int(pax["uid"], "uid") if "uid" in pax else info.uid
        entry.gid = _pax_int(pax["gid"], "gid") if "gid" in pax else info.gid
        entry.mtime_ns = _pax_time_ns(pax["mtime"]) if "mtime" in pax else info.mtime * 1000000000
        entry.atime_ns = _pax_time_ns(pax["atime"]) if "atime" in pax else entry.mtime_ns
        entry.devmajor = info.devmajor
        entry.devminor = info.devminor
        entry.xattrs = {k[len("SCHILY.xattr."):]: v for k, v in pax.items() if k.startswith("SCHILY.xattr.")}
        if (entry.uid > MAX_ID or entry.gid > MAX_ID or entry.devmajor > MAX_DEVMAJOR
                or entry.devminor > MAX_DEVMINOR or not MIN_TIME_NS <= entry.mtime_ns <= MAX_TIME_NS
                or not MIN_TIME_NS <= entry.atime_ns <= MAX_TIME_NS):
            _check_ranges(entry)
        long_name = long_link = None
        local_pax = {}
        if "\x00" in entry.name or "\x00" in entry.linkname:
            raise LayerFormatError("entry name %r contains a NUL byte" % entry.name)
        start = reader.offset
        yield entry
        consumed = reader.offset - start
        if consumed > padded:
            raise LayerFormatError("entry %r: read past its data" % entry.name)
        reader.skip(padded - consumed, "the data of %r" % entry.name)
