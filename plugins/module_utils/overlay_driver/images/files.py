# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Named files of an image on disk: a directory (an OCI layout) or a tar archive (oci-archive, docker save).

Files inside a directory are opened from the directory's fd, component by
component with O_NOFOLLOW, and must be regular files: a layout another user
can write cannot point us at a FIFO (a hang) or elsewhere on the host.
Archive members are only read, never extracted.
"""

import errno
import os
import stat
import tarfile

from ..regular_files import open_regular
from .errors import ImageError
from .source import ImageSource

_NAME_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+:@")


def member_name(name, image):
    """The normalized form of a name an image gives for one of its files, or an ImageError.

    Every name read from an image (manifest.json's Config and Layers, a layout's
    blobs) names a member of that image, never a path: it is relative, has no
    `..` and no NUL, and only the characters image tools write. Both sides use
    this one check: the module to read the member, the action plugin to decide
    where in its own temporary directory the member goes on the host.
    """
    if not isinstance(name, str) or not name:
        raise ImageError("refusing the file name %r: not a name" % (name,), image=image)
    if name.startswith("/"):
        raise ImageError("refusing the file name %r: absolute, not a member of the image" % name, image=image)
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        raise ImageError("refusing the file name %r: it leaves the image" % name, image=image)
    if any(not set(p) <= _NAME_OK for p in parts):  # NUL, control characters, backslashes, ...
        raise ImageError("refusing the file name %r: a character image tools do not write" % name, image=image)
    return "/".join(parts)


def _clean(name, image):
    return member_name(name, image).split("/")


class _Files:
    """The files of one image: path and image name every error; close() releases what is held open, once."""

    def __init__(self, path, image, handle):
        self.path = path
        self.image = image
        self._handle = handle

    def close(self):
        handle, self._handle = self._handle, None
        if handle is not None:
            self._release(handle)

    @staticmethod
    def _release(handle):
        raise NotImplementedError


class DirFiles(_Files):
    """A directory (an OCI layout, the files of a docker save archive); the handle is its fd."""

    def __init__(self, path, image):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise ImageError("cannot open the layout directory: %s" % e.strerror, image=image, path=path)
        super().__init__(path, image, fd)

    @staticmethod
    def _release(handle):
        os.close(handle)

    def open(self, name):
        """(binary file object, size) of a regular file below the directory."""
        parts = _clean(name, self.image)
        fd = os.dup(self._handle)
        try:
            for i, part in enumerate(parts):
                last = i == len(parts) - 1
                flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_NONBLOCK if last else os.O_DIRECTORY)
                try:
                    nfd = os.open(part, flags, dir_fd=fd)
                except OSError as e:
                    cause = e.strerror
                    if not last and e.errno == errno.ENOTDIR:
                        cause = "%s is a symlink or not a directory" % "/".join(parts[:i + 1])
                    raise ImageError("%s: %s" % (name, cause), image=self.image,
                                     path=os.path.join(self.path, name))
                os.close(fd)
                fd = nfd
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise ImageError("%s is not a regular file" % name, image=self.image, path=os.path.join(self.path, name))
            os.set_blocking(fd, True)
            f = os.fdopen(fd, "rb")
            fd = None
            return f, st.st_size
        finally:
            if fd is not None:
                os.close(fd)

    def exists(self, name):
        try:
            f, _size = self.open(name)
        except ImageError:
            return False
        f.close()
        return True


# An image archive holds a few members per layer (and at most manifests.MAX_LAYERS layers): far more is no
# image, and the index of its names is kept in memory.
MAX_ARCHIVE_MEMBERS = 65536
# Longer than any name an image tool writes (blobs/sha256/<64 hex> and the like); not indexed.
MAX_MEMBER_NAME = 1024


class TarFiles(_Files):
    """A tar archive (oci-archive, docker save), only read; the handle is its TarFile.

    Its index is streamed: one member at a time, keeping per name only
    (regular?, data offset, size) of names that are member names, never
    tarfile's list of every TarInfo (1.5 million members cost 900 MB that
    way), and an archive of more than MAX_ARCHIVE_MEMBERS members is refused.
    """

    def __init__(self, path, image):
        try:
            f = open_regular(path)  # never a FIFO's blocking open
        except OSError as e:
            raise ImageError("cannot read the archive: %s" % e.strerror, image=image, path=path)
        try:
            tar = tarfile.open(fileobj=f, mode="r:*")
        except (OSError, tarfile.TarError, EOFError) as e:
            f.close()
            raise ImageError("cannot read the archive: %s" % e, image=image, path=path)
        except BaseException:
            f.close()
            raise
        self._file = f  # given a file object, tarfile leaves it open: close() does
        super().__init__(path, image, tar)
        try:
            self._members = self._index(tar)
        except BaseException:
            self.close()
            raise

    def _index(self, tar):
        index = {}
        count = 0
        while True:
            try:
                member = tar.next()
            except (OSError, tarfile.TarError, EOFError) as e:
                raise ImageError("cannot read the archive: %s" % e, image=self.image, path=self.path)
            if member is None:
                return index
            tar.members = []  # tarfile keeps every TarInfo it reads; the index below is all that is needed
            count += 1
            if count > MAX_ARCHIVE_MEMBERS:
                raise ImageError("the archive has more than %d members; an image archive holds a few per layer"
                                 % MAX_ARCHIVE_MEMBERS, image=self.image, path=self.path)
            if len(member.name) > MAX_MEMBER_NAME:
                continue
            try:
                key = member_name(member.name, self.image)
            except ImageError:
                continue  # no lookup can name it
            index[key] = (member.isreg(), member.offset_data, member.size)  # as tar: the last entry of a name wins

    @staticmethod
    def _release(handle):
        handle.close()

    def close(self):
        try:
            super().close()
        finally:
            f, self._file = self._file, None
            if f is not None:
                f.close()

    def _lookup(self, name):
        return self._members.get("/".join(_clean(name, self.image)))

    def open(self, name):
        found = self._lookup(name)
        if found is None:
            raise ImageError("%s is not in the archive" % name, image=self.image, path=self.path)
        regular, offset, size = found
        if not regular:
            raise ImageError("%s is not a regular file in the archive" % name, image=self.image, path=self.path)
        info = tarfile.TarInfo(name)
        info.type, info.offset_data, info.size = tarfile.REGTYPE, offset, size
        return self._handle.extractfile(info), size

    def exists(self, name):
        found = self._lookup(name)
        return found is not None and found[0]


def read_small(files, name, limit, what):
    f, size = files.open(name)
    with f:
        if size > limit:
            raise ImageError("%s (%s) is %d bytes, more than the %d accepted" % (what, name, size, limit),
                             image=files.image, path=files.path)
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ImageError("%s (%s) is larger than the %d bytes accepted" % (what, name, limit), image=files.image,
                         path=files.path)
    return data


def open_files(path, image, want_dir):
    if want_dir:
        if not os.path.isdir(path):
            raise ImageError("not a directory (an OCI layout is a directory; use oci-archive: for a tar)",
                             image=image, path=path)
        return DirFiles(path, image)
    if not os.path.isfile(path):
        raise ImageError("not a file on this host", image=image, path=path)
    return TarFiles(path, image)


class FileSource(ImageSource):
    """A source whose blobs are named files of a directory (want_dir) or of a tar archive."""

    def __init__(self, reference, want_dir):
        super().__init__(reference)
        self.files = open_files(reference.path, self.image, want_dir=want_dir)

    def close(self):
        self.files.close()
