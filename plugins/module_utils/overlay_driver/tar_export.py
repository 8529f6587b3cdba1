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


def export_changes(layer_dir, changes, out, uid_maps=None, gid_maps=None):
    """Stream the tarball to out; returns (diff_id, bytes written)."""
    writer = HashingWriter(out)
    links = {}
    with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT, copybufsize=1 << 20) as tf:
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
                tf.addfile(info)
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
            fileobj = None
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
                    fileobj = open(path, "rb")
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
            try:
                tf.addfile(info, fileobj)
            finally:
                if fileobj is not None:
                    fileobj.close()
    writer.flush()
    return writer.digest(), writer.size
