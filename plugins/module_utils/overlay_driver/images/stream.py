# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A layer blob as the applier reads it: decompressed here, and proven before its end is seen.

The applier is handed plain tar bytes. EOF is only reported after the blob's
size and digest were checked, so a blob that lies fails inside the apply and
its layer never becomes visible. Decompressing here (not in the applier) keeps
that order for every compression: a decompressor that reads its input from a
thread (zstd) could otherwise swallow the blob's error and end cleanly.
"""

import queue
import threading

from ..errors import LayerFormatError
from ..decompress import open_decompressed
from .errors import BlobError
from .igzip import igzip_reader

CHUNK = 1 << 20
AHEAD = 4


class _Quiet:
    """The verifier, with its errors turned into EOF; the verifier keeps them for CheckedStream."""

    def __init__(self, verifier):
        self._verifier = verifier

    def read(self, n=-1):
        try:
            return self._verifier.read(n)
        except BlobError:
            return b""


class _ReadAhead:
    """The blob read, counted and hashed in a thread of its own, at most AHEAD chunks ahead.

    Network or disk reads and the compressed digest then overlap with
    decompression and the applier's work (hashlib, zlib and sockets release
    the GIL), and memory stays bounded.
    """

    def __init__(self, source):
        self._source = source
        self._queue = queue.Queue(AHEAD)
        self._stop = threading.Event()
        self._buf = b""
        self._done = False
        self.failed = None
        self._thread = threading.Thread(target=self._run, name="blob-reader", daemon=True)
        self._thread.start()

    def _run(self):
        try:
            while not self._stop.is_set():
                data = self._source.read(CHUNK)
                self._put(data)
                if not data:
                    return
        except BaseException as e:  # pylint: disable=broad-except
            self.failed = e  # (the verifier's own errors never get here: _Quiet turns them into EOF)
            self._put(b"")

    def _put(self, data):
        while not self._stop.is_set():
            try:
                self._queue.put(data, timeout=0.1)
                return
            except queue.Full:
                continue

    def read(self, n=-1):
        if not self._buf:
            if self._done:
                return b""
            self._buf = self._get()
            if not self._buf:
                self._done = True
                return b""
        if n is None or n < 0 or n >= len(self._buf):
            data, self._buf = self._buf, b""
            return data
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def _get(self):
        """The next chunk; b"" once closed: a decompressor's feeder thread (igzip, zstd) waiting here must end,
        and close its program's input, though the thread reading the blob stopped without a last chunk."""
        while True:
            try:
                return self._queue.get(timeout=0.1)
            except queue.Empty:
                if self._stop.is_set():
                    return b""

    def close(self):
        """Stop without waiting: a read blocked on the network ends when its connection is closed."""
        self._stop.set()


class CheckedStream:
    """gzip_program: the blob may be decompressed by the igzip program; `recheck` then says, after a failure,
    that only zlib may judge it, and the caller reads the blob again without igzip."""

    def __init__(self, verifier, compression, image=None, gzip_program=False):
        self._verifier = verifier
        self.image = image
        self._ahead = _ReadAhead(_Quiet(verifier))
        self._f, self.compression = open_decompressed(self._ahead, compression,
                                                      igzip_reader if gzip_program else None)

    @property
    def recheck(self):
        """igzip's answer was refused (igzip.GzipRecheck), or the apply failed before it was proven: a
        blob cut inside a deflate block lets igzip decode the sentinel's bytes as more of it, and what that
        makes can fail the applier first, with an error of its own where zlib would say the stream is cut."""
        return getattr(self._f, "proven", True) is False

    def read(self, n=-1):
        try:
            data = self._f.read(n)
        except Exception as e:  # pylint: disable=broad-except
            if self._verifier.error is not None:
                raise self._verifier.error
            if isinstance(e, LayerFormatError):
                raise
            raise BlobError("cannot decompress the layer (%s): %s" % (self.compression, e), image=self.image,
                            blob=self._verifier.digest or self._verifier.name)
        if not data:
            if self._verifier.error is not None:
                raise self._verifier.error
            if self._ahead.failed is not None:
                raise BlobError("reading failed after %d bytes: %s" % (self._verifier.read_bytes, self._ahead.failed),
                                image=self.image, blob=self._verifier.digest or self._verifier.name)
            self._verifier.finish()
        return data

    def close(self):
        self._ahead.close()
        try:
            self._f.close()
        except Exception:  # a half-read stream's close must not mask the real error  pylint: disable=broad-except
            pass
