# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One lock per layer home, so concurrent runs see each other's work whole.

flock on a file under <home>/.strata: the kernel drops it when a holder dies,
so a killed run never leaves the home locked.
"""

import errno
import fcntl
import os
import time

from .errors import OverlayError

DEFAULT_TIMEOUT = 600


class HomeLock:
    def __init__(self, path, timeout=DEFAULT_TIMEOUT):
        self.path = path
        self.timeout = timeout
        self.fd = None
        self.depth = 0

    def acquire(self):
        if self.fd is not None:
            self.depth += 1
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + self.timeout
        delay = 0.005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
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
        if self.fd is None:
            return
        self.depth -= 1
        if self.depth > 0:
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
