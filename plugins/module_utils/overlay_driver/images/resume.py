# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A registry blob read to its end across connections cut mid-way, resumed with Range.

A layer of a few GiB over a long path is often cut before its end: the
connection is reset, or closed before Content-Length bytes came. Starting
again from byte 0 each time may never finish. So the download asks for the
rest (`Range: bytes=N-`): a registry that supports it answers 206 with
exactly that range (its Content-Range is checked), and the bytes follow on
from where they stopped. A registry that ignores Range answers 200 with the
whole blob: the transfer starts again from its first byte, and the N bytes
already kept are read past, not kept twice. Either way the reader above
(digests.VerifyingReader) hashes and counts every byte it is given, so the
digest and the size are checked over the whole blob as it was assembled,
never over a part.

Each resume is a retry (retry.py): bounded by `retries`, after the same
waits, and all of them within the one deadline of the blob. A stall (a read
that times out) is not a cut: it fails as before.
"""

import contextlib
import http.client
import ssl

from .errors import BlobError

# what a connection cut mid-body looks like from http.client and ssl
CUTS = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, http.client.IncompleteRead,
        ssl.SSLEOFError, ssl.SSLZeroReturnError)
SKIP_CHUNK = 1 << 16


class ResumingReader:
    """read() of one blob from its first byte to its last, reopening it from where it was cut.

    source.open_range(descriptor, offset, deadline) is a context manager giving (reader, start, length):
    the answer's body, the blob offset it starts at (offset for a 206, 0 for a 200) and its Content-Length
    (None when it has none: then only an exception is a cut, an early end cannot be told from the end).
    """

    def __init__(self, source, descriptor, retry, deadline, image=None):
        self._source = source
        self._descriptor = descriptor
        self._retry = retry
        self._deadline = deadline
        self._image = image
        self._stack = contextlib.ExitStack()
        self.offset = 0         # bytes of the blob handed up so far
        self.resumes = 0
        self.restarts = 0       # resumes the registry answered with the whole blob (200)
        self._reader = None
        self._left = None       # bytes the current answer still owes, by its Content-Length

    def __enter__(self):
        self._open()
        return self

    def __exit__(self, *exc):
        self._stack.close()

    def _open(self):
        cause = self._open_once()
        if cause is not None:
            self._resume(cause)

    def _open_once(self):
        """Ask for the rest; None when the answer now follows on from self.offset, else why it was cut before
        it did (a registry that ignores Range sends the kept bytes again, and that answer may be cut too: a
        cut like any other, resumed within the same retries)."""
        self._stack.close()
        self._stack = contextlib.ExitStack()
        reader, start, length = self._stack.enter_context(
            self._source.open_range(self._descriptor, self.offset, self._deadline))
        self._reader, self._left = reader, length
        if start == self.offset:
            return None
        self.restarts += 1  # 200: the whole blob again; read past what is kept already
        skip = self.offset - start
        while skip:
            try:
                data = self._read_current(min(skip, SKIP_CHUNK))
            except CUTS as e:
                return "%s: %s" % (type(e).__name__, e)
            if not data:
                if self._left:
                    return "the connection closed %d bytes before the answer's end" % self._left
                # the answer ended where it said it would: the registry's blob is shorter than what it sent before
                raise BlobError("the registry's answer to a resumed request ended after %d of the %d bytes "
                                "already read" % (self.offset - skip, self.offset), image=self._image,
                                blob=self._descriptor.digest)
            skip -= len(data)
        return None

    def _read_current(self, n):
        data = self._reader.read(n)
        if data and self._left is not None:
            self._left -= len(data)
        return data

    def read(self, n=-1):
        while True:
            try:
                data = self._read_current(n)
            except CUTS as e:
                cause = "%s: %s" % (type(e).__name__, e)
            else:
                if data:
                    self.offset += len(data)
                    return data
                if not self._left:  # the end, as the answer announced it (or announced nothing)
                    return data
                cause = "the connection closed %d bytes before the answer's end" % self._left
            self._resume(cause)

    def _resume(self, cause):
        while cause is not None:
            self.resumes += 1
            wait, why_not = self._retry.next_wait(self.resumes, None, self._deadline)
            if wait is None:
                raise BlobError("the download was cut after %d bytes (%s) and not resumed (no retry: %s)"
                                % (self.offset, cause, why_not), image=self._image, blob=self._descriptor.digest)
            self._retry.wait(wait)
            cause = self._open_once()
