# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Registry blobs fetched before the home's lock is taken, into unlinked temp files, within deadlines.

A registry decides how fast a blob arrives: one that sends a byte every few
seconds never trips a per-read timeout, and a run that downloaded under the
home's lock would hold every other writer of the host for as long as it
likes. So a layer blob from a registry is downloaded first, with no lock,
into a file that has no name (O_TMPFILE in .strata/tmp, root's own: a
killed run leaves nothing and no other user can reach it), verified against
its digest and size as it arrives, and bounded by two deadlines: one per
blob (blob_deadline) and one for the whole image (image_deadline). A
connection cut mid-blob is resumed where it stopped (resume.py), within the
same deadlines. Only then is the lock taken and the file applied.
"""

import contextlib
import errno
import io
import os
import socket
import time

from .digests import VerifyingReader
from .errors import BlobError
from .resume import ResumingReader

DEFAULT_BLOB_DEADLINE = 3600    # seconds one layer blob may take to arrive
DEFAULT_IMAGE_DEADLINE = 10800  # seconds the whole pull (manifests, config, every blob) may take
CHUNK = 1 << 20


class Deadlines:
    """When the current blob and the whole image must be done by (time.monotonic())."""

    def __init__(self, blob_seconds=DEFAULT_BLOB_DEADLINE, image_seconds=DEFAULT_IMAGE_DEADLINE, started=None):
        self.blob_seconds = blob_seconds
        self.image_seconds = image_seconds
        self.image_at = (time.monotonic() if started is None else started) + image_seconds

    def for_blob(self):
        """The deadline of a blob whose download starts now."""
        return _BlobDeadline(self, time.monotonic() + self.blob_seconds)


class _BlobDeadline:
    def __init__(self, deadlines, blob_at):
        self._deadlines = deadlines
        self._blob_at = blob_at

    def remaining(self, read_bytes, image=None, blob=None, what=None):
        """Seconds left; a BlobError naming the deadline that passed when none are (and `what` did not arrive
        in time, when it is not the blob itself: "the answer to /v2/")."""
        now = time.monotonic()
        if now >= self._deadlines.image_at:
            raise BlobError("the image did not arrive within image_deadline (%ss); %d bytes of %s read"
                            % (self._deadlines.image_seconds, read_bytes, what or "this blob"), image=image, blob=blob)
        if now >= self._blob_at:
            raise BlobError("%sdid not arrive within blob_deadline (%ss); %d bytes read"
                            % (what + " " if what else "", self._deadlines.blob_seconds, read_bytes), image=image,
                            blob=blob)
        return min(self._deadlines.image_at, self._blob_at) - now


class DeadlineSocket:
    """A connected socket whose every read, status line and headers included, ends by a deadline.

    http.client reads the status line and headers through sock.makefile(), one
    recv at a time with the socket's timeout each: a registry that sends a
    byte of its headers (or of a body read with read(n), or of an error body)
    every few seconds never trips that timeout. Here each recv waits at most
    the timeout or what is left of the deadline, whichever is shorter, and
    fails with the deadline's own error once it has passed. Everything else
    (sendall, settimeout, close) is the socket's.
    """

    def __init__(self, sock, deadline, io_timeout, image=None, blob=None, what=None):
        self._sock = sock
        self._deadline = deadline
        self._io_timeout = io_timeout
        self._image = image
        self._blob = blob
        self._what = what
        self.read_bytes = 0
        self._streams = 0      # makefile() streams still open: the socket stays open for them
        self._closing = False

    def __getattr__(self, name):
        return getattr(self._sock, name)

    @property
    def raw_socket(self):
        """The socket under it (what ssl wraps for TLS through a proxy's tunnel)."""
        return self._sock

    def _remaining(self):
        return self._deadline.remaining(self.read_bytes, self._image, self._blob, self._what)

    def recv_into(self, buffer, nbytes=0, flags=0):
        self._sock.settimeout(max(0.01, min(self._io_timeout, self._remaining())))
        try:
            got = self._sock.recv_into(buffer, nbytes, flags)
        except (socket.timeout, TimeoutError):
            self._remaining()  # the deadline's own error when that is what passed
            raise
        self.read_bytes += got
        return got

    def recv(self, bufsize, flags=0):
        buffer = bytearray(bufsize)
        got = self.recv_into(buffer, bufsize, flags)
        return bytes(buffer[:got])

    def makefile(self, mode="r", buffering=None, **_kwargs):
        if mode != "rb":
            raise ValueError("a DeadlineSocket reads only in binary")
        self._streams += 1
        return io.BufferedReader(_DeadlineRaw(self), buffering or io.DEFAULT_BUFFER_SIZE)

    def close(self):
        """Closed once no stream of makefile() is open either (http.client closes the connection's socket
        while the response it hands on is still to be read), as socket.socket does."""
        self._closing = True
        if self._streams == 0:
            self._sock.close()

    def _stream_closed(self):
        self._streams -= 1
        if self._closing and self._streams == 0:
            self._sock.close()


def bounded_connection(deadline, io_timeout, image=None, blob=None, what=None):
    """socket.create_connection for an http.client connection (its _create_connection) whose connect, and a
    proxy's answer to CONNECT, end by the deadline too: the tunnel's status line and headers are read by
    http.client before the connection is handed back, through the socket made here."""
    def create(address, timeout=None, source_address=None, *rest):
        del timeout  # the connection's own; the deadline's remainder bounds it here
        wait = max(0.01, min(io_timeout, deadline.remaining(0, image, blob, what)))
        try:
            sock = socket.create_connection(address, wait, source_address, *rest)
        except (socket.timeout, TimeoutError):
            deadline.remaining(0, image, blob, what)  # the deadline's own error when that is what passed
            raise
        return DeadlineSocket(sock, deadline, io_timeout, image, blob, what)
    return create


class _DeadlineRaw(io.RawIOBase):
    """The raw stream under DeadlineSocket.makefile()."""

    def __init__(self, sock):
        super().__init__()
        self._sock = sock

    def readable(self):
        return True

    def readinto(self, b):
        return self._sock.recv_into(b)

    def close(self):
        if not self.closed:
            super().close()
            self._sock._stream_closed()  # pylint: disable=protected-access


class DeadlineResponse:
    """An HTTP response read no longer than its deadline allows, however slowly the bytes come.

    Each socket read waits at most the connection's timeout or what is left
    of the deadline, whichever is shorter, and the deadline is checked
    between reads (http.client's read(n) would wait for all n bytes).
    """

    def __init__(self, resp, sock, deadline, io_timeout, image=None, blob=None):
        self._resp = resp
        self._sock = sock
        self._deadline = deadline
        self._io_timeout = io_timeout
        self._image = image
        self._blob = blob
        self.read_bytes = 0

    def _remaining(self):
        return self._deadline.remaining(self.read_bytes, self._image, self._blob)

    def read(self, n=-1):
        if n is None or n < 0:
            n = CHUNK
        parts = []
        got = 0
        while got < n:
            remaining = self._remaining()
            if self._sock is not None:
                self._sock.settimeout(max(0.01, min(self._io_timeout, remaining)))
            try:
                data = self._resp.read1(n - got)
            except (socket.timeout, TimeoutError):
                self._remaining()  # the deadline's own error when that is what passed
                raise
            if not data:
                break
            parts.append(data)
            got += len(data)
            self.read_bytes += len(data)
        return b"".join(parts)

    def getheader(self, name, default=None):
        return self._resp.getheader(name, default)


def unnamed_file(dir_fd):
    """A read-write file with no name in dir_fd (O_TMPFILE), or one unlinked at once where that is missing."""
    try:
        return os.fdopen(os.open(".", os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600, dir_fd=dir_fd), "w+b")
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            raise
    name = ".download-%s" % os.urandom(8).hex()
    fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    os.unlink(name, dir_fd=dir_fd)
    return os.fdopen(fd, "w+b")


def download(source, descriptor, dir_fd, image, on_progress=None):
    """The blob, verified (digest and size), in an unnamed file positioned at its start. The caller closes it."""
    out = unnamed_file(dir_fd)
    try:
        with blob_stream(source, descriptor, image) as raw:
            reader = VerifyingReader(raw, descriptor.digest, descriptor.size, image, on_progress,
                                     name=descriptor.digest or descriptor.path)
            while True:
                data = reader.read(CHUNK)
                if not data:
                    break
                out.write(data)
        out.flush()
        out.seek(0)
        return out
    except BaseException:
        out.close()
        raise


def blob_stream(source, descriptor, image):
    """The blob's bytes from its source: a registry's resumed with Range where a connection is cut (resume.py),
    every resume within the blob's one deadline."""
    if not hasattr(source, "open_range"):
        return source.open_blob(descriptor)
    deadline = source.deadlines.for_blob() if source.deadlines is not None else None
    return ResumingReader(source, descriptor, source.retry, deadline, image)


class Downloaded:
    """A source whose one blob is already here, in a file (download()); what the applier reads it from."""

    def __init__(self, f):
        self._f = f

    @contextlib.contextmanager
    def open_blob(self, descriptor):
        del descriptor
        self._f.seek(0)
        yield self._f
