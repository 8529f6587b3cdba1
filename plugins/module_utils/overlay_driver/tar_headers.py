# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tar headers of an untrusted layer, parsed by hand.

tarfile's stream mode stops silently at a truncated or corrupt header, so
each 512-byte header is decoded here (checksum checked), PAX and GNU
long-name headers are merged into the entry they precede within bounds
(Limits), numbers are checked against what the system calls take, and the
end-of-archive marker must be followed by nothing but NULs.
"""

import struct

from .errors import LayerFormatError

BLOCK = 512

REGULAR = "file"
HARDLINK = "hardlink"
SYMLINK = "symlink"
CHAR = "char"
BLOCKDEV = "block"
DIRECTORY = "dir"
FIFO = "fifo"

# the type flags, tarfile's values spelled here: tarfile (with shutil, bz2, lzma and their
# imports) is not loaded by an apply for constants (test_tar_headers holds the two together)
REGTYPE, AREGTYPE, LNKTYPE, SYMTYPE, CHRTYPE, BLKTYPE, DIRTYPE, FIFOTYPE, CONTTYPE = (
    b"0", b"\x00", b"1", b"2", b"3", b"4", b"5", b"6", b"7")
GNUTYPE_LONGNAME, GNUTYPE_LONGLINK = b"L", b"K"
XHDTYPE, XGLTYPE, SOLARIS_XHDTYPE = b"x", b"g", b"X"

_TYPES = {
    REGTYPE: REGULAR, AREGTYPE: REGULAR, CONTTYPE: REGULAR,
    LNKTYPE: HARDLINK, SYMTYPE: SYMLINK, CHRTYPE: CHAR,
    BLKTYPE: BLOCKDEV, DIRTYPE: DIRECTORY, FIFOTYPE: FIFO,
}


class Limits:
    """Bounds that keep a hostile archive from exhausting memory, CPU or inodes.

    Metadata headers (PAX and GNU long names) are bounded per header
    (max_meta), for all the headers before one entry together (max_entry_meta),
    and over the archive (max_meta_total); a PAX header holds at most
    max_pax_records records with keys of at most max_pax_key bytes, and the
    global PAX state, which applies to every later entry, at most
    max_global_pax bytes of the keys an entry uses; max_bytes bounds the
    uncompressed tar stream (checked before an entry's data is read, so
    nothing past the bound is written). path_max bounds the full
    path of every entry where it is applied: PATH_MAX less the NUL and 256
    bytes for the longer paths the layer is copied to later (a child's temp
    directory, layer ids of up to 128 bytes).
    """

    def __init__(self, max_entries=4000000, max_name=4096, max_component=255, max_meta=1 << 20,
                 max_entry_meta=1 << 20, max_meta_total=1 << 30, max_pax_records=4096, max_pax_key=512,
                 max_global_pax=64 << 10, path_max=4096 - 1 - 256, max_bytes=None, max_bytes_name="max_layer_size"):
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
        # The uncompressed bytes of the tar stream (None: no bound): a few MB of gzip can expand to any size.
        self.max_bytes = max_bytes
        self.max_bytes_name = max_bytes_name  # the option that set it, for the message


_DEFAULT_LIMITS = Limits()


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
    h.type = buf[156:157] or REGTYPE
    name = _text(buf[0:100])
    if buf[257:263] == b"ustar\x00" and h.type not in (GNUTYPE_LONGNAME, GNUTYPE_LONGLINK):
        prefix = _text(buf[345:500])
        if prefix:
            name = prefix + "/" + name
    h.name = name
    h.linkname = _text(buf[157:257])
    h.mode, h.uid, h.gid, h.size, h.mtime = mode, uid, gid, size, mtime
    if h.type in (CHRTYPE, BLKTYPE):
        h.devmajor = _number(buf[329:337], "devmajor", offset)
        h.devminor = _number(buf[337:345], "devminor", offset)
    else:
        h.devmajor = h.devminor = 0
    if h.size < 0 or h.mode < 0 or h.uid < 0 or h.gid < 0 or h.devmajor < 0 or h.devminor < 0:
        raise LayerFormatError("invalid tar header at offset %d: negative size, mode, owner or device number"
                               % offset)
    if h.type == AREGTYPE and name.endswith("/"):
        h.type = DIRTYPE
    if h.type == DIRTYPE:
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


def _check_bytes(limits, end, name):
    """Refuse, before reading it, what would take the tar stream past limits.max_bytes."""
    if limits.max_bytes is not None and end > limits.max_bytes:
        raise LayerFormatError("the layer expands past %s (%d bytes uncompressed)%s"
                               % (limits.max_bytes_name, limits.max_bytes,
                                  " at entry %r" % name if name is not None else ""))


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
        if t in (GNUTYPE_LONGNAME, GNUTYPE_LONGLINK, XHDTYPE, XGLTYPE,
                 SOLARIS_XHDTYPE):
            _check_bytes(limits, reader.offset + padded, None)
            _count_meta(limits, reader.offset - BLOCK, size, entry_meta, total_meta)
            entry_meta += size
            total_meta += size
            data = reader.read_exact(padded, "a tar metadata header")[:size]
            if t == GNUTYPE_LONGNAME:
                long_name = data.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")
            elif t == GNUTYPE_LONGLINK:
                long_link = data.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")
            elif t == XGLTYPE:
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
        _check_bytes(limits, reader.offset + padded, entry.name)
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
