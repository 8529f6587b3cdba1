# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing a file as root to a path another user may be able to touch.

The data goes to a temp file created beside dest with a random name,
O_EXCL|O_NOFOLLOW (a planted file or symlink there is never reused or
followed), and is renamed over dest, relative to the directory's fd: a dest
that is a symlink is replaced, never written through. Paths are compared
resolved, so a symlinked home cannot make dest land inside it.
"""

import hashlib
import os
import stat

from .errors import OverlayError
from .layout import open_temp_file

TEMP_PREFIX = ".strata-diff-"


class NullWriter:
    """Takes everything, keeps nothing: a check run hashes the tarball without writing it."""

    @staticmethod
    def write(data):
        return len(data)


def resolve_dest(dest, home, layer_id=None):
    """(directory, name) of dest, resolved; refuses /, directories, and anything in the home."""
    given = dest
    dest = os.path.abspath(dest)
    directory, name = os.path.split(dest)
    if not name or dest == "/" or given.endswith("/"):
        raise OverlayError("dest must name a file, not a directory", layer=layer_id, path=given)
    if not os.path.isdir(directory):
        raise OverlayError("destination directory does not exist", layer=layer_id, path=directory)
    directory = os.path.realpath(directory)
    target = os.path.join(directory, name)
    home = os.path.realpath(home).rstrip("/") + "/"
    if (target + "/").startswith(home) or home.startswith(target + "/"):
        raise OverlayError("refusing to write a diff inside the layer home (%s)" % home.rstrip("/"),
                           layer=layer_id, path=target)
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise OverlayError("dest is a directory; it must name a file", layer=layer_id, path=target)
    return directory, name


def same_content(dir_fd, name, digest):
    """Whether dir_fd/name is a regular file (not followed) whose sha256 is digest."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return False
        h = hashlib.sha256()
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest() == digest


class AtomicDest:
    """with AtomicDest(directory, name) as out: write to out; commit() renames it over dest.

    Leaving the block without commit() (an error, a signal) removes the temp file.
    """

    def __init__(self, directory, name):
        self.name = name
        self.dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.tmp = None
        self.file = None

    def __enter__(self):
        try:
            self.tmp, fd = open_temp_file(self.dir_fd, TEMP_PREFIX, 0o644)
            self.file = os.fdopen(fd, "wb")
        except BaseException:
            os.close(self.dir_fd)
            raise
        return self

    def write(self, data):
        return self.file.write(data)

    def flush(self):
        self.file.flush()

    def commit(self, keep_existing=False):
        """Rename the temp file over dest (or drop it when keep_existing: dest already has it)."""
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        if keep_existing:
            os.unlink(self.tmp, dir_fd=self.dir_fd)
        else:
            os.rename(self.tmp, self.name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
            os.fsync(self.dir_fd)
        self.tmp = None

    def __exit__(self, *exc):
        try:
            if self.file is not None and not self.file.closed:
                self.file.close()
            if self.tmp is not None:
                try:
                    os.unlink(self.tmp, dir_fd=self.dir_fd)
                except FileNotFoundError:
                    pass
        finally:
            os.close(self.dir_fd)
        return False
