# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The uncompressed bytes of a layer, read ahead, counted and hashed.

The diff_id is the sha256 of the uncompressed tarball, so every byte the
parser sees passes through one hash; a thread decompresses and hashes ahead
of the parser so that the two overlap, and errors of the decompressor reach
the parser as LayerFormatError at the point it reads.
"""

import hashlib
import queue
import threading

from .decompress import CHUNK, DECOMPRESS_ERRORS, open_decompressed
from .errors import LayerFormatError


class HashingReader:
    """Uncompressed layer bytes, counted and hashed as they are read.

    A thread reads, decompresses and hashes ahead (hashlib and file reads
    release the GIL) while the caller parses and writes, at most QUEUE_CHUNKS
    chunks ahead so memory stays flat whatever the layer's size.
    """

    QUEUE_CHUNKS = 8

    def __init__(self, raw, compression="auto", recorder=None):
        """recorder (tar_split.Recorder): given every byte taken."""
        self.recorder = recorder
        self._f, self.compression = open_decompressed(raw, compression)
        self._hash = hashlib.sha256()
        self.offset = 0
        self._buf = b""
        self._view = memoryview(b"")
        self._pos = 0
        self._eof = False
        self._queue = queue.Queue(self.QUEUE_CHUNKS)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read_ahead, name="layer-reader", daemon=True)
        self._thread.start()

    def _read_ahead(self):
        try:
            while not self._stop.is_set():
                try:
                    data = self._f.read(CHUNK)
                except LayerFormatError as e:
                    self._queue.put(e)
                    return
                except DECOMPRESS_ERRORS as e:
                    self._queue.put(LayerFormatError("cannot decompress the layer (%s): %s" % (self.compression, e)))
                    return
                except Exception as e:  # zstandard.ZstdError and friends  pylint: disable=broad-except
                    self._queue.put(LayerFormatError("cannot decompress the layer (%s): %s" % (self.compression, e)))
                    return
                if not data:
                    check = getattr(self._f, "check", None)
                    if check is not None:
                        try:
                            check()
                        except LayerFormatError as e:
                            self._queue.put(e)
                            return
                    self._queue.put(b"")
                    return
                self._hash.update(data)
                self._queue.put(data)
        except BaseException as e:  # pylint: disable=broad-except
            self._queue.put(LayerFormatError("cannot read the layer: %s" % e))

    def _refill(self):
        """Make the next chunk current; what was left of the current one must have been taken."""
        if self._eof:
            return False
        item = self._queue.get()
        if isinstance(item, Exception):
            self._eof = True
            raise item
        if not item:
            self._eof = True
            return False
        self._buf = item
        self._view = memoryview(item)
        self._pos = 0
        return True

    def read(self, n):
        """Up to n bytes; fewer only at the end of the stream."""
        pos = self._pos
        end = pos + n
        if end <= len(self._buf):  # the common case: inside the current chunk
            self._pos = end
            self.offset += n
            if self.recorder is not None:
                self.recorder.take(self._view[pos:end])
            return self._buf[pos:end]
        parts = [self._buf[pos:]]
        have = len(parts[0])
        self._pos = len(self._buf)
        while have < n and self._refill():
            take = min(n - have, len(self._buf))
            parts.append(self._buf[:take])
            self._pos = take
            have += take
        self.offset += have
        data = b"".join(parts)
        if self.recorder is not None:
            self.recorder.take(data)
        return data

    def read_view(self, n):
        """Up to n bytes (at least one unless the stream ended) as a view into the current chunk:
        file data goes to os.write without a copy."""
        if self._pos == len(self._buf) and not self._refill():
            return self._view[:0]
        pos = self._pos
        end = min(pos + n, len(self._buf))
        self._pos = end
        self.offset += end - pos
        if self.recorder is not None:
            self.recorder.take(self._view[pos:end])
        return self._view[pos:end]

    def read_exact(self, n, what):
        data = self.read(n)
        if len(data) != n:
            raise LayerFormatError("the layer ends inside %s (offset %d): truncated" % (what, self.offset))
        return data

    def skip(self, n, what):
        while n:
            if self._pos == len(self._buf) and not self._refill():
                raise LayerFormatError("the layer ends inside %s (offset %d): truncated" % (what, self.offset))
            take = min(n, len(self._buf) - self._pos)
            if self.recorder is not None:
                self.recorder.take(self._view[self._pos:self._pos + take])
            self._pos += take
            self.offset += take
            n -= take

    def drain_zeros(self):
        """After the end-of-archive marker only NUL padding may follow."""
        while True:
            data = self.read(CHUNK)
            if not data:
                break
            if data.count(0) != len(data):
                raise LayerFormatError("trailing data after the end of the tar archive (offset %d)"
                                       % (self.offset - len(data) + len(data.rstrip(b"\x00"))))

    def digest(self):
        """The diff_id; complete once the stream was read to its end."""
        self._thread.join()
        return "sha256:" + self._hash.hexdigest()

    def close(self):
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass
        try:
            self._f.close()
        except Exception:  # closing a half-read stream must not mask the real error  pylint: disable=broad-except
            pass


def file_digest(raw, compression="auto"):
    """diff_id of a layer without applying it: sha256 of its uncompressed bytes."""
    reader = HashingReader(raw, compression)
    try:
        while reader.read(1 << 20):
            pass
    finally:
        reader.close()
    return reader.digest()
