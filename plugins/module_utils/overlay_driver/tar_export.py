# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write a layer's changes as an image-layer tarball (moby's ExportChanges).

Added and modified paths are archived from the layer's view; deletions
become '.wh.<name>' entries. Times are whole seconds and whiteouts take their
directory's mtime, so exporting the same layer twice gives the same diff_id.
"""

import hashlib
import os
import stat
import struct
import tarfile

from .changes import DELETE
from .ids import to_container

_SKIPPED_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")


class HashingWriter:
    def __init__(self, out):
        self.out = out
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data):
        self.hash.update(data)
        self.size += len(data)
        return self.out.write(data)

    def flush(self):
        flush = getattr(self.out, "flush", None)
        if flush:
            flush()

    def digest(self):
        return "sha256:" + self.hash.hexdigest()


def _xattr_headers(path):
    headers = {}
    binary = False
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return headers, binary
    for name in sorted(names):
        if name.startswith(_SKIPPED_XATTR_PREFIXES):
            continue
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            text = value.decode("utf-8", "surrogateescape")
            binary = True
        headers["SCHILY.xattr." + name] = text
    return headers, binary


_RECORD = 10240


def _ustar(info):
    """A plain ustar header for the common entry; None when PAX is needed (long or non-ASCII names,
    xattrs, large numbers)."""
    name, link = info.name, info.linkname
    if (info.pax_headers or len(name) > 100 or len(link) > 100 or not name.isascii() or not link.isascii()
            or not 0 <= info.uid < 0o7777777 or not 0 <= info.gid < 0o7777777 or info.size >= 0o77777777777
            or not 0 <= info.mtime < 0o77777777777 or info.devmajor > 0o7777777 or info.devminor > 0o7777777):
        return None
    header = struct.pack(
        "100s8s8s8s12s12s8s1s100s6s2s32s32s8s8s155s12x",
        name.encode(), b"%07o\x00" % info.mode, b"%07o\x00" % info.uid, b"%07o\x00" % info.gid,
        b"%011o\x00" % info.size, b"%011o\x00" % info.mtime, b" " * 8, info.type, link.encode(),
        b"ustar\x00", b"00", b"", b"", b"%07o\x00" % info.devmajor, b"%07o\x00" % info.devminor, b"")
    chksum = b"%06o\x00 " % sum(header)
    return header[:148] + chksum + header[156:]


def _write_entry(writer, info, path=None):
    header = _ustar(info) or info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    writer.write(header)
    if path is None or not info.size:
        return
    left = info.size
    with open(path, "rb") as f:
        while left:
            data = f.read(min(left, 1 << 20))
            if not data:
                raise OSError("%s shrank while it was exported" % path)
            writer.write(data)
            left -= len(data)
    if info.size % 512:
        writer.write(b"\x00" * (512 - info.size % 512))


def export_changes(layer_dir, changes, out, uid_maps=None, gid_maps=None):
    """Stream the tarball to out; returns (diff_id, bytes written)."""
    writer = HashingWriter(out)
    links = {}
    for change in changes:
        rel = change.path.lstrip("/")
        if change.kind == DELETE:
            parent, base = os.path.split(rel)
            info = tarfile.TarInfo(os.path.join(parent, ".wh." + base))
            info.type = tarfile.REGTYPE
            info.mode = 0o644
            try:
                info.mtime = os.lstat(os.path.join(layer_dir, parent)).st_mtime_ns // 1000000000
            except OSError:
                info.mtime = 0
            _write_entry(writer, info)
            continue
        path = os.path.join(layer_dir, rel)
        st = os.lstat(path)
        mode = st.st_mode
        if stat.S_ISSOCK(mode):
            continue  # sockets have no place in a layer tarball
        info = tarfile.TarInfo(rel)
        info.mode = stat.S_IMODE(mode)
        info.uid = to_container(st.st_uid, uid_maps)
        info.gid = to_container(st.st_gid, gid_maps)
        info.mtime = st.st_mtime_ns // 1000000000
        info.uname = info.gname = ""
        headers, binary = _xattr_headers(path) if not stat.S_ISLNK(mode) else ({}, False)
        if binary:
            headers["hdrcharset"] = "BINARY"
        info.pax_headers = headers
        source = None
        if stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in links:
                info.type = tarfile.LNKTYPE
                info.linkname = links[key]
            else:
                if st.st_nlink > 1:
                    links[key] = rel
                info.type = tarfile.REGTYPE
                info.size = st.st_size
                source = path
        elif stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(mode):
            info.type = tarfile.SYMTYPE
            info.linkname = os.readlink(path)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            info.devmajor = os.major(st.st_rdev)
            info.devminor = os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            info.type = tarfile.FIFOTYPE
        _write_entry(writer, info, source)
    end = b"\x00" * 1024
    writer.write(end)
    if writer.size % _RECORD:
        writer.write(b"\x00" * (_RECORD - writer.size % _RECORD))
    writer.flush()
    return writer.digest(), writer.size
