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
from .fd_limit import open_descriptors
from .ids import to_container
from .overlay_view import as_dir
from .regular_files import require_regular
from .view_dirs import OPEN_DIRS, fd_xattrs, release_path_roots
from .xattr_ids import remap_value


class HashingWriter:
    """Writes the archive to out in 1 MiB blocks; a worker thread reads the files' data and writes, a third
    thread hashes.

    The caller (the walk's thread, which the export's per-entry work keeps busy) only hands over
    header bytes and the descriptors of the files to archive, in small batches; the worker reads each
    file's data straight into its block, writes the block and hands it to the hasher (read, write and
    hashlib release the GIL, so this costs the caller little; BLOCKS blocks bound the memory).

    The descriptors handed over and not yet closed are counted: the caller reserves room for one
    (reserve_file) before it opens a file, and the worker gives it back once that file is closed. The
    room is what the open-file limit leaves beside the walk's own directories, at most 64 and at least
    one, so a low RLIMIT_NOFILE makes the export wait for the worker, never fail. The blocks and both
    threads are made on the caller's thread, so a failure to make them is the caller's error. A
    failure on the worker (a write's ENOSPC, a file that ends early) is raised to the caller at its
    next batch or at close; the worker then only closes what it is given, so the caller never waits
    for ever and no descriptor is left open.
    """

    BLOCK = 1 << 20
    BLOCKS = 3
    BATCH_FILES = 16
    BATCH_BYTES = 1 << 16
    BATCHES = 2
    FILES = BATCH_FILES * (BATCHES + 2)

    def __init__(self, out, files=None):
        self.out = out
        self.hash = hashlib.sha256()
        self.size = 0
        self._error = None
        self._batches = queue.Queue(self.BATCHES)
        self._batch = []
        self._batch_files = 0
        self._batch_bytes = 0
        self._files = threading.Semaphore(files or _file_room(self.FILES))
        self._free, self._hashing = queue.Queue(), queue.Queue()
        for _block in range(self.BLOCKS):
            self._free.put(bytearray(self.BLOCK))
        self._hasher = threading.Thread(target=self._hash_blocks, daemon=True)
        self._hasher.start()
        self._worker = threading.Thread(target=self._work, daemon=True)
        try:
            self._worker.start()
        except BaseException:
            self._hashing.put(None)
            self._hasher.join()
            raise

    # -- the caller's side ------------------------------------------------------

    def write(self, data):
        """Append data (bytes; any other buffer is copied, since it is written later)."""
        if type(data) is not bytes:  # pylint: disable=unidiomatic-typecheck
            data = bytes(data)
        self._batch.append(data)
        self.size += len(data)
        self._batch_bytes += len(data)
        if self._batch_bytes >= self.BATCH_BYTES:
            self._send()

    def reserve_file(self):
        """Room for one more descriptor handed over (send_file), waiting for the worker to close one when
        there is none; given back by send_file's file being closed, or by unreserve_file."""
        if self._files.acquire(blocking=False):
            return
        self._send()  # the files waiting in the batch being filled hold the room
        while not self._files.acquire(timeout=1):
            self._require_worker()

    def unreserve_file(self):
        """The room reserve_file gave, for a file that was not handed over after all."""
        self._files.release()

    def send_file(self, fd, length, path):
        """Append the first length bytes of fd (opened after reserve_file), which the writer now owns (the
        worker closes it). A file that ends before them fails the export, naming path, at the next
        batch or at close."""
        self._batch.append((fd, length, path))
        self.size += length
        self._batch_files += 1
        if self._batch_files >= self.BATCH_FILES:
            self._send()

    def _raise_error(self):
        if self._error is not None:
            raise self._error

    def _require_worker(self):
        if not self._worker.is_alive():
            self._raise_error()
            raise OverlayError("the export's writer thread stopped")

    def _hand_over(self, item):
        while True:
            try:
                self._batches.put(item, timeout=1)
                return
            except queue.Full:
                self._require_worker()

    def _send(self):
        self._raise_error()
        if self._batch:
            self._hand_over(self._batch)  # not taken: still the caller's, closed by abandon()
            self._batch = []
            self._batch_files = self._batch_bytes = 0

    def close(self):
        """Write what is left, wait for the worker, and return the diff_id."""
        try:
            self._send()
        finally:
            self.abandon()  # closes what was not handed over when _send raised
        self._raise_error()
        flush = getattr(self.out, "flush", None)
        if flush:
            flush()
        return "sha256:" + self.hash.hexdigest()

    def abandon(self):
        """Stop the worker; the descriptors not yet handed over are closed here, the others by it."""
        batch, self._batch = self._batch, []
        self._close_files(batch)
        if self._worker.is_alive():
            try:
                self._hand_over(None)
            except OverlayError:
                pass  # it stopped meanwhile
            self._worker.join()

    def _close_files(self, batch):
        for item in batch:
            if type(item) is tuple:  # pylint: disable=unidiomatic-typecheck
                os.close(item[0])
                self._files.release()

    # -- the worker's side ------------------------------------------------------

    def _work(self):
        try:
            self._block = self._free.get()
            self._view = memoryview(self._block)
            self._fill = 0
            while True:
                batch = self._batches.get()
                if batch is None:
                    self._flush()
                    return
                self._take(batch)
        except BaseException as e:  # pylint: disable=broad-except  # raised again by the caller
            self._error = self._error or e
            while True:  # close what is still handed over, until the caller stops
                batch = self._batches.get()
                if batch is None:
                    return
                self._close_files(batch)
        finally:
            self._hashing.put(None)
            self._hasher.join()

    def _hash_blocks(self):
        """The hash, on its own thread: a block is hashed once written, then given back."""
        while True:
            item = self._hashing.get()
            if item is None:
                return
            block, length = item
            with memoryview(block) as view:
                self.hash.update(view[:length])
            self._free.put(block)

    def _take(self, batch):
        for item in batch:
            if type(item) is bytes:  # pylint: disable=unidiomatic-typecheck
                self._put(item)
            else:
                self._put_file(*item)

    def _put(self, data):
        if self._error is not None:
            return
        try:
            fill = self._fill
            if len(data) < self.BLOCK - fill:
                self._view[fill:fill + len(data)] = data
                self._fill = fill + len(data)
                return
            view = memoryview(data)
            while view:
                take = min(self.BLOCK - self._fill, len(view))
                self._view[self._fill:self._fill + take] = view[:take]
                self._fill += take
                view = view[take:]
                if self._fill == self.BLOCK:
                    self._flush()
        except BaseException as e:  # pylint: disable=broad-except  # raised again by the caller
            self._error = e

    def _put_file(self, fd, length, path):
        try:
            while length and self._error is None:
                if self._fill == self.BLOCK:
                    self._flush()
                    continue
                take = min(self.BLOCK - self._fill, length)
                got = os.readv(fd, [self._view[self._fill:self._fill + take]])
                if not got:
                    self._error = OSError("%s shrank while it was exported" % path)
                    return
                self._fill += got
                length -= got
        except BaseException as e:  # pylint: disable=broad-except  # raised again by the caller
            self._error = e
        finally:
            os.close(fd)
            self._files.release()

    def _flush(self):
        """Write the block and hand it to the hasher, taking the next (nothing once something failed)."""
        if self._error is None and self._fill:
            try:
                view = self._view[:self._fill]
                while view:  # a raw file may take less than it was given
                    written = self.out.write(view)
                    if written is None or written >= len(view):
                        break
                    view = view[written:]
            except BaseException as e:  # pylint: disable=broad-except  # raised again by the caller
                self._error = e
                self._fill = 0
                return
            self._hashing.put((self._block, self._fill))
            self._block = self._free.get()
            self._view = memoryview(self._block)
        self._fill = 0


def _file_room(most):
    """Descriptors the writer may hold: what the soft open-file limit leaves beside those open now and the
    walk's directories (view_dirs.OPEN_DIRS) with some to spare; at most most, at least one."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return most
    room = soft - open_descriptors() - OPEN_DIRS - 16
    return max(1, min(most, room))


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
    owner = (to_container(dir_st.st_uid, uid_maps), to_container(dir_st.st_gid, gid_maps))
    return _Member(name, REGTYPE, dir_st.st_mode & 0o777, owner, 0)


def _write_data(writer, member, fd, path):
    """The file's data and padding; fd is the writer's from here on."""
    writer.send_file(fd, member.size, path)
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
        owner = (to_container(st.st_uid, uid_maps), to_container(st.st_gid, gid_maps))
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
                    writer.reserve_file()
                    try:
                        data = _open_data(entry)
                    except BaseException:
                        writer.unreserve_file()
                        raise
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
        except BaseException:
            os.close(data)
            writer.unreserve_file()
            raise
        _write_data(writer, info, data, entry.path)
    writer.write(b"\x00" * 1024)
    if writer.size % _RECORD:
        writer.write(b"\x00" * (_RECORD - writer.size % _RECORD))
    return diff_size
