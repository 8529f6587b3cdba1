# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One lock per layer home, so concurrent runs see each other's work whole.

flock on a file under <home>/.strata: the kernel drops it when a holder dies,
so a killed run never leaves the home locked. The file is opened relative to
the .strata directory fd with O_NOFOLLOW, so a planted symlink cannot make
root create or truncate a file elsewhere. Readers take a shared lock on an
existing lock file and create nothing.
"""

import errno
import fcntl
import os
import stat
import time

from .errors import OverlayError

DEFAULT_TIMEOUT = 600


class HomeLock:
    """The lock file at path (relative to dir_fd when given), taken re-entrantly: only the outermost
    acquire locks and only its release unlocks."""

    fd = None  # the lock file's while it is locked
    depth = 0  # acquires not yet released

    def __init__(self, path, timeout=DEFAULT_TIMEOUT, dir_fd=None, shared=False):
        self.path = path
        self.timeout = timeout
        self.dir_fd = dir_fd
        self.shared = shared

    def _open(self):
        """The lock file's fd; None for a reader when there is no lock file (nobody ever wrote)."""
        name = os.path.basename(self.path) if self.dir_fd is not None else self.path
        flags = os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_RDONLY if self.shared else os.O_RDWR | os.O_CREAT)
        try:
            fd = os.open(name, flags, 0o600, dir_fd=self.dir_fd)
        except FileNotFoundError:
            if self.shared:
                return None
            raise
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.EISDIR):
                raise OverlayError("the lock is not a regular file (a symlink?); refusing it", path=self.path)
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OverlayError("the lock is not a regular file; refusing it", path=self.path)
        return fd

    def acquire(self):
        if self.depth:
            self.depth += 1
            return self
        fd = self._open()
        if fd is None:
            self.depth = 1
            return self
        operation = fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX
        deadline = time.monotonic() + self.timeout
        delay = 0.005
        while True:
            try:
                fcntl.flock(fd, operation | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise OverlayError("timed out after %ss waiting for another run holding the lock"
                                       % self.timeout, path=self.path)
                time.sleep(delay)
                delay = min(delay * 2, 0.2)
        self.fd = fd
        self.depth = 1
        return self

    def release(self):
        if not self.depth:
            return
        self.depth -= 1
        if self.depth > 0 or self.fd is None:
            return
        fd, self.fd = self.fd, None
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False
