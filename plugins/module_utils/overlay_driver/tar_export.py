# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write a layer's changes as an image-layer tarball (moby's ExportChanges).

Added and modified paths are archived from the layer's view; deletions
become '.wh.<name>' entries, and a directory an overlay2 export found opaque
gets its '.wh..wh..opq' (changes.with_opaque_dirs). Times are whole seconds and whiteouts take their
directory's mtime, so exporting the same layer twice gives the same diff_id.
"""

import collections
import errno
import hashlib
import os
import queue
import resource
import stat
import struct
import threading

from . import whiteouts
from .changes import DELETE, OPAQUE_DIR, counted_size, entry_at, raise_too_deep
from .errors import OverlayError
from .ids import to_container
from .overlay_view import as_dir
from .regular_files import require_regular
from .view_dirs import fd_xattrs, release_path_roots
from .xattr_ids import remap_value


class HashingWriter:
    """Writes the archive to out in 1 MiB blocks, hashing and writing them on a worker thread.

    Headers and small files are gathered into the block being filled, and file
    data is read straight into it, so a layer of many small files costs a
    handful of large writes. The worker hashes and writes a block while the
    caller fills the next (hashlib and write both release the GIL, so on a
    second core this costs the caller nothing); blocks go back to a small pool
    once written, which bounds the memory. A write that fails is raised to the
    caller at its next block or at close; the worker keeps returning blocks so
    the caller never waits for ever.
    """

    BLOCK = 1 << 20
    BLOCKS = 4

    def __init__(self, out):
        self.out = out
        self.hash = hashlib.sha256()
        self._shipped = 0
        self._error = None
        self._free = queue.Queue()
        for _block in range(self.BLOCKS):
            self._free.put(bytearray(self.BLOCK))
        self._hashing = queue.Queue()
        self._worker = threading.Thread(target=self._hash_blocks, daemon=True)
        self._worker.start()
        self._block = self._free.get()
        self._view = memoryview(self._block)
        self._fill = 0

    @property
    def size(self):
        return self._shipped + self._fill

    def _hash_blocks(self):
        while True:
            item = self._hashing.get()
            if item is None:
                return
            block, length = item
            try:
                if self._error is None:
                    with memoryview(block) as view:
                        self.hash.update(view[:length])
                        self._write_out(view[:length])
            except BaseException as e:  # pylint: disable=broad-except  # raised again by the caller
                self._error = e
            finally:
                self._free.put(block)

    def _write_out(self, view):
        while view:  # a raw file may take less than it was given
            written = self.out.write(view)
            if written is None or written >= len(view):
                break
            view = view[written:]

    def _raise_error(self):
        if self._error is not None:
            raise self._error

    def _ship(self):
        self._raise_error()
        if self._fill:
            self._shipped += self._fill
            self._hashing.put((self._block, self._fill))
            self._block = self._free.get()
            self._view = memoryview(self._block)
            self._fill = 0

    def write(self, data):
        if len(data) < self.BLOCK - self._fill:
            self._block[self._fill:self._fill + len(data)] = data
            self._fill += len(data)
            return
        view = memoryview(data)
        while view:
            room = self.BLOCK - self._fill
            take = min(room, len(view))
            self._view[self._fill:self._fill + take] = view[:take]
            self._fill += take
            view = view[take:]
            if self._fill == self.BLOCK:
                self._ship()

    def copy_from(self, fd, length):
        """Append length bytes read from fd; False when the file ends early."""
        while length:
            if self._fill == self.BLOCK:
                self._ship()
            take = min(self.BLOCK - self._fill, length)
            got = os.readv(fd, [self._view[self._fill:self._fill + take]])
            if not got:
                return False
            self._fill += got
            length -= got
        return True

    def close(self):
        """Write what is left, wait for the worker, and return the diff_id."""
        try:
            self._ship()
        finally:
            self._hashing.put(None)
            self._worker.join()
        self._raise_error()
        flush = getattr(self.out, "flush", None)
        if flush:
            flush()
        return "sha256:" + self.hash.hexdigest()

    def abandon(self):
        self._hashing.put(None)
        self._worker.join()


def _xattr_headers(xattrs, uid_maps=None, gid_maps=None):
    """The PAX records of xattrs (name -> value, as view_dirs reads them by fd), overlay's own left out;
    ids in them seen from the container."""
    headers = {}
    binary = False
    for name in sorted(xattrs):
        if name.startswith(whiteouts.OVERLAY_XATTR_PREFIXES):
            continue
        value = xattrs[name]
        if uid_maps or gid_maps:
            value = remap_value(name, value, uid_maps, gid_maps, to_host_side=False)
            if value is None:
                continue
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            text = value.decode("utf-8", "surrogateescape")
            binary = True
        headers["SCHILY.xattr." + name] = text
    if binary:
        headers["hdrcharset"] = "BINARY"
    return headers


_RECORD = 10240
_PADDING = b"\x00" * 512

# ustar type flags
REGTYPE, LNKTYPE, SYMTYPE, CHRTYPE, BLKTYPE, DIRTYPE, FIFOTYPE = (b"0", b"1", b"2", b"3", b"4", b"5", b"6")


class _Member:
    """One archive entry, written as a plain ustar header or, when it needs one, behind a PAX header."""

    __slots__ = ("name", "mode", "uid", "gid", "size", "mtime", "type", "linkname", "devmajor", "devminor",
                 "pax_headers")

    def __init__(self, name, kind, mode=0o644, owner=(0, 0), mtime=0):
        self.name = name
        self.type = kind
        self.mode = mode
        self.uid, self.gid = owner
        self.mtime = mtime
        self.size = 0
        self.linkname = ""
        self.devmajor = self.devminor = 0
        self.pax_headers = None

    def header(self):
        return _ustar(self) or self._pax_header()

    def _pax_header(self):
        """The entry behind a PAX extended header, the bytes tarfile's PAX_FORMAT writes (a
        differential test holds the two together), without importing tarfile for it: long names and
        xattrs are common in layers, and tarfile (with shutil, bz2 and lzma) is a noticeable part
        of a short export's start."""
        if not (0 <= self.devmajor <= 0o7777777 and 0 <= self.devminor <= 0o7777777):
            return self._tarfile_header()  # no ustar field holds them: tarfile's own error
        records = dict(self.pax_headers or {})
        records.pop("hdrcharset", None)  # said again below when a value needs it
        name = self.name + "/" if self.type == DIRTYPE and not self.name.endswith("/") else self.name  # as tarfile
        for key, value in (("path", name), ("linkpath", self.linkname)):
            if key not in records and (not value.isascii() or len(value) > 100):
                records[key] = value
        numbers = []
        for key, value, digits in (("uid", self.uid, 8), ("gid", self.gid, 8), ("size", self.size, 12),
                                   ("mtime", self.mtime, 12)):
            if 0 <= value < 8 ** (digits - 1):
                numbers.append(value)
            else:
                numbers.append(0)
                records.setdefault(key, str(value))
        uid, gid, size, mtime = numbers
        # tarfile leaves the device fields empty but for devices
        devices = (b"%07o\x00" % self.devmajor, b"%07o\x00" % self.devminor) if self.type in (CHRTYPE, BLKTYPE) \
            else (b"", b"")
        header = _header_block(name.encode("ascii", "replace")[:100], self.mode, uid, gid, size, mtime,
                               self.type, self.linkname.encode("ascii", "replace")[:100], *devices)
        if not records:
            return header
        binary = any(not _is_utf8_text(value) for value in records.values())
        payload = pax_record(b"hdrcharset", b"BINARY") if binary else b""
        payload += b"".join(pax_record(key.encode("utf-8", "surrogateescape"), value.encode("utf-8", "surrogateescape"))
                            for key, value in records.items())
        extended = _header_block(b"././@PaxHeader", 0, 0, 0, len(payload), 0, b"x", b"", b"", b"")
        return extended + payload + _PADDING[:-len(payload) % 512] + header

    def _tarfile_header(self):
        import tarfile  # pylint: disable=import-outside-toplevel  # only for the very rare entry

        info = _pax_info_class()(self.name)
        info.type, info.mode, info.uid, info.gid = self.type, self.mode, self.uid, self.gid
        info.size, info.mtime, info.linkname = self.size, self.mtime, self.linkname
        info.devmajor, info.devminor = self.devmajor, self.devminor
        info.pax_headers = dict(self.pax_headers or {})
        info.uname = info.gname = ""
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def pax_record(key, value):
    """One PAX record, b"<length> <key>=<value>\n", the length counting its own digits."""
    body = b" " + key + b"=" + value + b"\n"
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length = len(str(length)) + len(body)
    return str(length).encode("ascii") + body


_PAX_INFO = []


def _pax_info_class():
    """tarfile.TarInfo whose PAX records keep what is not UTF-8 as its bytes.

    tarfile encodes PAX keys strictly as UTF-8, so an xattr whose name is not UTF-8 (Linux
    allows any bytes) stopped the export with a UnicodeEncodeError. Go's archive/tar, which
    Docker and containers-storage use, writes such keys as their bytes; so does this, and the
    applier reads them back to the same name. Built on first use: tarfile is imported only
    for the rare entry that needs PAX records.
    """
    if _PAX_INFO:
        return _PAX_INFO[0]
    import tarfile  # pylint: disable=import-outside-toplevel

    class PaxInfo(tarfile.TarInfo):
        @classmethod
        def _create_pax_generic_header(cls, pax_headers, type, encoding):  # pylint: disable=redefined-builtin
            fields = {key: value for key, value in pax_headers.items() if key != "hdrcharset"}
            binary = any(not _is_utf8_text(v) for v in fields.values())
            records = pax_record(b"hdrcharset", b"BINARY") if binary else b""
            for key, value in fields.items():
                records += pax_record(key.encode("utf-8", "surrogateescape"),
                                      value.encode("utf-8", "surrogateescape"))
            header = {"name": "././@PaxHeader", "type": type, "size": len(records), "magic": tarfile.POSIX_MAGIC}
            return cls._create_header(header, tarfile.USTAR_FORMAT, "ascii", "replace") + \
                cls._create_payload(records)

    _PAX_INFO.append(PaxInfo)
    return PaxInfo


def _is_utf8_text(value):
    try:
        value.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _ustar(info):
    """A plain ustar header for the common entry; None when PAX is needed (long or non-ASCII names,
    xattrs, large numbers)."""
    name, link = info.name, info.linkname
    if (info.pax_headers or len(name) > 100 or len(link) > 100 or not name.isascii() or not link.isascii()
            or not 0 <= info.uid < 0o7777777 or not 0 <= info.gid < 0o7777777 or info.size >= 0o77777777777
            or not 0 <= info.mtime < 0o77777777777 or info.devmajor > 0o7777777 or info.devminor > 0o7777777):
        return None
    return _header_block(name.encode(), info.mode, info.uid, info.gid, info.size, info.mtime, info.type,
                         link.encode(), b"%07o\x00" % info.devmajor, b"%07o\x00" % info.devminor)


def _header_block(name, mode, uid, gid, size, mtime, kind, link, devmajor, devminor):
    """One 512-byte ustar header of fields that fit (name and link: bytes of at most 100; the device
    fields as written, empty or octal)."""
    header = struct.pack(
        "100s8s8s8s12s12s8s1s100s6s2s32s32s8s8s155s12x",
        name, b"%07o\x00" % mode, b"%07o\x00" % uid, b"%07o\x00" % gid,
        b"%011o\x00" % size, b"%011o\x00" % mtime, b" " * 8, kind, link,
        b"ustar\x00", b"00", b"", b"", devmajor, devminor, b"")
    chksum = b"%06o\x00 " % sum(header)
    return header[:148] + chksum + header[156:]


_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK


def _open_data(entry):
    """An fd of the regular file entry (a view_dirs.ViewEntry) for reading: opened by name in its
    directory's fd with O_NOFOLLOW, its type checked on the fd.

    O_NONBLOCK: a FIFO swapped in by what runs in the layer never blocks the open; for the regular
    file the fd is checked to be, the flag changes nothing, so it is left on."""
    try:
        fd = entry.open(_READ_FLAGS)
    except OSError as e:
        if e.errno in (errno.EMFILE, errno.ENFILE):
            raise OverlayError("cannot open it for the tarball: %s (the open-file limit, RLIMIT_NOFILE, is %d: "
                               "raise it with ulimit -n or LimitNOFILE=)"
                               % (e.strerror, resource.getrlimit(resource.RLIMIT_NOFILE)[0]), path=entry.path)
        raise OverlayError("cannot read it for the tarball: %s (replaced by a symlink while the diff was "
                           "written?)" % e.strerror, path=entry.path)
    try:
        require_regular(fd, entry.path)
    except OSError as e:
        os.close(fd)
        raise OverlayError("cannot read it for the tarball: it changed while the diff was written (%s)"
                           % e.strerror, path=entry.path)
    return fd


def _link_target(entry):
    """The symlink's target, read by name in its directory's fd (a name that is no symlink now: an error)."""
    try:
        return entry.readlink()
    except OSError as e:
        raise OverlayError("cannot read the symlink for the tarball: it changed while the diff was written (%s)"
                           % e.strerror, path=entry.path)


def _opaque_member(name, dir_st, uid_maps, gid_maps):
    """A directory's '.wh..wh..opq' as Docker's overlay whiteout converter writes it: an empty regular file
    with the directory's permission bits and owner, and no time (Go's zero time writes 0)."""
    return _Member(name, REGTYPE, dir_st.st_mode & 0o777, _container_owner(dir_st, uid_maps, gid_maps, name), 0)


def _container_owner(st, uid_maps, gid_maps, path):
    """The (uid, gid) the tarball gives a file of the layer: its host owner through the home's id maps. A file
    whose owner the maps do not hold (made on the host by hand) is an error naming it, and what to do."""
    try:
        return to_container(st.st_uid, uid_maps), to_container(st.st_gid, gid_maps)
    except OverlayError as e:
        raise OverlayError("cannot give the file an owner in the tarball: %s (it was made in the layer on the host, "
                           "not through the layer's id maps); chown it to a host id the maps hold, or remove it"
                           % e.cause, path=path)


def _write_data(writer, member, fd, path):
    if not writer.copy_from(fd, member.size):
        raise OSError("%s shrank while it was exported" % path)
    if member.size % 512:
        writer.write(_PADDING[member.size % 512:])


ExportResult = collections.namedtuple("ExportResult", "diff_id tar_size diff_size")


def export_changes(layer_dir, changes, out, uid_maps=None, gid_maps=None):
    """Stream the tarball to out.

    diff_size is moby's ChangesSize (the bytes of added and modified
    non-directories, a hardlinked inode once), counted from the same lstat the
    archive needs, so an export costs no second pass over the changes.
    """
    writer = HashingWriter(out)
    try:
        try:
            diff_size = _export(writer, layer_dir, changes, uid_maps, gid_maps)
        except OSError as e:
            raise_too_deep(e, "export")
            raise
    except BaseException:
        writer.abandon()
        raise
    return ExportResult(writer.close(), writer.size, diff_size)


class _Root:
    """The layer directory of the export, opened once when first needed: a path, opened with no
    symlink on it, or a view_dirs.Dir."""

    def __init__(self, layer_dir):
        self.layer_dir = layer_dir
        self.dir = None

    def get(self):
        if self.dir is None:
            self.dir = as_dir(self.layer_dir)
        return self.dir

    def close(self):
        if self.dir is not None and self.dir is not self.layer_dir:
            self.dir.close()


def _export(writer, layer_dir, changes, uid_maps, gid_maps):
    root = _Root(layer_dir)
    try:
        return _export_changes(writer, root, changes, uid_maps, gid_maps)
    finally:
        root.close()
        release_path_roots()


def _whiteout_mtime(root, parent):
    """The mtime of the directory a deletion is in, read by fd from the layer's (0 when it is gone)."""
    try:
        return os.fstat(root.get().lookup(parent).fileno()).st_mtime_ns // 1000000000
    except (OSError, OverlayError):
        return 0


def _export_changes(writer, root, changes, uid_maps, gid_maps):
    links = {}
    counted = set()
    diff_size = 0
    whiteout_mtimes = {}
    for change in changes:
        rel = change.path.lstrip("/")
        if change.kind == DELETE:
            parent, base = os.path.split(rel)
            if parent not in whiteout_mtimes:
                whiteout_mtimes[parent] = _whiteout_mtime(root, parent)
            writer.write(_Member(os.path.join(parent, whiteouts.whiteout_name(base)), REGTYPE,
                                 mtime=whiteout_mtimes[parent]).header())
            continue
        if change.kind == OPAQUE_DIR:
            writer.write(_opaque_member(rel, change.entry.stat(follow_symlinks=False), uid_maps, gid_maps).header())
            continue
        entry = change.entry
        if entry is None:
            entry = entry_at(root.get(), rel)
        st = entry.stat(follow_symlinks=False)
        mode = st.st_mode
        diff_size += counted_size(st, counted)
        if stat.S_ISSOCK(mode):
            continue  # sockets have no place in a layer tarball
        owner = _container_owner(st, uid_maps, gid_maps, entry.path)
        info = _Member(rel, REGTYPE, stat.S_IMODE(mode), owner, st.st_mtime_ns // 1000000000)
        data = None
        if stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in links:
                info.type = LNKTYPE
                info.linkname = links[key]
            else:
                if st.st_nlink > 1:
                    links[key] = rel
                info.size = st.st_size
                if info.size:
                    data = _open_data(entry)
        elif stat.S_ISDIR(mode):
            info.type = DIRTYPE
        elif stat.S_ISLNK(mode):
            info.type = SYMTYPE
            info.linkname = _link_target(entry)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info.type = CHRTYPE if stat.S_ISCHR(mode) else BLKTYPE
            info.devmajor = os.major(st.st_rdev)
            info.devminor = os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            info.type = FIFOTYPE
        if data is None:
            # symlinks' too: Docker applies them
            info.pax_headers = _xattr_headers(entry.xattrs(), uid_maps, gid_maps)
            writer.write(info.header())
            continue
        try:
            info.pax_headers = _xattr_headers(fd_xattrs(data), uid_maps, gid_maps)  # from the very file read
            writer.write(info.header())
            _write_data(writer, info, data, entry.path)
        finally:
            os.close(data)
    writer.write(b"\x00" * 1024)
    if writer.size % _RECORD:
        writer.write(b"\x00" * (_RECORD - writer.size % _RECORD))
    return diff_size
