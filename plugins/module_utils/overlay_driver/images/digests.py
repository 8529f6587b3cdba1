# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Content addresses: digest syntax, ChainIDs, and a reader that proves a blob is what its descriptor says.

The reader checks the size on every read (a blob longer than promised fails at
the first excess byte, so a hostile server cannot make us read forever) and the
digest at EOF, raising before EOF is reported to its consumer: a blob that does
not match fails inside the layer's apply, before anything becomes visible.
"""

import hashlib
import re
import socket

from .errors import BlobError, ImageError

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_ANY_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")


def parse_digest(value, image=None, what="digest"):
    """A sha256 digest as the OCI spec writes it; other algorithms are refused by name."""
    if not isinstance(value, str) or not _ANY_DIGEST.match(value):
        raise ImageError("%s %r is not a digest (algorithm:hex)" % (what, value), image=image)
    if not _DIGEST.match(value):
        algorithm = value.split(":", 1)[0]
        if algorithm == "sha256":
            raise ImageError("%s %r is not sha256:<64 lowercase hex digits>" % (what, value), image=image)
        raise ImageError("%s %r uses algorithm %s; only sha256 is supported" % (what, value, algorithm),
                         image=image)
    return value


def hex_of(digest):
    return digest.split(":", 1)[1]


def sha256_bytes(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def chain_ids(diff_ids):
    """image-spec ChainIDs: ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    out = []
    chain = None
    for diff_id in diff_ids:
        chain = diff_id if chain is None else sha256_bytes((chain + " " + diff_id).encode("ascii"))
        out.append(chain)
    return out


def verify_bytes(data, digest, size, image=None, what="blob"):
    """For the small blobs read whole (manifests, configs)."""
    if size is not None and len(data) != size:
        raise BlobError("%s is %d bytes, its descriptor says %d" % (what, len(data), size), image=image, blob=digest)
    actual = sha256_bytes(data)
    if actual != digest:
        raise BlobError("%s content has digest %s, not the %s it is addressed by" % (what, actual, digest),
                        image=image, blob=digest)
    return data


class VerifyingReader:
    """Reads a blob from raw, counting and hashing; raises BlobError on any mismatch.

    size or digest may be None (a legacy docker-archive layer has neither
    descriptor nor content address: its diff_id, checked by the applier, is
    its only proof); what is known is checked. The first error is kept and
    raised again on every later read, so a consumer that swallowed it (a
    decompressor's feeder thread) cannot turn it into a clean EOF.
    """

    def __init__(self, raw, digest, size, image=None, on_progress=None, name=None):
        self._raw = raw
        self.digest = digest
        self.name = name
        self.error = None
        self.size = size
        self.image = image
        self.read_bytes = 0
        self.verified = False
        self._hash = hashlib.sha256()
        self._on_progress = on_progress

    def _fail(self, cause):
        self.error = BlobError(cause, image=self.image, blob=self.digest or self.name)
        raise self.error

    def read(self, n=-1):
        if self.error is not None:
            raise self.error
        if self.verified:
            return b""
        if n is None or n < 0:
            n = 1 << 20
        if self.size is not None:
            # One byte past the promised size, to see a blob that is too long.
            n = min(n, self.size - self.read_bytes + 1)
        try:
            data = self._raw.read(n)
        except (socket.timeout, TimeoutError):
            self._fail("reading stalled after %d bytes (timed out)" % self.read_bytes)
        except BlobError:
            raise
        except Exception as e:  # OSError, ssl.SSLError, http.client.IncompleteRead, ...  pylint: disable=broad-except
            self._fail("reading failed after %d bytes: %s: %s" % (self.read_bytes, type(e).__name__, e))
        if data is None:
            data = b""
        if data:
            self.read_bytes += len(data)
            if self.size is not None and self.read_bytes > self.size:
                self._fail("more bytes than the %d its descriptor says" % self.size)
            self._hash.update(data)
            if self._on_progress is not None:
                self._on_progress(len(data))
            return data
        self._finish()
        return b""

    def _finish(self):
        if self.size is not None and self.read_bytes != self.size:
            self._fail("ends after %d bytes, its descriptor says %d (truncated)" % (self.read_bytes, self.size))
        actual = "sha256:" + self._hash.hexdigest()
        if self.digest is not None and actual != self.digest:
            self._fail("content has digest %s, not the %s it is addressed by" % (actual, self.digest))
        self.verified = True

    def finish(self):
        """Read what is left (nothing, for a sound blob) and verify; for consumers that stop early."""
        while self.read(1 << 16):
            pass
